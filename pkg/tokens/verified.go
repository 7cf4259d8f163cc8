package tokens

import (
	"sync"
	"time"
)

// maxVerified bounds the verified-token cache; past it the cache restarts,
// which costs re-verification, never correctness.
const maxVerified = 50_000

// verifiedCache remembers the claims of tokens whose signature and claims
// were verified, keyed by the token's digest, until they expire.
type verifiedCache struct {
	mu      sync.RWMutex
	entries map[string]Claims
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
	if c.entries == nil || len(c.entries) >= maxVerified {
		c.entries = make(map[string]Claims)
	}
	c.entries[key] = claims
}
