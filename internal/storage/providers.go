package storage

import (
	"context"
	"time"
)

// Providers are the resource providers services register: each starts
// unclaimed, with a claim token, and holds its own key pair and refresh token
// once claimed. Invariants: bulk calls apply all or none, naming the failed
// item in an *ItemError; of concurrent first claims of a provider exactly one
// wins; a provider's claim token, refresh token and key id each find it
// alone.
type Providers interface {
	// CreateProviders stores new, unclaimed providers, all or none. A taken
	// id fails with an *ItemError wrapping ErrAlreadyExists.
	CreateProviders(ctx context.Context, providers []Provider) error
	GetProvider(ctx context.Context, id string) (Provider, error)
	GetProviderByClaimToken(ctx context.Context, claimTokenHash []byte) (Provider, error)
	GetProviderByRefreshToken(ctx context.Context, refreshTokenHash []byte) (Provider, error)
	GetProviderByKeyID(ctx context.Context, keyID string) (Provider, error)
	// ListProviders returns the providers of page, by id.
	ListProviders(ctx context.Context, page Page) ([]Provider, error)
	// DeleteProvider deletes provider id and, when it held a key, records
	// the key's removal at deletedAt in the revocation feed.
	DeleteProvider(ctx context.Context, id string, deletedAt time.Time) error
	// ClaimProviders gives unclaimed providers their first credentials, all or
	// none. A missing provider is an *ItemError wrapping ErrNotFound; an
	// already claimed one wraps ErrConflict (another claim won).
	ClaimProviders(ctx context.Context, credentials []ProviderCredentials, claimedAt time.Time) error
	// RenewProviders replaces providers' credentials, all or none; a missing
	// provider is an *ItemError wrapping ErrNotFound. An unclaimed provider
	// counts as claimed afterwards. A key replaced is recorded as removed at
	// renewedAt in the revocation feed.
	RenewProviders(ctx context.Context, credentials []ProviderCredentials, renewedAt time.Time) error
	// ReplaceProviderPrivateKey is ReplaceSigningPrivateKey for a provider's
	// key; a renewal in between is a conflict too.
	ReplaceProviderPrivateKey(ctx context.Context, providerID string, current, replacement []byte) error
}

// Provider is a resource provider (UCloud's AuthProviders): registered with a
// claim token, then holding its own RSA key pair and a long-lived refresh token.
type Provider struct {
	ID             string
	ClaimTokenHash []byte
	ClaimExpiresAt time.Time
	// ClaimedAt is zero until the first claim (or a renew).
	ClaimedAt time.Time
	// The credentials, set by the first claim and replaced by renew.
	Credentials ProviderCredentials
	// RegisteredBy is the client id of the service that registered the
	// provider; only it (or an admin) may renew it. Empty for providers
	// registered before it was recorded: admins only.
	RegisteredBy string
	CreatedAt    time.Time
}

// ProviderCredentials are a provider's key pair and refresh token.
type ProviderCredentials struct {
	ProviderID string
	// KeyID is the `kid` of tokens signed with this key pair.
	KeyID string
	// PublicKey is X.509 SubjectPublicKeyInfo DER.
	PublicKey []byte
	// PrivateKey is PKCS#8 DER. It never leaves the server.
	PrivateKey       []byte
	RefreshTokenHash []byte
	// SealedRefreshToken is the refresh token encrypted under a key derived
	// from the claim token, so that a retried claim can answer it again, to
	// the claim token's holder only. Renew clears it.
	SealedRefreshToken []byte
}
