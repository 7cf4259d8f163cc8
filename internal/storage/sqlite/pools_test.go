package sqlite

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// Every write must queue for the one writer connection: a write on the read
// pool would instead contend for SQLite's file lock and sleep in its busy
// handler. The read pool refuses writes, so a method that used it for one
// fails the conformance suite rather than slowing down under load.
func TestReadPoolRefusesWrites(t *testing.T) {
	ctx := context.Background()
	store, _ := openTestStore(t)
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

// Many concurrent readers do not make the read pool close and reopen
// connections (each reopen loses the connection's prepared statements and
// page cache, and opening one costs more than the read).
func TestReadPoolKeepsItsConnections(t *testing.T) {
	ctx := context.Background()
	store, _ := openTestStore(t)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for range 50 {
				var n int
				if err := store.db.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if closed := store.db.Stats().MaxIdleClosed; closed != 0 {
		t.Fatalf("the read pool closed %d connections that it could have kept", closed)
	}
}

// A statement a transaction meets for the first time runs unprepared: it
// cannot be prepared on the writer pool while the transaction holds the
// writer's only connection (that deadlocked). It is prepared in the
// background once the connection is free, and later transactions use it.
func TestTransactionMeetsAnUnpreparedStatement(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, _ := openTestStore(t)
	const query = `DELETE FROM users WHERE name = 'nobody-in-particular'`
	tx, err := store.writer.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, query); err != nil {
		t.Fatalf("first use in a transaction: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// Polling with kept would itself start a preparation.
	for _, prepared := store.writer.statements.Load(query); !prepared; _, prepared = store.writer.statements.Load(query) {
		select {
		case <-ctx.Done():
			t.Fatal("the statement was never prepared in the background")
		case <-time.After(10 * time.Millisecond):
		}
	}
	tx, err = store.writer.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, query); err != nil {
		t.Fatalf("use of the kept statement in a transaction: %v", err)
	}
}

// A statement that does not prepare reports its error and is not kept.
func TestBadStatementReportsItsError(t *testing.T) {
	ctx := context.Background()
	store, _ := openTestStore(t)
	const bad = `SELECT x FROM nowhere`
	var n int
	if err := store.db.QueryRowContext(ctx, bad).Scan(&n); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Fatalf("QueryRowContext: got %v, want the table named", err)
	}
	if _, err := store.db.QueryContext(ctx, bad); err == nil {
		t.Fatal("QueryContext of a bad statement succeeded")
	}
	if _, err := store.writer.ExecContext(ctx, `DELETE FROM nowhere`); err == nil {
		t.Fatal("ExecContext of a bad statement succeeded")
	}
	tx, err := store.writer.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM nowhere`); err == nil {
		t.Fatal("a bad statement in a transaction succeeded")
	}
	if _, kept := store.db.statements.Load(bad); kept {
		t.Fatal("a statement that failed to prepare was kept")
	}
}

// A write whose context ends before it commits is rolled back, and says
// so with the context's error (it answered sql.ErrTxDone, which read as a
// failure of the store: an attack run met it as a 500).
func TestCommitAfterTheContextEndedSaysWhy(t *testing.T) {
	store, _ := openTestStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	tx, err := store.writer.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE name = 'nobody'`); err != nil {
		t.Fatal(err)
	}
	cancel()
	// database/sql rolls the transaction back from another goroutine; once
	// it has, Commit answers sql.ErrTxDone. The rollback gives the writer's
	// only connection back, so taking that connection waits for it.
	waitCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	released, err := store.writer.DB.Conn(waitCtx)
	if err != nil {
		t.Fatalf("the writer's connection was not given back after the cancel: %v", err)
	}
	released.Close()
	if err := tx.commit(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("commit after cancel: %v, want context.Canceled", err)
	}
}
