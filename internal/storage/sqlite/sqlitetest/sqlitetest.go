// Package sqlitetest gives tests fresh SQLite stores without paying for the
// migrations each time.
//
// Migrating a new database takes about 300 ms under the race detector
// (modernc's SQLite is Go translated from C, and every migration commits),
// and the tests open hundreds of them. Dir migrates one database per test
// process and copies it: a copy opens in about 15 ms and is the same file
// a fresh sqlite.Open would make. Tests of the migrations themselves call
// sqlite.Open on an empty directory instead.
package sqlitetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/chit-auth/chit/internal/storage/sqlite"
)

var template struct {
	once     sync.Once
	database []byte
	err      error
}

// Dir returns a new directory, removed when tb ends, holding an empty,
// migrated database: sqlite.Open on it opens a fresh store. The directory
// is in /dev/shm where the machine has one, so that commits cost no disk
// flush, as sqlite.OpenMemory's.
func Dir(tb testing.TB) string {
	tb.Helper()
	database, err := migratedDatabase()
	if err != nil {
		tb.Fatal(err)
	}
	dir, err := os.MkdirTemp(memoryParent(), "chit-test-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, sqlite.FileName), database, 0o600); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// Open returns a fresh store in a directory of Dir's, closed when tb ends.
func Open(tb testing.TB) *sqlite.Store {
	tb.Helper()
	store, err := sqlite.Open(context.Background(), Dir(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	return store
}

// migratedDatabase is the file of a database just migrated, made once per
// process. Closing the store checkpoints its WAL into the file, so the file
// alone is the whole database.
func migratedDatabase() ([]byte, error) {
	template.once.Do(func() {
		dir, err := os.MkdirTemp(memoryParent(), "chit-template-")
		if err != nil {
			template.err = err
			return
		}
		defer os.RemoveAll(dir)
		store, err := sqlite.Open(context.Background(), dir)
		if err != nil {
			template.err = fmt.Errorf("migrate the template database: %w", err)
			return
		}
		if err := store.Close(); err != nil {
			template.err = fmt.Errorf("close the template database: %w", err)
			return
		}
		template.database, template.err = os.ReadFile(filepath.Join(dir, sqlite.FileName))
	})
	return template.database, template.err
}

func memoryParent() string {
	if info, err := os.Stat("/dev/shm"); err == nil && info.IsDir() {
		return "/dev/shm"
	}
	return ""
}
