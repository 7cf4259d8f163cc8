package accounts

import (
	"sync"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

// DefaultServiceAccountCacheTTL is chitd's default for how long a service
// account read from the store answers client-credentials sign-ins before it
// is read again.
const DefaultServiceAccountCacheTTL = time.Second

// maxCachedServiceAccounts bounds the cache; when full it starts over.
const maxCachedServiceAccounts = 10_000

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
type serviceAccountCache struct {
	ttl     time.Duration
	mu      sync.RWMutex
	entries map[string]cachedServiceAccount
	// forgets counts forget calls, so that a sign-in that read the store
	// before a delete cannot put the deleted account back afterwards.
	forgets uint64
}

type cachedServiceAccount struct {
	account storage.ServiceAccount
	readAt  time.Time
}

// get returns the account read at most ttl before now, if there is one,
// with when it was read, and the cache's generation, to be passed to put
// after reading the store: it lets put see a forget that happened meanwhile.
func (c *serviceAccountCache) get(clientID string, now time.Time) (entry cachedServiceAccount, fresh bool, generation uint64) {
	c.mu.RLock()
	entry, ok := c.entries[clientID]
	generation = c.forgets
	c.mu.RUnlock()
	// An entry "read" after now means the clock went back; it is not trusted.
	if !ok || now.Sub(entry.readAt) >= c.ttl || now.Before(entry.readAt) {
		return cachedServiceAccount{}, false, generation
	}
	return entry, true, generation
}

func (c *serviceAccountCache) put(account storage.ServiceAccount, readAt time.Time, generation uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forgets != generation {
		return
	}
	if c.entries == nil || len(c.entries) >= maxCachedServiceAccounts {
		c.entries = make(map[string]cachedServiceAccount)
	}
	c.entries[account.ClientID] = cachedServiceAccount{account: account, readAt: readAt}
}

func (c *serviceAccountCache) forget(clientID string) {
	c.mu.Lock()
	delete(c.entries, clientID)
	c.forgets++
	c.mu.Unlock()
}
