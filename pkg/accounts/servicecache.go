package accounts

import (
	"context"
	"sync"
	"time"

	"github.com/chit-auth/chit/pkg/storage"
)

// DefaultServiceAccountCacheTTL is chitd's default for how long a service
// account read from the store answers client-credentials sign-ins before it
// is read again.
const DefaultServiceAccountCacheTTL = time.Second

// maxCachedServiceAccounts bounds the cache; when full it starts over.
const maxCachedServiceAccounts = 10_000

// serviceAccountCache keeps service accounts read from the store for a
// short time. A service may ask for tokens thousands of times a second, and
// each sign-in read its account from the store: on PostgreSQL that round
// trip cost about a third of the machine's CPU. Only accounts that exist
// are kept, so unknown client ids cannot fill the cache, and the secret is
// still compared on every sign-in. The price is that deleting or replacing
// an account elsewhere (chitd service delete, another replica) takes effect
// here only when its entry expires.
type serviceAccountCache struct {
	ttl     time.Duration
	mu      sync.RWMutex
	entries map[string]cachedServiceAccount
}

type cachedServiceAccount struct {
	account storage.ServiceAccount
	readAt  time.Time
}

// get returns the account read at most ttl before now.
func (c *serviceAccountCache) get(clientID string, now time.Time) (storage.ServiceAccount, bool) {
	c.mu.RLock()
	entry, ok := c.entries[clientID]
	c.mu.RUnlock()
	// An entry "read" after now means the clock went back; it is not trusted.
	if !ok || now.Sub(entry.readAt) >= c.ttl || now.Before(entry.readAt) {
		return storage.ServiceAccount{}, false
	}
	return entry.account, true
}

func (c *serviceAccountCache) put(account storage.ServiceAccount, readAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxCachedServiceAccounts {
		c.entries = make(map[string]cachedServiceAccount)
	}
	c.entries[account.ClientID] = cachedServiceAccount{account: account, readAt: readAt}
}

func (c *serviceAccountCache) forget(clientID string) {
	c.mu.Lock()
	delete(c.entries, clientID)
	c.mu.Unlock()
}

// WithServiceAccountCache keeps service accounts read from the store for ttl.
// Without it, or with 0, every client-credentials sign-in reads the store.
func (d *Directory) WithServiceAccountCache(ttl time.Duration) *Directory {
	d.services = nil
	if ttl > 0 {
		d.services = &serviceAccountCache{ttl: ttl}
	}
	return d
}

// serviceAccount reads clientID's account, from the cache when it is fresh.
func (d *Directory) serviceAccount(ctx context.Context, clientID string) (storage.ServiceAccount, error) {
	if d.services == nil {
		return d.store.GetServiceAccount(ctx, clientID)
	}
	// The time is taken before the read, so an entry never outlives ttl
	// counted from when the store was asked.
	now := d.now()
	if account, ok := d.services.get(clientID, now); ok {
		return account, nil
	}
	account, err := d.store.GetServiceAccount(ctx, clientID)
	if err == nil {
		d.services.put(account, now)
	}
	return account, err
}
