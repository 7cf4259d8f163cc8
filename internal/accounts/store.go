package accounts

import (
	"context"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

// Store is what the directory needs of storage: principals, and the
// sign-in throttle's counts. storage.Store has it all; a test may give less.
type Store interface {
	CreateUser(ctx context.Context, user storage.User) error
	GetUser(ctx context.Context, name string) (storage.User, error)
	ListUsers(ctx context.Context, page storage.Page) ([]storage.User, error)
	UpdatePasswordHash(ctx context.Context, name, oldHash, newHash string) error
	UpdateUser(ctx context.Context, name string, update func(*storage.User) (*storage.SubjectRevocation, error)) error
	DeleteUser(ctx context.Context, name string, revoke storage.SubjectRevocation) error

	CreateServiceAccount(ctx context.Context, account storage.ServiceAccount) error
	GetServiceAccount(ctx context.Context, clientID string) (storage.ServiceAccount, error)
	ListServiceAccounts(ctx context.Context, page storage.Page) ([]storage.ServiceAccount, error)
	UpdateServiceAccount(ctx context.Context, clientID string, update func(*storage.ServiceAccount) (*storage.SubjectRevocation, error)) error
	DeleteServiceAccount(ctx context.Context, clientID string, revoke storage.SubjectRevocation) error

	CreateClient(ctx context.Context, client storage.Client) error
	GetClient(ctx context.Context, id string) (storage.Client, error)
	ListClients(ctx context.Context, page storage.Page) ([]storage.Client, error)
	UpdateClient(ctx context.Context, id string, update func(*storage.Client) (*storage.SubjectRevocation, error)) error
	DeleteClient(ctx context.Context, id string, revoke storage.SubjectRevocation) error

	RefuseAccessTokens(ctx context.Context, revoke storage.SubjectRevocation) error

	GetLoginFailures(ctx context.Context, key string) (storage.LoginFailures, error)
	ReserveLoginAttempt(ctx context.Context, key string, at time.Time, forgetAfter time.Duration, allow func(before storage.LoginFailures) bool) (storage.LoginFailures, bool, error)
	ReleaseLoginAttempts(ctx context.Context, key string, n int) error
	ResetLoginFailures(ctx context.Context, key string) error
}
