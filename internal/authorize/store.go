package authorize

import "github.com/chit-auth/chit/internal/storage"

// Store is what sign-ins need of storage: authorization codes.
type Store interface {
	storage.AuthorizationCodes
}
