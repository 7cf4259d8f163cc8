package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/postgres"
	"github.com/chit-auth/chit/internal/storage/postgres/postgrestest"
)

// Two transactions take sequence values in one order and commit in the
// other: the later-numbered one commits first. A reader must not hand out
// the committed row while the other transaction may still commit a row
// before it, and must hand out both, in cursor order, once it has.
func TestRevocationEventCommittedLateIsDelivered(t *testing.T) {
	dsn := postgrestest.FreshDSN(t)
	ctx := context.Background()
	store, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	begin := func() pgx.Tx {
		t.Helper()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Taking the id now orders the transactions: early's is lower.
		if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	insert := func(tx pgx.Tx, subject string) {
		t.Helper()
		if _, err := tx.Exec(ctx, `INSERT INTO revocation_events (kind, subject, revoked_at) VALUES ('subject', $1, $2)`,
			subject, time.Now().UnixNano()); err != nil {
			t.Fatal(err)
		}
	}
	early, late := begin(), begin()
	insert(early, "early") // takes the lower seq too
	insert(late, "late")
	if err := late.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// late has committed, but early, older, is still running: handing out
	// late's row now would move a reader's cursor past early's.
	events, err := store.ListRevocationEvents(ctx, storage.RevocationCursor{}, 10)
	if err != nil || len(events) != 0 {
		t.Fatalf("with an older transaction running, ListRevocationEvents = %+v, %v; want nothing yet", events, err)
	}
	bounds, err := store.RevocationBounds(ctx)
	if err != nil || !bounds.Head.IsZero() {
		t.Fatalf("with an older transaction running, the head = %+v, %v; want the start", bounds, err)
	}
	if err := early.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(events) < 2 && time.Now().Before(deadline) {
		// Another program's transaction on this server may hold the
		// snapshot's xmin back a moment.
		if events, err = store.ListRevocationEvents(ctx, storage.RevocationCursor{}, 10); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(events) != 2 || events[0].Subject != "early" || events[1].Subject != "late" || !events[0].Cursor.Before(events[1].Cursor) {
		t.Fatalf("after both committed, ListRevocationEvents = %+v; want early then late", events)
	}
	if events[0].Cursor.Seq > events[1].Cursor.Seq {
		t.Fatalf("early took seq %d, late %d: the test did not commit them out of sequence order", events[0].Cursor.Seq, events[1].Cursor.Seq)
	}
}
