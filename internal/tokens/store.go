package tokens

import (
	"context"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

// Store is what the token core needs of storage: refresh tokens and
// revocations. storage.Store has it all.
type Store interface {
	CreateRefreshToken(ctx context.Context, token storage.RefreshToken) error
	GetRefreshToken(ctx context.Context, familyID string, hash []byte) (storage.RefreshToken, error)
	GetRefreshTokenWithUser(ctx context.Context, familyID string, hash []byte) (storage.RefreshToken, *storage.User, error)
	GetRefreshLogin(ctx context.Context, familyID string) (storage.RefreshToken, error)
	RotateRefreshToken(ctx context.Context, oldHash []byte, successor storage.RefreshToken, sealedSuccessor []byte) error
	RevokeRefreshFamily(ctx context.Context, familyID string, revokedAt time.Time) (int, error)
	RevokeSubject(ctx context.Context, subject string, revokedAt time.Time) (int, error)
	ListLogins(ctx context.Context, subject string, now time.Time, page storage.Page) ([]storage.RefreshToken, error)
	CreateAPIKey(ctx context.Context, key storage.APIKey) error
	GetAPIKey(ctx context.Context, id string) (storage.APIKey, error)
	ListAPIKeys(ctx context.Context, subject string, page storage.Page) ([]storage.APIKey, error)
	DeleteAPIKey(ctx context.Context, id string, revokedAt time.Time) error
	GetRevocation(ctx context.Context, familyID, subject, client string) (storage.Revocation, error)
}
