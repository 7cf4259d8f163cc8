package providers

import "github.com/chit-auth/chit/internal/storage"

// Store is what the provider calls need of storage: providers, and the
// service accounts that register them.
type Store interface {
	storage.Providers
	storage.ServiceAccounts
}
