package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/sqlite"
	"github.com/chit-auth/chit/internal/storage/sqlite/sqlitetest"
	"github.com/chit-auth/chit/internal/storage/storagetest"
)

// openStore is the suite's factory: a fresh store in its own directory.
func openStore(tb testing.TB) storage.Store {
	store, err := sqlite.Open(context.Background(), sqlitetest.Dir(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	return store
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, openStore)
}

func TestReopenKeepsDataAndSkipsAppliedMigrations(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateUser(ctx, storage.User{Name: "alice", PasswordHash: "h", Role: "USER", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	reopened, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer reopened.Close()
	if _, err := reopened.GetUser(ctx, "alice"); err != nil {
		t.Fatalf("user lost across reopen: %v", err)
	}
}

// The timing decorator forwards every method: the whole suite passes through it.
func TestConformanceThroughTimedStore(t *testing.T) {
	storagetest.Run(t, func(tb testing.TB) storage.Store {
		return storage.Timed(openStore(tb), func(string, time.Duration) {})
	})
}

func BenchmarkStore(b *testing.B) {
	storagetest.Bench(b, openStore)
}

// The database and its WAL are readable by their owner only, also when an
// older version left them open to others.
func TestDatabaseFilesAreOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, sqlite.FileName)
	if err := os.WriteFile(path, nil, 0o644); err != nil { // as an older version created it
		t.Fatal(err)
	}
	store, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.CreateUser(context.Background(), storage.User{Name: "alice", PasswordHash: "h", Role: "USER", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, path + "-wal"} {
		info, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if mode := info.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(name), mode)
		}
	}
}

// Several processes opening a new database at once all get a migrated
// store: the ones that lose a race for a migration apply it again.
func TestConcurrentOpensOfANewDatabaseAllMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	const opens = 8
	errs := make(chan error, opens)
	for range opens {
		go func() {
			store, err := sqlite.OpenPath(context.Background(), path)
			if err == nil {
				_, err = store.ListUsers(context.Background(), storage.Page{})
				store.Close()
			}
			errs <- err
		}()
	}
	for range opens {
		if err := <-errs; err != nil {
			t.Fatalf("a concurrent open: %v", err)
		}
	}
}

// The in-memory store passes the whole conformance suite, and each one is
// a database of its own.
func TestMemoryStoreConformance(t *testing.T) {
	storagetest.Run(t, func(tb testing.TB) storage.Store {
		store, err := sqlite.OpenMemory(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { store.Close() })
		return store
	})
}

func TestMemoryStoresAreSeparate(t *testing.T) {
	ctx := context.Background()
	first, err := sqlite.OpenMemory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := sqlite.OpenMemory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if err := first.CreateUser(ctx, storage.User{Name: "alice", PasswordHash: "x", Role: "USER", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := second.GetUser(ctx, "alice"); err == nil {
		t.Fatal("a user created in one memory store is in another")
	}
	if _, err := first.GetUser(ctx, "alice"); err != nil {
		t.Fatalf("the memory store lost its user: %v", err)
	}
}
