package federation

import (
	"fmt"
	"strings"
	"testing"
)

// The verified-assertion cache stays bounded however many distinct
// assertions a caller has verified: past its count or its bytes it starts
// again.
func TestVerifiedAssertionsBounded(t *testing.T) {
	var cache verifiedAssertions
	for i := range maxVerifiedAssertions + 10 {
		cache.put(assertion{raw: []byte(fmt.Sprintf("a.%d.s", i))}, nil)
		if len(cache.entries) > maxVerifiedAssertions {
			t.Fatalf("%d entries, past the bound %d", len(cache.entries), maxVerifiedAssertions)
		}
	}
	big := strings.Repeat("x", MaxAssertionBytes)
	for i := range maxVerifiedAssertionBytes/MaxAssertionBytes + 10 {
		cache.put(assertion{raw: []byte(fmt.Sprintf("%s.%d.s", big, i))}, nil)
		if cache.bytes > maxVerifiedAssertionBytes {
			t.Fatalf("%d bytes held, past the bound %d", cache.bytes, maxVerifiedAssertionBytes)
		}
	}
	// The same assertion again counts once.
	cache = verifiedAssertions{}
	for range 3 {
		cache.put(assertion{raw: []byte("a.b.c")}, nil)
	}
	if len(cache.entries) != 1 || cache.bytes != len("a.b.c") {
		t.Fatalf("%d entries, %d bytes after one assertion three times", len(cache.entries), cache.bytes)
	}
}
