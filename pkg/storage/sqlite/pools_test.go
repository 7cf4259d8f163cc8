package sqlite

import (
	"context"
	"testing"
)

// Every write must queue for the one writer connection: a write on the read
// pool would instead contend for SQLite's file lock and sleep in its busy
// handler. The read pool refuses writes, so a method that used it for one
// fails the conformance suite rather than slowing down under load.
func TestReadPoolRefusesWrites(t *testing.T) {
	ctx := context.Background()
	store, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.db.ExecContext(ctx, `DELETE FROM users`); err == nil {
		t.Fatal("a write on the read pool succeeded")
	}
	if _, err := store.writer.ExecContext(ctx, `DELETE FROM users`); err != nil {
		t.Fatalf("a write on the writer failed: %v", err)
	}
	var n int
	if err := store.db.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		t.Fatalf("a read on the read pool failed: %v", err)
	}
}
