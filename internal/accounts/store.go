package accounts

import "github.com/chit-auth/chit/internal/storage"

// Store is what the directory needs of storage: principals, the
// revocations their changes record, and the sign-in throttle's counts.
// storage.Store has it all.
type Store interface {
	storage.Principals
	storage.ClientOrigins
	storage.ClientLogoutSettings
	storage.Revocations
	storage.Throttle
}
