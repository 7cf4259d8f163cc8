package accounts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

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
// most the TTL after the store was read. absent are the ids found to be no
// client's: a token exchange asks for every audience it addresses
// (IsRegisteredClient).
type clientCache struct {
	present readCache[storage.Client]
	absent  readCache[struct{}]
}

func newClientCache(ttl time.Duration) *clientCache {
	return &clientCache{present: readCache[storage.Client]{ttl: ttl}, absent: readCache[struct{}]{ttl: ttl}}
}

func (c *clientCache) forget(id string) {
	c.present.forget(id)
	c.absent.forget(id)
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
		if _, fresh, generation = d.clients.absent.get(id, readAt); fresh {
			return false, nil
		}
	}
	_, err := d.store.GetClient(ctx, id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if d.clients != nil {
			d.clients.absent.put(id, struct{}{}, readAt, generation)
		}
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read client: %w", err)
	}
	return true, nil
}
