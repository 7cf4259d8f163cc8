package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// A write that cannot take the database's lock within busy_timeout, because
// another process holds it, is storage.ErrUnavailable (the transports'
// "try again shortly"), in autocommit and in a transaction alike; once the
// lock is released, writes work again. A failed statement stays internal.
func TestLockHeldPastTheBusyTimeoutIsUnavailable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	store, err := OpenPath(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	// The writer's one connection waits 20 ms instead of ten seconds.
	if _, err := store.writer.DB.ExecContext(ctx, `PRAGMA busy_timeout = 20`); err != nil {
		t.Fatal(err)
	}
	var timeout int
	if err := store.writer.DB.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&timeout); err != nil || timeout != 20 {
		t.Fatalf("busy_timeout %d, %v: the writer has another connection", timeout, err)
	}

	other, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	holder, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}

	user := storage.User{Name: "alice", PasswordHash: "h", Role: "USER", CreatedAt: time.Now()}
	allow := func(storage.LoginFailures) bool { return true }
	for name, write := range map[string]func() error{
		"autocommit": func() error { return store.CreateUser(ctx, user) },
		"transaction": func() error {
			_, _, err := store.ReserveLoginAttempt(ctx, "alice", time.Now(), time.Hour, allow)
			return err
		},
	} {
		err := write()
		if !errors.Is(err, storage.ErrUnavailable) || chiterr.KindOf(err) != chiterr.Unavailable || chiterr.RetryAfter(err) != storage.UnavailableRetryAfter {
			t.Errorf("%s write while another process holds the lock: %v (kind %v), want storage.ErrUnavailable", name, err, chiterr.KindOf(err))
		}
	}
	// Reads go on: in WAL mode a reader does not wait for a writer.
	if _, err := store.GetLoginFailures(ctx, "alice"); err != nil {
		t.Errorf("read while another process holds the write lock: %v", err)
	}

	if _, err := holder.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateUser(ctx, user); err != nil {
		t.Fatalf("write once the lock is released: %v", err)
	}
	if _, _, err := store.ReserveLoginAttempt(ctx, "alice", time.Now(), time.Hour, allow); err != nil {
		t.Fatalf("transaction once the lock is released: %v", err)
	}

	_, err = store.writer.ExecContext(ctx, `INSERT INTO no_such_table VALUES (1)`)
	if err == nil || errors.Is(err, storage.ErrUnavailable) || chiterr.KindOf(err) != chiterr.Internal {
		t.Fatalf("a failed statement: %v (kind %v), want an internal error", err, chiterr.KindOf(err))
	}
}
