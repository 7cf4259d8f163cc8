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
	ctx := context.Background()
	dsn := postgrestest.FreshDSN(t)
	store, err := Connect(ctx, dsn)
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
	if _, err := provider.UpTo(ctx, 3); err != nil {
		t.Fatal(err)
	}
	rows := storagetest.RowsFromBefore(t)
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

// Duplicate active and next keys from before the one-per-algorithm indexes
// (schema version 9) are retired by the migration, all but the newest.
func TestDuplicateSigningKeysRetiredByMigration(t *testing.T) {
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
	if _, err := provider.UpTo(ctx, 9); err != nil {
		t.Fatal(err)
	}
	rows := storagetest.SigningKeysFromBefore()
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
