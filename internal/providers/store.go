package providers

import (
	"context"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

// Store is what the provider calls need of storage: providers, and the
// service accounts that register them.
type Store interface {
	CreateProviders(ctx context.Context, providers []storage.Provider) error
	GetProvider(ctx context.Context, id string) (storage.Provider, error)
	GetProviderByClaimToken(ctx context.Context, claimTokenHash []byte) (storage.Provider, error)
	GetProviderByRefreshToken(ctx context.Context, refreshTokenHash []byte) (storage.Provider, error)
	GetProviderByKeyID(ctx context.Context, keyID string) (storage.Provider, error)
	ListProviders(ctx context.Context, page storage.Page) ([]storage.Provider, error)
	DeleteProvider(ctx context.Context, id string) error
	ClaimProviders(ctx context.Context, credentials []storage.ProviderCredentials, claimedAt time.Time) error
	RenewProviders(ctx context.Context, credentials []storage.ProviderCredentials, renewedAt time.Time) error
	GetServiceAccount(ctx context.Context, clientID string) (storage.ServiceAccount, error)
}
