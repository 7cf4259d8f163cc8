package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/chit-auth/chit/pkg/storage"
	"github.com/chit-auth/chit/pkg/storage/postgres"
	"github.com/chit-auth/chit/pkg/storage/postgres/postgrestest"
	"github.com/chit-auth/chit/pkg/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		store, err := postgres.Open(context.Background(), postgrestest.FreshDSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		return store
	})
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
