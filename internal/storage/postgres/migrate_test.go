package postgres

import (
	"context"
	"io/fs"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/postgres/postgrestest"
	"github.com/chit-auth/chit/internal/storage/storagetest"
)

// Rows written before a login's record was keyed by its family (schema
// version 3: records of one token, and login records among them) are read
// and rotated after the migration.
func TestRowsFromBeforeLoginRecordsMoved(t *testing.T) {
	checkRowsAfterMigration(t, 3, storagetest.RowsFromBefore(t))
}

// Duplicate active and next keys from before the one-per-algorithm indexes
// (schema version 9) are retired by the migration, all but the newest.
func TestDuplicateSigningKeysRetiredByMigration(t *testing.T) {
	checkRowsAfterMigration(t, 9, storagetest.SigningKeysFromBefore())
}

// checkRowsAfterMigration writes rows into a fresh schema migrated up to
// version, then migrates it the rest of the way and checks the rows read
// right.
func checkRowsAfterMigration(t *testing.T, version int64, rows storagetest.RowsOfAnOlderSchema) {
	t.Helper()
	ctx := context.Background()
	store, err := Connect(ctx, postgrestest.FreshDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDBFromPool(store.pool.Pool)
	files, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, files)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provider.UpTo(ctx, version); err != nil {
		t.Fatal(err)
	}
	for _, row := range rows.Statements("$") {
		if _, err := db.ExecContext(ctx, row.SQL, row.Args...); err != nil {
			t.Fatalf("%s: %v", row.SQL, err)
		}
	}
	db.Close()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rows.Check(t, storage.Store(store))
}
