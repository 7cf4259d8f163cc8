package passwords

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"sync/atomic"
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
	for _, tc := range []struct{ name, encoded string }{
		{"not PHC at all", "plaintext"},
		{"argon2i, not argon2id", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5"},
		{"an older argon2 version", "$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5"},
		{"zero iterations", "$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5"},
		{"a salt that is not base64", "$argon2id$v=19$m=64,t=1,p=1$!!!$a2V5a2V5a2V5a2V5a2V5a2V5"},
		{"a key too short", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$short"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ok, err := h.Verify(context.Background(), tc.encoded, "x"); ok || !errors.Is(err, ErrMalformedHash) {
				t.Errorf("Verify(%q) = %v, %v; want false, ErrMalformedHash", tc.encoded, ok, err)
			}
		})
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

// testClock is a wall clock the test sets, for the hasher's deadline sums.
type testClock struct{ nanos atomic.Int64 }

func (c *testClock) now() time.Time             { return time.Unix(0, c.nanos.Load()) }
func (c *testClock) set(t time.Time)            { c.nanos.Store(t.UnixNano()) }
func (c *testClock) advance(step time.Duration) { c.nanos.Add(int64(step)) }

// clockedHasher is a hasher on a test clock that reads now.
func clockedHasher(t *testing.T, queueTimeout time.Duration, now time.Time) (*Hasher, *testClock) {
	t.Helper()
	h := newTestHasher(t, 1, queueTimeout)
	clock := &testClock{}
	clock.set(now)
	h.now = clock.now
	return h, clock
}

// saltReadAdvances moves the clock by step whenever a hash reads its salt:
// the hash then takes step on the clock.
type saltReadAdvances struct {
	clock *testClock
	step  time.Duration
}

func (r saltReadAdvances) Read(p []byte) (int, error) {
	r.clock.advance(r.step)
	return io.ReadFull(rand.Reader, p)
}

// A caller whose slot frees up when its deadline leaves no time for a hash
// is told to retry, without hashing: a hash the deadline cuts would end as a
// deadline error (a 504 over REST), not as a sign-in.
func TestNoHashingSlotTooLateForTheDeadline(t *testing.T) {
	base := time.Now()
	h, clock := clockedHasher(t, time.Minute, base)
	encoded, err := h.Hash(context.Background(), "waiting password")
	if err != nil {
		t.Fatal(err)
	}
	h.hashNanos.Store(int64(50 * time.Millisecond))
	ctx, cancel := context.WithDeadline(context.Background(), base.Add(time.Hour))
	defer cancel()
	release, err := h.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		ok  bool
		err error
	}
	// The caller reads the clock once it has found every slot taken, to
	// weigh its deadline against the queue.
	queued := make(chan struct{}, 1)
	h.now = func() time.Time {
		select {
		case queued <- struct{}{}:
		default:
		}
		return clock.now()
	}
	outcomes := make(chan outcome, 1)
	go func() {
		ok, err := h.Verify(ctx, encoded, "waiting password")
		outcomes <- outcome{ok, err}
	}()
	<-queued
	// The slot comes with 60 ms left, and a hash here takes 50.
	clock.set(base.Add(time.Hour - 60*time.Millisecond))
	release()
	got := <-outcomes
	if got.ok || chiterr.KindOf(got.err) != chiterr.ResourceExhausted || chiterr.RetryAfter(got.err) <= 0 ||
		errors.Is(got.err, context.DeadlineExceeded) {
		t.Fatalf("Verify given a slot too late for its deadline = %v, %v; want ResourceExhausted with a retry hint, no hash", got.ok, got.err)
	}
	if !h.slots.TryAcquire(1) {
		t.Fatal("the refused caller kept the slot")
	}
}

// A deadline reached while queued is the queue's refusal, not the
// deadline's error.
func TestDeadlineInTheQueueIsARetryNotADeadlineError(t *testing.T) {
	h := newTestHasher(t, 1, time.Minute)
	release, err := h.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = h.Verify(ctx, "", "waiting password")
	if chiterr.KindOf(err) != chiterr.ResourceExhausted || chiterr.RetryAfter(err) <= 0 || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Verify queued past its deadline: %v; want ResourceExhausted with a retry hint, no deadline error", err)
	}
}

// A hash that ends past its call's deadline (slowed by load) is refused as
// too busy rather than handed on to a call its deadline has ended.
func TestHashEndingPastTheDeadlineIsARetry(t *testing.T) {
	base := time.Now()
	h, clock := clockedHasher(t, time.Minute, base)
	h.random = saltReadAdvances{clock, 2 * time.Hour}
	ctx, cancel := context.WithDeadline(context.Background(), base.Add(time.Hour))
	defer cancel()
	if _, err := h.Hash(ctx, "slow password"); chiterr.KindOf(err) != chiterr.ResourceExhausted || chiterr.RetryAfter(err) <= 0 {
		t.Fatalf("Hash ending past its deadline: %v; want ResourceExhausted with a retry hint", err)
	}
}

// A free slot is taken whatever the estimate of a hash's time says, so an
// estimate made too high (a slow first hash) is corrected by the next
// hashes rather than refusing every sign-in from then on.
func TestAFreeSlotIsTakenWhateverTheEstimate(t *testing.T) {
	h := newTestHasher(t, 1, time.Minute)
	h.hashNanos.Store(int64(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := h.Hash(ctx, "first password"); err != nil {
		t.Fatalf("Hash with a free slot and an estimate over its deadline: %v", err)
	}
	if h.expectedHashTime() >= time.Hour {
		t.Fatal("the estimate did not follow the hash timed")
	}
}

// The time a hash is expected to take follows the hashes timed.
func TestExpectedHashTimeFollowsTheHashes(t *testing.T) {
	h, clock := clockedHasher(t, time.Minute, time.Now())
	h.random = saltReadAdvances{clock, 80 * time.Millisecond}
	for range 20 {
		if _, err := h.Hash(context.Background(), "timed password"); err != nil {
			t.Fatal(err)
		}
	}
	// (7/8)^20 of the first estimate is left: 75 ms of the 80.
	if got := h.expectedHashTime(); got < 70*time.Millisecond || got > 80*time.Millisecond {
		t.Fatalf("expected hash time %v after 20 hashes of 80ms", got)
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
		t.Run("common password "+weak, func(t *testing.T) {
			if err := CheckPolicy(weak); chiterr.KindOf(err) != chiterr.InvalidArgument || !strings.Contains(err.Error(), "common") {
				t.Errorf("common password %q: got %v", weak, err)
			}
		})
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
		name     string
		password string
		mention  string
	}{
		{"7 four-byte characters", "😀😀😀😀😀😀😀", "at least 8 characters"},
		{"1026 bytes in 513 characters", strings.Repeat("é", 513), "at most 1024 bytes"},
		{"bytes that are not UTF-8", "long enough \xff\xfe", "UTF-8"},
		{"a replacement character", "long enough \uFFFD", "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := CheckPolicy(tc.password); chiterr.KindOf(err) != chiterr.InvalidArgument || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("%q: got %v, want InvalidArgument naming %q", tc.password, err, tc.mention)
			}
		})
	}
	for _, tc := range []struct{ name, password string }{
		{"8 four-byte characters", "😀😀😀😀😀😀😀😀"},
		{"1024 bytes in 512 characters", strings.Repeat("é", 512)},
	} {
		t.Run(tc.name+" is accepted", func(t *testing.T) {
			t.Parallel()
			if err := CheckPolicy(tc.password); err != nil {
				t.Errorf("%q: %v", tc.password, err)
			}
		})
	}
}
