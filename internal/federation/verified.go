package federation

import (
	"sync"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// The verified-assertion cache's bounds; past either one it restarts,
// which costs re-verification, never correctness.
const (
	maxVerifiedAssertions     = 10_000
	maxVerifiedAssertionBytes = 16 << 20 // of assertion text
)

// verifiedAssertions remembers assertions whose signature verified, with
// the key that verified it. A platform hands a workload one token for many
// exchanges, so the same text comes back until it expires; parsing it and
// checking its signature again would double an exchange's cost.
//
// An entry saves the signature check only while the issuer's current key
// set still holds that very key (the same object: a refetch or a reload of
// the rules makes new ones), so a removed or rotated key stops its
// assertions at once. The time, audience and claim checks run on every
// exchange. Its key is the whole assertion, compared exactly: a forged
// assertion never finds a genuine one's entry. Only verified assertions get
// in, so a caller cannot fill it with junk.
type verifiedAssertions struct {
	mu      sync.RWMutex
	entries map[string]verifiedAssertion
	bytes   int
}

type verifiedAssertion struct {
	parsed assertion
	key    jwk.Key
}

func (c *verifiedAssertions) get(text string) (verifiedAssertion, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	entry, ok := c.entries[text]
	return entry, ok
}

func (c *verifiedAssertions) put(a assertion, key jwk.Key) {
	text := string(a.raw)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxVerifiedAssertions || c.bytes+len(text) > maxVerifiedAssertionBytes {
		c.entries, c.bytes = make(map[string]verifiedAssertion), 0
	}
	if _, ok := c.entries[text]; !ok {
		c.bytes += len(text)
	}
	c.entries[text] = verifiedAssertion{parsed: a, key: key}
}
