package tokens

import "github.com/chit-auth/chit/internal/storage"

// Store is what the token core needs of storage: logins (refresh tokens),
// the API keys exchanged for access tokens, and revocations. Principals
// reach it through accounts.Directory, keys through keys.Set.
type Store interface {
	storage.Logins
	storage.APIKeys
	storage.Revocations
}
