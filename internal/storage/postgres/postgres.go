package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/chit-auth/chit/internal/storage"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a storage.Store on a PostgreSQL database.
type Store struct {
	// pool marks the errors of an unreachable database (unavailable.go).
	pool classifyingPool
	// rotations groups concurrent refresh-token rotations (rotation.go).
	rotations *rotationGroups
	// reads batches the point reads of a refresh (reads.go).
	reads *reader
	// listener is the connection that LISTENs for revocation events
	// (WaitRevocations); nil until the first wait, and after a failure.
	listenerMu sync.Mutex
	listener   *pgx.Conn
}

var _ storage.Store = (*Store)(nil)

// DefaultMaxConns is the connection pool's size unless the DSN sets
// pool_max_conns.
const DefaultMaxConns = 16

// Open connects to the database at dsn (a postgres:// URL or key=value DSN)
// and applies pending migrations.
func Open(ctx context.Context, dsn string) (*Store, error) {
	store, err := Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if err := store.Migrate(ctx); err != nil {
		store.Close()
		return nil, err
	}
	return store, nil
}

// Connect connects without migrating (chitd migrate migrates alone).
func Connect(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse PostgreSQL DSN: %w", err)
	}
	// pgxpool's default, one connection per core (at least four), leaves
	// every other call queueing behind the batched reads and the rotation
	// committer, which each hold one; a DSN's pool_max_conns still decides.
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = max(cfg.MaxConns, DefaultMaxConns)
	}
	// Chit's statements are prepared once per connection, and the hot ones
	// (the batched reads and rotations) take an array of keys. PostgreSQL's
	// default plan cache planned those again at every execution: a custom
	// plan for n keys looks cheaper than the generic plan's guess of ten, so
	// it never switches. Planning was a quarter of the database's CPU under
	// rotation load; a generic plan (an index scan by key) serves every
	// size. Set after connecting, not in the startup message, which
	// PgBouncer refuses for parameters it does not know. A DSN's own
	// plan_cache_mode decides instead; an empty one sends nothing.
	switch mode, set := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; {
	case set && mode == "":
		delete(cfg.ConnConfig.RuntimeParams, "plan_cache_mode")
	case !set:
		cfg.AfterConnect = preferGenericPlans
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if err := requireSchema(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	store := &Store{pool: classifyingPool{pool}}
	store.startRotationCommitters()
	store.reads = newReader(store)
	return store, nil
}

// preferGenericPlans sets the connection's plan_cache_mode (see Connect);
// a server older than PostgreSQL 12, which has no such setting, keeps its
// own plans.
func preferGenericPlans(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, `SET plan_cache_mode = force_generic_plan`)
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "42704" { // undefined_object: an unknown setting
		return nil
	}
	return err
}

// requireSchema fails when no schema on the search path exists: otherwise
// the first migration fails with PostgreSQL's "no schema has been selected
// to create in", which does not say what to fix.
func requireSchema(ctx context.Context, pool *pgxpool.Pool) error {
	var schema *string
	var searchPath string
	if err := pool.QueryRow(ctx, `SELECT current_schema(), current_setting('search_path')`).Scan(&schema, &searchPath); err != nil {
		return fmt.Errorf("read the search path: %w", err)
	}
	if schema == nil {
		return fmt.Errorf("no schema on the PostgreSQL search path (%s) exists: create it (CREATE SCHEMA ...) or fix search_path in the DSN", searchPath)
	}
	return nil
}

// Migrate applies pending migrations under a session advisory lock: replicas
// starting together wait for each other instead of racing.
func (s *Store) Migrate(ctx context.Context) error {
	files, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return err
	}
	db := stdlib.OpenDBFromPool(s.pool.Pool)
	defer db.Close()
	provider, err := goose.NewProvider(goose.DialectPostgres, db, files, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("prepare migrations: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.stopRotationCommitters()
	s.reads.stop()
	s.pool.Close()
	return nil
}

func toUnix(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := t.UnixNano()
	return &n
}

func fromUnix(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}

func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.ErrNotFound
	}
	return err
}

