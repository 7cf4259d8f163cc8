package storage

import (
	"context"
	"time"
)

// Revocations say which access tokens are refused before they expire: those
// of a revoked family (a login, or an API key's APIKeyFamily) and those of a
// subject (or a client's principal key) issued before a time. Invariants:
// revoking a family or a subject deletes its logins in the same transaction;
// revoking twice is not an error, and of two times for a subject the later
// wins; a revocation is kept until no token it concerns can still be valid;
// each revocation that refuses more than before is written to the
// revocation feed (RevocationEvents) in its own transaction.
type Revocations interface {
	// RevokeRefreshFamily records the family as revoked (its access tokens are
	// refused from then on), deletes its refresh tokens and returns how many
	// there were. Revoking twice is not an error.
	RevokeRefreshFamily(ctx context.Context, familyID string, revokedAt time.Time) (int, error)
	// RevokeSubject revokes every session of subject issued before revokedAt:
	// its refresh tokens are deleted and its older access tokens refused.
	RevokeSubject(ctx context.Context, subject string, revokedAt time.Time) (int, error)
	// RefuseAccessTokens refuses the access tokens of revoke.Subject issued
	// before revoke.At, keeping its refresh tokens (a refresh re-reads what
	// the principal may still obtain). A later time wins over an earlier one.
	RefuseAccessTokens(ctx context.Context, revoke SubjectRevocation) error
	// GetRevocation reports revocations that concern a family, a subject
	// and a client's principal key (either may be empty).
	GetRevocation(ctx context.Context, familyID, subject, client string) (Revocation, error)
	// DeleteExpiredRevocations forgets revocations made before cutoff, when no
	// access token they concern can still be valid, deleting first any
	// refresh token left of a family it forgets; with them it deletes the
	// revocation events (RevocationEvents) made before cutoff.
	DeleteExpiredRevocations(ctx context.Context, cutoff time.Time) (int, error)
}

// SubjectRevocation refuses every access token of Subject (a `sub`, or the
// principal key of an OAuth client) issued before At.
type SubjectRevocation struct {
	Subject string
	At      time.Time
}

// Revocation tells whether access tokens of a family or subject were revoked.
type Revocation struct {
	FamilyRevoked bool
	// SubjectRevokedAt is zero unless the access tokens of the subject (or
	// of the client) issued before it are refused: the later of the two.
	SubjectRevokedAt time.Time
}
