package passwords

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/chiterr"
)

// testParams keep the suite fast; the format and logic are the same.
var testParams = Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

func newTestHasher(t *testing.T, maxConcurrent int, queueTimeout time.Duration) *Hasher {
	t.Helper()
	h, err := NewHasher(testParams, maxConcurrent, queueTimeout, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHashAndVerify(t *testing.T) {
	ctx := context.Background()
	h := newTestHasher(t, 2, time.Second)
	encoded, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(encoded, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q does not record its parameters in PHC form", encoded)
	}
	if strings.Contains(encoded, "correct horse") {
		t.Fatal("hash contains the password")
	}
	for _, tc := range []struct {
		name     string
		password string
		want     bool
	}{
		{"right password", "correct horse battery staple", true},
		{"wrong password", "correct horse battery stapl", false},
		{"empty password", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := h.Verify(ctx, encoded, tc.password)
			if err != nil || ok != tc.want {
				t.Fatalf("Verify = %v, %v; want %v", ok, err, tc.want)
			}
		})
	}
	other, _ := h.Hash(ctx, "correct horse battery staple")
	if other == encoded {
		t.Fatal("two hashes of one password are equal: salts are not random")
	}
}

func TestVerifyUnknownAccountIsFalse(t *testing.T) {
	h := newTestHasher(t, 1, time.Second)
	ok, err := h.Verify(context.Background(), "", "decoy password that no account has")
	if err != nil || ok {
		t.Fatalf("Verify against no account = %v, %v; want false even for the decoy's own password", ok, err)
	}
}

func TestVerifyRejectsMalformedHashes(t *testing.T) {
	h := newTestHasher(t, 1, time.Second)
	for _, encoded := range []string{
		"plaintext",
		"$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=64,t=1,p=1$!!!$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$short",
	} {
		if ok, err := h.Verify(context.Background(), encoded, "x"); ok || !errors.Is(err, ErrMalformedHash) {
			t.Errorf("Verify(%q) = %v, %v; want false, ErrMalformedHash", encoded, ok, err)
		}
	}
}

func TestNeedsRehash(t *testing.T) {
	h := newTestHasher(t, 1, time.Second)
	encoded, _ := h.Hash(context.Background(), "some password")
	if h.NeedsRehash(encoded) {
		t.Fatal("a fresh hash needs no rehash")
	}
	stronger, err := NewHasher(Params{MemoryKiB: 128, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}, 1, time.Second, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if !stronger.NeedsRehash(encoded) {
		t.Fatal("a hash with older parameters must need a rehash")
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	h := newTestHasher(t, 1, 20*time.Millisecond)
	// Hold the only slot, as a long hash would.
	release, err := h.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Hash(context.Background(), "waiting password")
	if chiterr.KindOf(err) != chiterr.ResourceExhausted || chiterr.RetryAfter(err) <= 0 {
		t.Fatalf("Hash with no free slot: got %v, want ResourceExhausted with a retry hint", err)
	}
	release()
	if _, err := h.Hash(context.Background(), "waiting password"); err != nil {
		t.Fatalf("Hash after the slot is free: %v", err)
	}
}

func TestCheckPolicy(t *testing.T) {
	if err := CheckPolicy("short"); chiterr.KindOf(err) != chiterr.InvalidArgument {
		t.Fatalf("short password: got %v, want InvalidArgument", err)
	}
	if err := CheckPolicy("long enough"); err != nil {
		t.Fatalf("acceptable password refused: %v", err)
	}
	for _, weak := range []string{"password1", "PassWord123", "qwertyuiop", "12345678"} {
		if err := CheckPolicy(weak); chiterr.KindOf(err) != chiterr.InvalidArgument || !strings.Contains(err.Error(), "common") {
			t.Errorf("common password %q: got %v", weak, err)
		}
	}
	if err := CheckPolicy(strings.Repeat("x", MaxLength+1)); chiterr.KindOf(err) != chiterr.InvalidArgument {
		t.Fatalf("oversized password: got %v", err)
	}
	if len(common) < 50 {
		t.Fatalf("the embedded list has %d entries", len(common))
	}
}

func TestNewHasherRefusesWeakParameters(t *testing.T) {
	if _, err := NewHasher(Params{MemoryKiB: 64, Iterations: 0, Parallelism: 1, SaltLength: 16, KeyLength: 32}, 1, 0, rand.Reader); err == nil {
		t.Fatal("zero iterations accepted")
	}
	if _, err := NewHasher(testParams, 0, 0, rand.Reader); err == nil {
		t.Fatal("zero concurrency accepted")
	}
}

func BenchmarkHashDefaultParams(b *testing.B) {
	h, err := NewHasher(DefaultParams, 1, 0, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := h.Hash(context.Background(), "benchmark password"); err != nil {
			b.Fatal(err)
		}
	}
}

// The shortest length counts characters and the longest bytes, as the
// messages say; text that is not valid UTF-8 (or was repaired into U+FFFD
// on its way in) is refused rather than stored as something else.
func TestCheckPolicyCountsCharactersAndRefusesBadText(t *testing.T) {
	for _, tc := range []struct {
		password string
		mention  string
	}{
		{"😀😀😀😀😀😀😀", "at least 8 characters"},
		{strings.Repeat("é", 513), "at most 1024 bytes"},
		{"long enough \xff\xfe", "UTF-8"},
		{"long enough \uFFFD", "UTF-8"},
	} {
		if err := CheckPolicy(tc.password); chiterr.KindOf(err) != chiterr.InvalidArgument || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%q: got %v, want InvalidArgument naming %q", tc.password, err, tc.mention)
		}
	}
	for _, ok := range []string{"😀😀😀😀😀😀😀😀", strings.Repeat("é", 512)} {
		if err := CheckPolicy(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}