func requireOneRow(tag pgconn.CommandTag, otherwise error) error {
	if tag.RowsAffected() == 0 {
		return otherwise
	}
	return nil
}

// querier is a pool or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func (s *Store) insert(ctx context.Context, q querier, sql string, args ...any) error {
	tag, err := q.Exec(ctx, sql, args...)
	if err != nil {
		return err
	}
	return requireOneRow(tag, storage.ErrAlreadyExists)
}

// inTx runs fn in a transaction at the database's default isolation (READ
// COMMITTED on PostgreSQL: every operation here is made safe by conditional
// updates, row locks or an advisory lock). PostgreSQL-compatible databases
// that run SERIALIZABLE (CockroachDB, YugabyteDB) may abort a transaction
// with a serialization failure or deadlock; those are retried a few times.
// A transaction's statements run on its own connection, not the pool's
// methods, so its errors are marked here (unavailable.go).
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	const attempts = 5
	var err error
	for attempt := range attempts {
		err = pgx.BeginFunc(ctx, s.pool, fn)
		if !retryable(err) {
			return unavailable(ctx, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 5 * time.Millisecond):
		}
	}
	return unavailable(ctx, err)
}

// retryable reports serialization failures (40001) and deadlocks (40P01).
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// cleanupBatch bounds each clean-up DELETE, so it never holds many row locks
// or a long transaction.
const cleanupBatch = 1000

// deleteInBatches deletes the rows of table whose key matches condition, a
// batch at a time, and returns how many it deleted.
func deleteInBatches(ctx context.Context, q querier, table, key, condition string, args ...any) (int, error) {
	total := 0
	for {
		// The simple protocol plans each batch with its cutoff: a generic
		// plan (see Connect) cannot tell how many rows a cutoff selects,
		// and would read whole tables where an index finds the few rows.
		n, err := deleteWhere(ctx, q, `DELETE FROM `+table+` WHERE `+key+` IN (SELECT `+key+` FROM `+table+` WHERE `+condition+` LIMIT `+fmt.Sprint(cleanupBatch)+`)`,
			append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...)
		total += n
		if err != nil || n < cleanupBatch {
			return total, err
		}
	}
}

// cleanupLock is the advisory lock that elects one replica to clean up.
const cleanupLock = 0x63686974_636c6e75

// WithCleanupLock runs fn only if no other replica is cleaning up now.
func (s *Store) WithCleanupLock(ctx context.Context, fn func() error) (bool, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, unavailable(ctx, err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(cleanupLock)).Scan(&locked); err != nil || !locked {
		return false, unavailable(ctx, err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(cleanupLock))
	return true, fn()
}

func deleteWhere(ctx context.Context, q querier, sql string, args ...any) (int, error) {
	tag, err := q.Exec(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// list runs a query and scans every row with scan.
func list[T any](ctx context.Context, q querier, scan func(pgx.Row) (T, error), sql string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var items []T
	for rows.Next() {
		item, err := scan(rows)
		if err != nil {
			return nil, err
		}
		items = append(items, item)
	}
	return items, rows.Err()
}

// EraseReplacedValues does nothing on PostgreSQL. Old row versions stay in
// the tables' files until VACUUM reuses their space (without zeroing it),
// and in the WAL, its archives and the standbys; erasing them is the
// operator's (VACUUM FULL, recycled WAL), which docs/security.md describes.
func (s *Store) EraseReplacedValues(context.Context) error { return nil }

// replaceOne runs a compare-and-swap UPDATE: no row matched is ErrConflict.
func (s *Store) replaceOne(ctx context.Context, sql string, args ...any) error {
	tag, err := s.pool.Exec(ctx, sql, args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return storage.ErrConflict
	}
	return nil
}
