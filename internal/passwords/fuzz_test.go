package passwords

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary stored hashes to Verify: malformed ones are
// ErrMalformedHash, never a panic or a match. Costs are capped so a fuzzed
// "m=4000000000" cannot exhaust memory: parameters outside the hasher's own
// bounds are malformed too.
func FuzzVerify(f *testing.F) {
	h, err := NewHasher(Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}, 1, time.Second, rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := h.Hash(context.Background(), "fuzzing password")
	f.Add(good, "fuzzing password")
	f.Add("$argon2id$v=19$m=64,t=1,p=1$$", "x")
	f.Fuzz(func(t *testing.T, encoded, password string) {
		ok, err := h.Verify(context.Background(), encoded, password)
		if err != nil && !errors.Is(err, ErrMalformedHash) {
			t.Fatalf("Verify(%q) = %v", encoded, err)
		}
		if ok && encoded != good {
			// A different encoding of the same hash may match; nothing else.
			if _, _, _, derr := decode(encoded); derr != nil {
				t.Fatalf("a malformed hash matched: %q", encoded)
			}
		}
	})
}
