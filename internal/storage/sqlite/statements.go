package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// pool is a connection pool that prepares each distinct statement once and
// keeps it. SQLite parses and plans every statement text it is given, and
// for Chit's indexed single-row lookups that took longer than running them:
// a fifth of the server's CPU in client-credentials sign-ins went to
// sqlite3_prepare. database/sql then prepares a kept statement once on each
// connection that runs it, so the pools are sized not to close connections
// (see OpenPath).
//
// pool's query methods take the same arguments as *sql.DB's, so the store's
// code reads as plain database/sql; the embedded methods it does not
// override (Begin, Exec, Query, QueryRow, a transaction's QueryContext) work
// but prepare their statement anew each time. Every statement text must be
// one of a fixed set (constants, or built from constants), as the store's
// are: each one is kept for the life of the pool.
type pool struct {
	*sql.DB
	statements sync.Map // statement text → *sql.Stmt
	// preparing holds the texts a transaction met unprepared and that are
	// being prepared in the background.
	preparing sync.Map
}

func newPool(db *sql.DB) *pool { return &pool{DB: db} }

// statement returns query prepared, preparing it on first use.
func (p *pool) statement(ctx context.Context, query string) (*sql.Stmt, error) {
	if kept, ok := p.statements.Load(query); ok {
		return kept.(*sql.Stmt), nil
	}
	stmt, err := p.DB.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if kept, raced := p.statements.LoadOrStore(query, stmt); raced {
		_ = stmt.Close()
		return kept.(*sql.Stmt), nil
	}
	return stmt, nil
}

// kept returns query's kept statement, or nil when it has none yet, in
// which case it is prepared in the background. A transaction cannot prepare
// it on the pool itself: preparing takes a connection, and the writer's
// only connection is the transaction's.
func (p *pool) kept(query string) *sql.Stmt {
	if kept, ok := p.statements.Load(query); ok {
		return kept.(*sql.Stmt)
	}
	if _, already := p.preparing.LoadOrStore(query, true); !already {
		go func() {
			defer p.preparing.Delete(query)
			// An error (the pool closed, say) leaves the text unprepared,
			// to be tried again on its next use.
			_, _ = p.statement(context.Background(), query)
		}()
	}
	return nil
}

func (p *pool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	stmt, err := p.statement(ctx, query)
	if err != nil {
		// *sql.Row cannot carry err; running the text unprepared reports
		// the failure when the row is scanned.
		return p.DB.QueryRowContext(ctx, query, args...)
	}
	return stmt.QueryRowContext(ctx, args...)
}

func (p *pool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	stmt, err := p.statement(ctx, query)
	if err != nil {
		return nil, unavailable(err)
	}
	rows, err := stmt.QueryContext(ctx, args...)
	return rows, unavailable(err)
}

func (p *pool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	stmt, err := p.statement(ctx, query)
	if err != nil {
		return nil, unavailable(err)
	}
	result, err := stmt.ExecContext(ctx, args...)
	return result, unavailable(err)
}

// BeginTx starts a transaction whose statements are the pool's kept ones.
// The writer's transactions take the write lock as they begin (_txlock
// immediate): where another process holds it, they fail here.
func (p *pool) BeginTx(ctx context.Context, opts *sql.TxOptions) (*transaction, error) {
	t, err := p.DB.BeginTx(ctx, opts)
	if err != nil {
		return nil, unavailable(err)
	}
	return &transaction{Tx: t, pool: p}, nil
}

// Close closes the kept statements and the pool. A statement a background
// preparation stores after this is closed with the pool's connections.
func (p *pool) Close() error {
	p.statements.Range(func(_, stmt any) bool {
		_ = stmt.(*sql.Stmt).Close()
		return true
	})
	return p.DB.Close()
}

// transaction is a transaction of a pool. Its statements are bound to the
// transaction's connection and end with it.
type transaction struct {
	*sql.Tx
	pool *pool
}

func (t *transaction) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if stmt := t.pool.kept(query); stmt != nil {
		return t.Tx.StmtContext(ctx, stmt).QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}

func (t *transaction) ExecContext(ctx context.Context, query string, args ...any) (result sql.Result, err error) {
	if stmt := t.pool.kept(query); stmt != nil {
		result, err = t.Tx.StmtContext(ctx, stmt).ExecContext(ctx, args...)
	} else {
		result, err = t.Tx.ExecContext(ctx, query, args...)
	}
	return result, unavailable(err)
}

// commit commits the transaction. database/sql rolls a transaction back
// when its context ends, and Commit then answers sql.ErrTxDone: nothing was
// written, and the caller is told why (the deadline or the cancellation),
// not given an error that reads as a failure of the store.
func (t *transaction) commit(ctx context.Context) error {
	err := t.Tx.Commit()
	if errors.Is(err, sql.ErrTxDone) && ctx.Err() != nil {
		return ctx.Err()
	}
	return unavailable(err)
}
