package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// What the pool marks as an unreachable database, and what it leaves an
// internal error (or the caller's own deadline). The whole path, through a
// proxy that cuts the connections, is TestPostgresOutageAnswersUnavailable
// in internal/server.
func TestUnavailableClassifiesConnectionFailures(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name        string
		ctx         context.Context
		err         error
		unavailable bool
	}{
		{"connection refused", context.Background(), fmt.Errorf("connect: %w", refused), true},
		{"connection lost mid-answer", context.Background(), io.ErrUnexpectedEOF, true},
		{"connection closed", context.Background(), fmt.Errorf("query: %w", pgconn.ErrConnClosed), true},
		{"connection exception (08006)", context.Background(), &pgconn.PgError{Code: "08006"}, true},
		{"admin shutdown (57P01)", context.Background(), &pgconn.PgError{Code: "57P01"}, true},
		{"crash shutdown (57P02)", context.Background(), &pgconn.PgError{Code: "57P02"}, true},
		{"starting up (57P03)", context.Background(), &pgconn.PgError{Code: "57P03"}, true},
		{"too many connections (53300)", context.Background(), &pgconn.PgError{Code: "53300"}, true},
		{"wrong password (28P01)", context.Background(), &pgconn.PgError{Code: "28P01"}, false},
		{"unique violation (23505)", context.Background(), &pgconn.PgError{Code: "23505"}, false},
		{"no rows", context.Background(), pgx.ErrNoRows, false},
		{"a bug", context.Background(), errors.New("cannot scan NULL into *string"), false},
		{"the caller's cancellation", done, fmt.Errorf("query: %w", context.Canceled), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := unavailable(tc.ctx, tc.err)
			if got := errors.Is(err, storage.ErrUnavailable); got != tc.unavailable {
				t.Fatalf("unavailable(%v) = %v; ErrUnavailable %v, want %v", tc.err, err, got, tc.unavailable)
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("the cause %v is lost: %v", tc.err, err)
			}
			if wantKind := map[bool]chiterr.Kind{true: chiterr.Unavailable, false: chiterr.Internal}[tc.unavailable]; chiterr.KindOf(err) != wantKind {
				t.Fatalf("kind %v, want %v", chiterr.KindOf(err), wantKind)
			}
		})
	}
	if err := unavailable(context.Background(), nil); err != nil {
		t.Fatalf("unavailable(nil) = %v", err)
	}
	once := unavailable(context.Background(), io.EOF)
	if twice := unavailable(context.Background(), fmt.Errorf("again: %w", once)); chiterr.RetryAfter(twice) != storage.UnavailableRetryAfter || errors.Unwrap(twice) != once {
		t.Fatalf("an error marked twice: %v", twice)
	}
}
