package storage

import (
	"context"
	"time"
)

// SigningKeys are the server's own token-signing keys, in one family per
// algorithm (the configured one, and RS256 for ID tokens beside it).
// Invariants: of each algorithm at most one key is active and one next (a
// second is ErrAlreadyExists, enforced by the store itself, so replicas
// starting at once on an empty store end with one family); a rotation
// retires the family's active key, activates its next and stores a new next
// atomically, once across replicas; a private key is replaced only from the
// value the caller read (sealing it never races another replica's).
type SigningKeys interface {
	// CreateSigningKey stores key; a taken id, or a second active or next
	// key of its algorithm, is ErrAlreadyExists.
	CreateSigningKey(ctx context.Context, key SigningKey) error
	// ListSigningKeys returns every key, oldest first.
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// RotateSigningKeys rotates the family of newNext.Algorithm: atomically
	// it retires that family's active key, activates its next key (which
	// must still be expectedNextID, else ErrConflict: another process
	// rotated first; "" when the family has no next key, and then nothing is
	// retired) and stores newNext as the family's next key. Other families
	// are left as they are.
	RotateSigningKeys(ctx context.Context, expectedNextID string, newNext SigningKey, at time.Time) error
	// RetireSigningKeyFamily retires the active and next keys of algorithm
	// (a family the configuration no longer wants) and reports how many.
	RetireSigningKeyFamily(ctx context.Context, algorithm string, at time.Time) (int, error)
	// DeleteRetiredSigningKeys deletes keys retired before cutoff, and
	// records each removal at deletedAt in the revocation feed.
	DeleteRetiredSigningKeys(ctx context.Context, cutoff, deletedAt time.Time) (int, error)
	// ReplaceSigningPrivateKey stores replacement as the private key of
	// signing key id if current is still stored there (ErrConflict otherwise:
	// another process replaced or deleted it first). It encrypts keys written
	// in the clear.
	ReplaceSigningPrivateKey(ctx context.Context, id string, current, replacement []byte) error
}

// RefreshTokenKeys are the server's keys of the MACs refresh tokens carry,
// by which a login's earlier tokens are recognised. Invariants: ids are
// unique; keys are never deleted (every key ever made keeps verifying, so
// none signs anybody out); a secret is replaced only from the value read, as
// for signing keys.
type RefreshTokenKeys interface {
	// CreateRefreshTokenKey stores a MAC key; a taken id is ErrAlreadyExists.
	CreateRefreshTokenKey(ctx context.Context, key RefreshTokenKey) error
	// ListRefreshTokenKeys returns every MAC key, oldest first.
	ListRefreshTokenKeys(ctx context.Context) ([]RefreshTokenKey, error)
	// ReplaceRefreshTokenKeySecret is ReplaceSigningPrivateKey for MAC keys.
	ReplaceRefreshTokenKeySecret(ctx context.Context, id uint32, current, replacement []byte) error
}

// SigningKey is one of the server's own token-signing keys.
type SigningKey struct {
	// ID is the `kid` published in the JWKS and in token headers.
	ID        string
	Algorithm string
	// PrivateKey is the private JWK, serialized. It never leaves the server.
	PrivateKey []byte
	// PublicKey is the public JWK, serialized, as published in the JWKS.
	PublicKey []byte
	// State is KeyNext, KeyActive or KeyRetired.
	State       string
	CreatedAt   time.Time
	ActivatedAt time.Time
	RetiredAt   time.Time
}

// Signing key states: a next key is published before it signs, so verifiers
// that cache the key set know it in time; a retired key is published until
// the tokens it signed have expired.
const (
	KeyNext    = "next"
	KeyActive  = "active"
	KeyRetired = "retired"
)

// RefreshTokenKey is a key of the MACs refresh tokens carry, by which a
// login's earlier tokens are recognised; Secret is sealed like a private key.
type RefreshTokenKey struct {
	ID        uint32
	Secret    []byte
	CreatedAt time.Time
}
