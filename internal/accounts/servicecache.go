package accounts

import (
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

// DefaultServiceAccountCacheTTL is chitd's default for how long a service
// account read from the store answers client-credentials sign-ins before it
// is read again.
const DefaultServiceAccountCacheTTL = time.Second

// serviceAccountCache keeps service accounts for a short time after a
// successful sign-in. A service may ask for tokens thousands of times a
// second, and each sign-in read its account from the store: on PostgreSQL
// that round trip cost about a third of the machine's CPU. Only sign-ins
// whose secret matched are answered from it; every failed one reads the
// store, as one with an unknown client id does, so the time of a failure
// does not tell whether the id exists, and an account deleted and created
// again elsewhere takes its new secret at once. The price is that deleting
// an account elsewhere (chitd service delete, another replica) stops its
// sign-ins here only when its entry expires.
type serviceAccountCache = readCache[storage.ServiceAccount]
