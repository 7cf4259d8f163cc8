package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/storagetest"
)

// Rows written before a login's record was keyed by its family (schema
// version 8: records of one token, and login records among them) are read
// and rotated after the migration.
func TestRowsFromBeforeLoginRecordsMoved(t *testing.T) {
	checkRowsAfterMigration(t, 8, storagetest.RowsFromBefore(t))
}

// Duplicate active and next keys from before the one-per-algorithm indexes
// (schema version 14) are retired by the migration, all but the newest.
func TestDuplicateSigningKeysRetiredByMigration(t *testing.T) {
	checkRowsAfterMigration(t, 14, storagetest.SigningKeysFromBefore())
}

// checkRowsAfterMigration writes rows into a database migrated up to
// version, then opens it as the store does (migrating it the rest of the
// way) and checks the rows read right.
func checkRowsAfterMigration(t *testing.T, version int64, rows storagetest.RowsOfAnOlderSchema) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	files, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	provider, err := goose.NewProvider(goose.DialectSQLite3, db, files)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provider.UpTo(ctx, version); err != nil {
		t.Fatal(err)
	}
	for _, row := range rows.Statements("?") {
		if _, err := db.ExecContext(ctx, row.SQL, row.Args...); err != nil {
			t.Fatalf("%s: %v", row.SQL, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	store, err := OpenPath(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rows.Check(t, storage.Store(store))
}
