package tokens

import (
	"sync"
	"time"
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
type verifiedCache struct {
	mu      sync.RWMutex
	entries map[verifiedKey]Claims
	bytes   int
}

// verifiedKey is the whole token, compared exactly: a forged token can never
// find a genuine one's claims, and the map's own hashing is far cheaper than
// a digest on this path, which every CheckToken takes. sources counts the
// key sources the token was verified against (Check trusts more keys than
// Authenticate).
type verifiedKey struct {
	token   string
	sources int
}

// get returns cached claims still valid at notExpiredAt.
func (c *verifiedCache) get(key verifiedKey, notExpiredAt time.Time) (Claims, bool) {
	c.mu.RLock()
	claims, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || !notExpiredAt.Before(claims.ExpiresAt) {
		return Claims{}, false
	}
	return claims, true
}

func (c *verifiedCache) put(key verifiedKey, claims Claims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxVerified || c.bytes+len(key.token) > maxVerifiedBytes {
		c.entries, c.bytes = make(map[verifiedKey]Claims), 0
	}
	if _, ok := c.entries[key]; !ok {
		c.bytes += len(key.token)
	}
	c.entries[key] = claims
}
