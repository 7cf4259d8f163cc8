package storage

import (
	"context"
	"time"
)

// AuthorizationCodes are the sign-in page's one-time codes, by digest.
// Invariants: a code is redeemed at most once, and only by whoever has what
// it is bound to (client, redirect URI, PKCE verifier): a refused check
// leaves it unused; a later redemption learns the family the first one
// started, so a replay can end it; deleting the client or the subject voids
// the unredeemed ones.
type AuthorizationCodes interface {
	CreateAuthorizationCode(ctx context.Context, code AuthorizationCode) error
	// RedeemAuthorizationCode runs check on the stored code and, when it
	// passes, marks the code used at usedAt and records the refresh family
	// it starts, returning the code as it was. A code check refuses (a wrong
	// client or PKCE verifier) stays unused: whoever lacks what the code is
	// bound to cannot use it up. Exactly one redemption succeeds; a later one
	// gets the stored code (with the first redemption's FamilyID) and
	// ErrConflict, before check runs. An unknown hash is ErrNotFound.
	RedeemAuthorizationCode(ctx context.Context, hash []byte, usedAt time.Time, familyID string, check func(AuthorizationCode) error) (AuthorizationCode, error)
	// DeleteExpiredAuthorizationCodes removes codes that expired before cutoff.
	DeleteExpiredAuthorizationCodes(ctx context.Context, cutoff time.Time) (int, error)
}

// AuthorizationCode is the stored form of a sign-in page's one-time code,
// bound to the client, redirect URI and PKCE challenge it was issued for.
type AuthorizationCode struct {
	Hash          []byte
	ClientID      string
	RedirectURI   string
	CodeChallenge string
	Subject       string
	Role          string
	Scope         string
	Nonce         string
	AuthTime      time.Time
	// SessionID is the sign-in session the code was issued through (the
	// ID tokens' sid claim); empty when there was none.
	SessionID string
	ExpiresAt time.Time
	// UsedAt is zero until the code is redeemed; FamilyID then names the
	// refresh family it started, so a replay can revoke it.
	UsedAt   time.Time
	FamilyID string
}
