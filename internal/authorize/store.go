package authorize

import (
	"context"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

// Store is what sign-ins need of storage: authorization codes.
type Store interface {
	CreateAuthorizationCode(ctx context.Context, code storage.AuthorizationCode) error
	RedeemAuthorizationCode(ctx context.Context, hash []byte, usedAt time.Time, familyID string, check func(storage.AuthorizationCode) error) (storage.AuthorizationCode, error)
}
