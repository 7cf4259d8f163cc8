package storage

import (
	"bytes"
	"context"
	"errors"
	"time"
)

// Logins are the refresh side of sign-ins: one record per login (refresh
// family), keyed by its family id, holding the digest of its current refresh
// token and of the one before it. A rotation replaces the current token in
// place, so a login's storage does not grow with its rotations; earlier
// tokens are recognised by the MAC they carry (the token core's business),
// not by the store. Invariants: of concurrent rotations of one token exactly
// one wins; a login's subject, client and absolute expiry never change; a
// revoked family is never read back, even if a racing call stored it after
// the revocation. Revocations end logins (RevokeRefreshFamily, RevokeSubject);
// deleting a principal deletes its logins.
//
// Records of one token (Generation 0, in their own table) are the format
// before one record per login. They stay, readable and rotatable once, until
// the release after the one that ships one record per login: the upgrade
// promised that tokens issued before keep working (CHANGELOG, "One record
// per login"), such a token carries no login id, so only its digest finds
// it, and the last of them expires within --refresh-idle-timeout (at most
// --refresh-token-ttl) of each deployment's own upgrade, not of the change,
// which no release has shipped yet. They can then go with their table, behind
// an upgrade note asking to have run that release for --refresh-token-ttl.
type Logins interface {
	// CreateRefreshToken stores a login's record (Generation 1 and later),
	// keyed by its family id: a family that has one is ErrAlreadyExists. A
	// token of Generation 0 is stored as a record of one token, keyed by its
	// hash, as before logins kept one record.
	CreateRefreshToken(ctx context.Context, token RefreshToken) error
	// GetRefreshToken returns the stored token hash names in the record of
	// login familyID: its current token, or the one before it (as rotated).
	// An empty familyID looks hash up among records of one token (Generation
	// 0, from before logins kept one record), whose tokens name no login.
	// ErrNotFound for an unknown token and for one whose family was revoked
	// (even if it was stored after the revocation, by a call that raced it).
	GetRefreshToken(ctx context.Context, familyID string, hash []byte) (RefreshToken, error)
	// GetRefreshTokenWithUser is GetRefreshToken, and the user the token's
	// subject names, read with it (a refresh needs both): nil when there is
	// none (deleted, or the subject is not a user's).
	GetRefreshTokenWithUser(ctx context.Context, familyID string, hash []byte) (RefreshToken, *User, error)
	// RotateRefreshToken atomically makes successor (whose Generation must
	// be one more than the token's) the current token of login
	// successor.FamilyID whose current token has oldHash, in the login's one
	// record. The old token is then read back as rotated at
	// successor.IssuedAt, with sealedSuccessor, until the next rotation. Of
	// many concurrent calls for one token exactly one succeeds; the others
	// get ErrConflict. An unknown token is ErrNotFound. A token of
	// Generation 0 (stored before) is instead marked rotated, as its
	// record's only token, and its successor (Generation 1) stored as the
	// login's record (ErrAlreadyExists if the login has one already). A
	// login's subject, client and absolute expiry are its record's: a
	// successor brings its hash, generation, role, scope, audience and times.
	RotateRefreshToken(ctx context.Context, oldHash []byte, successor RefreshToken, sealedSuccessor []byte) error
	// GetRefreshLogin returns the current token of a login by its family id
	// (records of Generation 1 and later only); ErrNotFound when there is
	// none or the family was revoked.
	GetRefreshLogin(ctx context.Context, familyID string) (RefreshToken, error)
	// ListLogins returns the live logins of subject (not revoked, not
	// expired at now), one per family whatever its table, in page by family
	// id. Only what describes a login is filled in: FamilyID, Subject,
	// ClientID, Scope, Audience, IssuedAt (of its current token),
	// ExpiresAt, FamilyExpiresAt and Generation; never a digest.
	ListLogins(ctx context.Context, subject string, now time.Time, page Page) ([]RefreshToken, error)
	// DeleteExpiredRefreshTokens removes tokens that expired before cutoff and
	// returns how many it removed.
	DeleteExpiredRefreshTokens(ctx context.Context, cutoff time.Time) (int, error)
}

