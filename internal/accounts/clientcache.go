package accounts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

// maxCachedClients bounds the client cache; when full it starts over.
const maxCachedClients = 10_000

// clientCache keeps registered OAuth clients for as short a time as the
// service account cache keeps accounts (Config.ServiceAccountCacheTTL),
// after a token request authenticated them: a device polls /oauth2/token
// every few seconds and an application refreshes often, and each request
// read its client from the store, beside the one operation its grant
// needs. Its rules are the service account cache's: only a request whose
// authentication succeeded against the entry is answered from it (a wrong
// secret reads the store, as an unknown id does); a write to the client on
// this server forgets it at once; one made on another replica (a deletion,
// a secret rotation, narrower grants) is seen when the entry expires, at
// most the TTL after the store was read.
type clientCache struct {
	ttl     time.Duration
	mu      sync.RWMutex
	entries map[string]cachedClient
	// absent are ids found to be no client's, and when: a token exchange
	// asks for every audience it addresses (IsRegisteredClient).
	absent map[string]time.Time
	// forgets counts forget calls, so that a request that read the store
	// before a write cannot put the old client back afterwards.
	forgets uint64
}

type cachedClient struct {
	client storage.Client
	readAt time.Time
}

// get returns the client read at most ttl before now, if there is one, and
// the cache's generation, to be passed to put after reading the store.
func (c *clientCache) get(id string, now time.Time) (entry cachedClient, fresh bool, generation uint64) {
	c.mu.RLock()
	entry, ok := c.entries[id]
	generation = c.forgets
	c.mu.RUnlock()
	// An entry "read" after now means the clock went back; it is not trusted.
	if !ok || now.Sub(entry.readAt) >= c.ttl || now.Before(entry.readAt) {
		return cachedClient{}, false, generation
	}
	return entry, true, generation
}

func (c *clientCache) put(client storage.Client, readAt time.Time, generation uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forgets != generation {
		return
	}
	if c.entries == nil || len(c.entries) >= maxCachedClients {
		c.entries = make(map[string]cachedClient)
	}
	c.entries[client.ID] = cachedClient{client: client, readAt: readAt}
}

// absentFresh reports whether id was found to be no client's at most ttl
// before now, with the cache's generation.
func (c *clientCache) absentFresh(id string, now time.Time) (fresh bool, generation uint64) {
	c.mu.RLock()
	readAt, ok := c.absent[id]
	generation = c.forgets
	c.mu.RUnlock()
	return ok && now.Sub(readAt) < c.ttl && !now.Before(readAt), generation
}

func (c *clientCache) putAbsent(id string, readAt time.Time, generation uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forgets != generation {
		return
	}
	if c.absent == nil || len(c.absent) >= maxCachedClients {
		c.absent = make(map[string]time.Time)
	}
	c.absent[id] = readAt
}

func (c *clientCache) forget(id string) {
	c.mu.Lock()
	delete(c.entries, id)
	delete(c.absent, id)
	c.forgets++
	c.mu.Unlock()
}

// forgetClient drops a client this server is about to change or has
// changed, when there is a cache.
func (d *Directory) forgetClient(id string) {
	if d.clients != nil {
		d.clients.forget(id)
	}
}

// IsRegisteredClient reports whether id is a registered OAuth client's (or
// one of Chit's own). That an id is no client's is remembered for the
// client cache's time, as a client is: a client registered under it on
// this server is seen at once, on another replica within that time.
func (d *Directory) IsRegisteredClient(ctx context.Context, id string) (bool, error) {
	if slices.Contains(FirstPartyClientIDs, id) {
		return true, nil
	}
	if ValidateClientID(id) != nil {
		return false, nil
	}
	readAt := d.now()
	var generation uint64
	if d.clients != nil {
		var fresh bool
		if fresh, generation = d.clients.absentFresh(id, readAt); fresh {
			return false, nil
		}
	}
	_, err := d.store.GetClient(ctx, id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if d.clients != nil {
			d.clients.putAbsent(id, readAt, generation)
		}
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read client: %w", err)
	}
	return true, nil
}
