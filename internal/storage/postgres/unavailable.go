package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chit-auth/chit/internal/storage"
)

// An unreachable database is storage.ErrUnavailable, so that callers are
// told to try again shortly (503) rather than that the server failed (500):
// a restart, a failover or a network cut is over in seconds. Errors are
// marked where pgx returns them, by the pool every query goes through; a
// transaction's are marked when inTx returns, a connection's taken from the
// pool (WithCleanupLock) by its user.

// unreachableStates are the SQLSTATEs, besides class 08 (connection
// exception), of a server that cannot serve the connection now.
var unreachableStates = map[string]bool{
	"57P01": true, // admin_shutdown: the server is stopping
	"57P02": true, // crash_shutdown: another backend crashed, the server restarts
	"57P03": true, // cannot_connect_now: the server is starting up or in recovery
	"57P05": true, // idle_session_timeout: the server closed an idle connection
	"53300": true, // too_many_connections: the server is full for now
}

// unreachable reports whether err says the database could not be reached or
// the connection to it was lost. A server that answers and refuses (wrong
// password, unknown database, a failed statement) is not: retrying would
// not help, and an operator must look.
func unreachable(err error) bool {
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "08") || unreachableStates[pgErr.Code]
	}
	var netErr net.Error
	return errors.As(err, new(*pgconn.ConnectError)) ||
		// Nothing reached the server: the connection was closed or lost
		// before the query was written.
		pgconn.SafeToRetry(err) ||
		pgconn.Timeout(err) ||
		errors.Is(err, pgconn.ErrConnClosed) ||
		errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// unavailable marks err as storage.ErrUnavailable when the database could
// not be reached. An error that is the end of ctx, the caller's deadline or
// cancellation, stays as it is: it is the caller's answer, not the store's.
func unavailable(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return err
	case unreachable(err):
		return storage.Unavailable(err)
	}
	return err
}

// classifyingPool is the connection pool, whose query methods mark the
// errors of an unreachable database (unavailable). Its other methods are
// the pool's own.
type classifyingPool struct{ *pgxpool.Pool }

func (p classifyingPool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := p.Pool.Exec(ctx, sql, args...)
	return tag, unavailable(ctx, err)
}

func (p classifyingPool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := p.Pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, unavailable(ctx, err)
	}
	return classifyingRows{rows, ctx}, nil
}

func (p classifyingPool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return classifyingRow{p.Pool.QueryRow(ctx, sql, args...), ctx}
}

func (p classifyingPool) SendBatch(ctx context.Context, batch *pgx.Batch) pgx.BatchResults {
	return classifyingBatch{p.Pool.SendBatch(ctx, batch), ctx}
}

func (p classifyingPool) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := p.Pool.Begin(ctx)
	return tx, unavailable(ctx, err)
}

type classifyingRow struct {
	row pgx.Row
	ctx context.Context
}

func (r classifyingRow) Scan(dest ...any) error { return unavailable(r.ctx, r.row.Scan(dest...)) }

type classifyingRows struct {
	pgx.Rows
	ctx context.Context
}

func (r classifyingRows) Scan(dest ...any) error { return unavailable(r.ctx, r.Rows.Scan(dest...)) }
func (r classifyingRows) Err() error             { return unavailable(r.ctx, r.Rows.Err()) }

type classifyingBatch struct {
	pgx.BatchResults
	ctx context.Context
}

func (b classifyingBatch) Exec() (pgconn.CommandTag, error) {
	tag, err := b.BatchResults.Exec()
	return tag, unavailable(b.ctx, err)
}

func (b classifyingBatch) Query() (pgx.Rows, error) {
	rows, err := b.BatchResults.Query()
	if err != nil {
		return rows, unavailable(b.ctx, err)
	}
	return classifyingRows{rows, b.ctx}, nil
}

func (b classifyingBatch) QueryRow() pgx.Row {
	return classifyingRow{b.BatchResults.QueryRow(), b.ctx}
}

func (b classifyingBatch) Close() error { return unavailable(b.ctx, b.BatchResults.Close()) }
