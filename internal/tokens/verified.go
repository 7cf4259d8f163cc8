package tokens

import (
	"context"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/chit-auth/chit/internal/keys"
)

// The verified-token cache's bounds; past either one it restarts, which
// costs re-verification, never correctness. Only tokens that passed
// verification get in, so a caller cannot fill it with junk.
const (
	maxVerified      = 50_000
	maxVerifiedBytes = 16 << 20 // of token text
)

// verifiedCache remembers the claims of tokens whose signature and claims
// were verified, until they expire.
//
// Its key is the whole token, compared exactly: a forged token can never find
// a genuine one's claims, and the map's own hashing is far cheaper than a
// digest on this path, which every CheckToken takes.
type verifiedCache struct {
	mu      sync.RWMutex
	entries map[string]Claims
	bytes   int
}

// get returns cached claims still valid at notExpiredAt.
func (c *verifiedCache) get(key string, notExpiredAt time.Time) (Claims, bool) {
	c.mu.RLock()
	claims, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || !notExpiredAt.Before(claims.ExpiresAt) {
		return Claims{}, false
	}
	return claims, true
}

func (c *verifiedCache) put(key string, claims Claims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxVerified || c.bytes+len(key) > maxVerifiedBytes {
		c.entries, c.bytes = make(map[string]Claims), 0
	}
	if _, ok := c.entries[key]; !ok {
		c.bytes += len(key)
	}
	c.entries[key] = claims
}

// maxCachedProviderKeys bounds providerKeyCache; past it, it restarts.
const maxCachedProviderKeys = 10_000

// providerKeyCache remembers, for a few seconds, the provider keys found in
// the store. A provider token's cached verification is trusted only while
// its key is: after a provider is deleted or renewed, its old key's tokens
// are refused on every replica within ttl (the revocation propagation time).
// Keys that were not found are not remembered, so a new key works at once.
type providerKeyCache struct {
	ttl   time.Duration
	now   func() time.Time
	mu    sync.Mutex
	found map[string]cachedProviderKey
}

type cachedProviderKey struct {
	key       jwk.Key
	fetchedAt time.Time
}

// forgetAll drops every key found: a provider key was replaced or removed
// on this server, and its tokens must be refused at once here.
func (c *providerKeyCache) forgetAll() {
	c.mu.Lock()
	c.found = nil
	c.mu.Unlock()
}

// lookup finds kid through lookupKey (Dependencies.ProviderKeys), or in
// what it found within ttl.
func (c *providerKeyCache) lookup(ctx context.Context, lookupKey keys.KeyLookup, kid string) (jwk.Key, bool) {
	if lookupKey == nil || kid == "" {
		return nil, false
	}
	now := c.now()
	c.mu.Lock()
	entry, ok := c.found[kid]
	c.mu.Unlock()
	if ok && now.Sub(entry.fetchedAt) < c.ttl && !now.Before(entry.fetchedAt) {
		return entry.key, true
	}
	key, ok := lookupKey(ctx, kid)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		delete(c.found, kid)
		return nil, false
	}
	if c.ttl > 0 {
		if c.found == nil || len(c.found) >= maxCachedProviderKeys {
			c.found = make(map[string]cachedProviderKey)
		}
		c.found[kid] = cachedProviderKey{key: key, fetchedAt: now}
	}
	return key, true
}
