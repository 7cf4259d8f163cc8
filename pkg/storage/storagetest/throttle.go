package storagetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/chit-auth/chit/pkg/storage"
)

func testLoginFailures(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if got, err := s.GetLoginFailures(ctx, "user:alice"); err != nil || got.Count != 0 {
		t.Fatalf("no failures yet: %+v, %v", got, err)
	}
	for i := 1; i <= 3; i++ {
		got, err := s.RecordLoginFailure(ctx, "user:alice", base.Add(time.Duration(i)*time.Second), time.Hour)
		if err != nil || got.Count != i || !sameInstant(got.LastFailureAt, base.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("failure %d: %+v, %v", i, got, err)
		}
	}
	// Long after the last failure the count starts again.
	got, err := s.RecordLoginFailure(ctx, "user:alice", base.Add(2*time.Hour), time.Hour)
	if err != nil || got.Count != 1 {
		t.Fatalf("failure after the forget window: %+v, %v", got, err)
	}
	if err := s.ResetLoginFailures(ctx, "user:alice"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetLoginFailures(ctx, "user:alice"); got.Count != 0 {
		t.Fatalf("after reset: %+v", got)
	}
	if _, err := s.RecordLoginFailure(ctx, "ip:10.0.0.1", base, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteStaleLoginFailures(ctx, base.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("DeleteStaleLoginFailures = %d, %v; want 1", n, err)
	}
}

// Concurrent failures from many replicas or goroutines all count.
func testConcurrentLoginFailures(t *testing.T, s storage.Store) {
	ctx := context.Background()
	const attempts = 20
	var wg sync.WaitGroup
	for range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.RecordLoginFailure(ctx, "user:bob", base, time.Hour); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got, _ := s.GetLoginFailures(ctx, "user:bob"); got.Count != attempts {
		t.Fatalf("%d failures counted, want %d", got.Count, attempts)
	}
}