// RefreshToken is the stored form of an opaque refresh token: only its hash
// is kept, so a copy of the database does not yield usable tokens.
type RefreshToken struct {
	Hash []byte
	// FamilyID names the chain of rotations that started with one login.
	FamilyID string
	Subject  string
	Role     string
	Scope    string
	// ClientID is the OAuth client the login was issued to: the token
	// refreshes through that client only (RFC 6749 §6). Empty for tokens
	// issued before clients were recorded.
	ClientID string
	// Audience is the `aud` of the login's access tokens; empty means the
	// server's own.
	Audience string
	IssuedAt time.Time
	// ExpiresAt is when this token stops working: the idle timeout after its
	// issue, but never after FamilyExpiresAt.
	ExpiresAt time.Time
	// FamilyExpiresAt is the absolute end of the login; rotation hands it on.
	FamilyExpiresAt time.Time
	// RotatedAt is zero until the token has been exchanged for its successor.
	RotatedAt time.Time
	// ReplacedBy is the hash of the successor once rotated.
	ReplacedBy []byte
	// SealedSuccessor is the successor token encrypted under a key derived
	// from this token, so that within the grace period a client that lost
	// the answer gets the same successor again, and nobody else can.
	SealedSuccessor []byte
	// Generation counts the login's tokens: 1 for the first. A login keeps
	// one record, whose current token a rotation replaces in place, keeping
	// only the token before it (read back as rotated, for the grace period);
	// earlier tokens are recognised by what they carry, not by the store.
	// Zero for tokens stored before, one record per token, which stay
	// readable until they expire (see Logins for why, and until when).
	Generation uint64
	// LoginSalt is the login's random value that its tokens' MACs cover.
	LoginSalt []byte
	// DPoPKeyThumbprint is the JWK thumbprint a public client's login is
	// bound to (RFC 9449 §5); "" for an unbound login. It is written with
	// the login's record (CreateRefreshToken, or the rotation of a record of
	// one token, which starts it) and kept by its rotations; a record of
	// one token has none.
	DPoPKeyThumbprint string
}

// PreviousRefreshToken is what a login's record keeps of the token before
// its current one: enough to answer it, within the grace period, with the
// current one (sealed under it in the record's SealedSuccessor).
type PreviousRefreshToken struct {
	Hash      []byte
	RotatedAt time.Time
}

// TokenOfRecord is what GetRefreshToken answers for hash from the record it
// found, and whether hash names a token of it: a record of one token
// (Generation 0) as it is; otherwise the login's current token, or, when
// hash is the previous token's, that token as rotated, replaced by the
// current one. Stores share it so they answer alike.
func TokenOfRecord(record RefreshToken, previous PreviousRefreshToken, hash []byte) (RefreshToken, bool) {
	if record.Generation == 0 {
		return record, bytes.Equal(record.Hash, hash)
	}
	if bytes.Equal(record.Hash, hash) {
		// The sealed successor belongs to the previous token.
		record.RotatedAt, record.ReplacedBy, record.SealedSuccessor = time.Time{}, nil, nil
		return record, true
	}
	if len(previous.Hash) == 0 || !bytes.Equal(previous.Hash, hash) {
		return RefreshToken{}, false
	}
	token := record
	token.Hash, token.RotatedAt, token.ReplacedBy, token.Generation = previous.Hash, previous.RotatedAt, record.Hash, record.Generation-1
	return token, true
}

// ReadRefreshTokenWithUser is GetRefreshTokenWithUser in two reads, for a
// store where a read costs little (SQLite) or a token that is rare (from
// before logins kept one record).
func ReadRefreshTokenWithUser(ctx context.Context, s interface {
	Logins
	Users
}, familyID string, hash []byte) (RefreshToken, *User, error) {
	token, err := s.GetRefreshToken(ctx, familyID, hash)
	if err != nil {
		return RefreshToken{}, nil, err
	}
	user, err := s.GetUser(ctx, token.Subject)
	switch {
	case errors.Is(err, ErrNotFound):
		return token, nil, nil
	case err != nil:
		return RefreshToken{}, nil, err
	}
	return token, &user, nil
}
