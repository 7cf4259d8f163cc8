package tokens

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestVerifiedCacheStaysWithinItsByteBudget(t *testing.T) {
	c := &verifiedCache{}
	expires := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := expires.Add(-time.Hour)
	var last string
	for i := range 2 * maxVerifiedBytes / MaxTokenLength {
		last = fmt.Sprintf("%06d", i) + strings.Repeat("x", MaxTokenLength-6)
		c.put(last, Claims{Subject: "s", ExpiresAt: expires})
		c.put(last, Claims{Subject: "s", ExpiresAt: expires}) // counted once
		if c.bytes > maxVerifiedBytes {
			t.Fatalf("after %d tokens the cache holds %d bytes of tokens, over its %d budget", i+1, c.bytes, maxVerifiedBytes)
		}
	}
	if c.bytes != len(c.entries)*MaxTokenLength {
		t.Fatalf("bytes %d do not match %d entries of %d", c.bytes, len(c.entries), MaxTokenLength)
	}
	if _, ok := c.get(last, now); !ok {
		t.Fatal("the newest token is not cached")
	}
	if _, ok := c.get(last, expires); ok {
		t.Fatal("an expired token's claims were served")
	}
}
