package dpop

import (
	"crypto/elliptic"
	"fmt"
	"strings"
	"testing"
)

// cachedBytes is the size of the encoded headers the cache holds.
func (c *headerCache) cachedBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	for encoded := range c.entries {
		total += len(encoded)
	}
	return total
}

// A header is the client's choice, up to MaxProofSize, and is checked
// (and cached) before the signature: anyone may send valid headers padded
// with members of their own, each once, with junk claims and signatures.
// The cache must not hold them all: 10 000 such proofs pinned 80 MB of a
// replica's memory, with no credential and no valid signature.
func TestVerifyHeaderCacheIsBoundedInBytes(t *testing.T) {
	v := newTestVerifier(&clock{now: epoch}, nil)
	key := newECKey(t, elliptic.P256())
	jwk := publicJWK(t, key.Public())
	padding := strings.Repeat("p", 5800)
	for i := range 2000 {
		header := mustJSON(t, map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk, "pad": fmt.Sprint(i, padding)})
		proof := b64([]byte(header)) + ".e30.AAAA"
		if len(proof) > MaxProofSize {
			t.Fatalf("the test's proof is %d bytes, over MaxProofSize", len(proof))
		}
		if _, err := v.Verify(proof, Request{Method: "GET", URL: target}); err == nil {
			t.Fatal("a proof with a junk signature was accepted")
		}
	}
	if got := v.headers.cachedBytes(); got > maxCachedHeaderBytes {
		t.Errorf("the header cache holds %d bytes of headers, over its bound of %d", got, maxCachedHeaderBytes)
	}
	// Ordinary headers are still cached (and then hit).
	proof := goodParts(t, key, "id-1").sign(t, key)
	if _, err := v.Verify(proof, Request{Method: "GET", URL: target}); err != nil {
		t.Fatal(err)
	}
	v.headers.mu.Lock()
	_, cached := v.headers.entries[strings.Split(proof, ".")[0]]
	v.headers.mu.Unlock()
	if !cached {
		t.Error("an accepted proof's header was not cached")
	}
}
