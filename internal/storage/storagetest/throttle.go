package storagetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

// always is a ReserveLoginAttempt policy that allows every attempt.
func always(storage.LoginFailures) bool { return true }

func testLoginFailures(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if got, err := s.GetLoginFailures(ctx, "user:alice"); err != nil || got.Count != 0 {
		t.Fatalf("no failures yet: %+v, %v", got, err)
	}
	for i := 1; i <= 3; i++ {
		before, allowed, err := s.ReserveLoginAttempt(ctx, "user:alice", base.Add(time.Duration(i)*time.Second), time.Hour, always)
		if err != nil || !allowed || before.Count != i-1 {
			t.Fatalf("attempt %d: before %+v, allowed %v, %v", i, before, allowed, err)
		}
		if got, _ := s.GetLoginFailures(ctx, "user:alice"); got.Count != i || !sameInstant(got.LastFailureAt, base.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("after attempt %d: %+v", i, got)
		}
	}
	// A refused attempt changes nothing, and the policy sees what is counted.
	var seen storage.LoginFailures
	_, allowed, err := s.ReserveLoginAttempt(ctx, "user:alice", base.Add(10*time.Second), time.Hour, func(before storage.LoginFailures) bool {
		seen = before
		return false
	})
	if err != nil || allowed || seen.Count != 3 || !sameInstant(seen.LastFailureAt, base.Add(3*time.Second)) {
		t.Fatalf("a refused attempt: allowed %v, the policy saw %+v, %v", allowed, seen, err)
	}
	if got, _ := s.GetLoginFailures(ctx, "user:alice"); got.Count != 3 {
		t.Fatalf("a refused attempt was counted: %+v", got)
	}
	// A released attempt is taken back; releasing more than are counted
	// leaves none, never fewer.
	if err := s.ReleaseLoginAttempts(ctx, "user:alice", 1); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetLoginFailures(ctx, "user:alice"); got.Count != 2 {
		t.Fatalf("after a release: %+v, want 2", got)
	}
	if err := s.ReleaseLoginAttempts(ctx, "user:alice", 5); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetLoginFailures(ctx, "user:alice"); got.Count != 0 {
		t.Fatalf("after releasing 5 of 2: %+v, want 0", got)
	}
	if _, _, err := s.ReserveLoginAttempt(ctx, "user:alice", base.Add(3*time.Second), time.Hour, always); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ReserveLoginAttempt(ctx, "user:alice", base.Add(3*time.Second), time.Hour, always); err != nil {
		t.Fatal(err)
	}
	// Long after the last attempt the count starts again.
	before, _, err := s.ReserveLoginAttempt(ctx, "user:alice", base.Add(2*time.Hour), time.Hour, always)
	if err != nil || before.Count != 0 {
		t.Fatalf("an attempt after the forget window saw %+v, %v; want a fresh count", before, err)
	}
	if err := s.ResetLoginFailures(ctx, "user:alice"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetLoginFailures(ctx, "user:alice"); got.Count != 0 {
		t.Fatalf("after reset: %+v", got)
	}
	if _, _, err := s.ReserveLoginAttempt(ctx, "ip:10.0.0.1", base, time.Hour, always); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteStaleLoginFailures(ctx, base.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("DeleteStaleLoginFailures = %d, %v; want 1", n, err)
	}
}

// Concurrent attempts from many replicas or goroutines are reserved one
// after the other: each sees every attempt before it, so a policy allowing
// five lets exactly five through.
func testConcurrentLoginFailures(t *testing.T, s storage.Store) {
	ctx := context.Background()
	const attempts, allowedAttempts = 20, 5
	var wg sync.WaitGroup
	var admitted atomic.Int32
	for range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, allowed, err := s.ReserveLoginAttempt(ctx, "user:bob", base, time.Hour, func(before storage.LoginFailures) bool {
				return before.Count < allowedAttempts
			})
			if err != nil {
				t.Error(err)
			}
			if allowed {
				admitted.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := admitted.Load(); n != allowedAttempts {
		t.Fatalf("%d of %d concurrent attempts were let through, want %d", n, attempts, allowedAttempts)
	}
	if got, _ := s.GetLoginFailures(ctx, "user:bob"); got.Count != allowedAttempts {
		t.Fatalf("%d attempts counted, want %d", got.Count, allowedAttempts)
	}
}
