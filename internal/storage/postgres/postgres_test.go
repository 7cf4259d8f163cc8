package postgres_test

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/postgres"
	"github.com/chit-auth/chit/internal/storage/postgres/postgrestest"
	"github.com/chit-auth/chit/internal/storage/storagetest"
)

// openStore is the suite's factory: a fresh store in its own schema.
func openStore(tb testing.TB) storage.Store {
	store, err := postgres.Open(context.Background(), postgrestest.FreshDSN(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	return store
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, openStore)
}

// Replicas starting together migrate one at a time under the advisory lock.
func TestConcurrentMigrations(t *testing.T) {
	dsn := postgrestest.FreshDSN(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			store, err := postgres.Open(context.Background(), dsn)
			if err == nil {
				store.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
}

// Only one replica cleans up at a time.
func TestCleanupLockElectsOneReplica(t *testing.T) {
	dsn := postgrestest.FreshDSN(t)
	ctx := context.Background()
	first, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	ran, err := first.WithCleanupLock(ctx, func() error {
		ranToo, err := second.WithCleanupLock(ctx, func() error { return nil })
		if err != nil || ranToo {
			t.Errorf("a second replica cleaned up at the same time (%v, %v)", ranToo, err)
		}
		return nil
	})
	if err != nil || !ran {
		t.Fatalf("first replica: %v, %v", ran, err)
	}
	if ran, err := second.WithCleanupLock(ctx, func() error { return nil }); !ran || err != nil {
		t.Fatalf("after the first finished, the second may clean up: %v, %v", ran, err)
	}
}

func BenchmarkStore(b *testing.B) {
	storagetest.Bench(b, openStore)
}

// A DSN whose search_path names no existing schema is refused at connect
// with a message that says what to fix.
func TestMissingSchemaIsNamed(t *testing.T) {
	u, err := url.Parse(postgrestest.FreshDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	query := u.Query()
	missing := query.Get("search_path") + "_missing"
	query.Set("search_path", missing)
	u.RawQuery = query.Encode()
	_, err = postgres.Open(context.Background(), u.String())
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "CREATE SCHEMA") {
		t.Fatalf("got %v, want an error naming %s and CREATE SCHEMA", err, missing)
	}
}
