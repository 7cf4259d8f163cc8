package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/chit-auth/chit/internal/storage"
)

//go:embed migrations/*.sql
var migrations embed.FS

// FileName is the database file Open creates inside the data directory.
const FileName = "chit.db"

// Store is a storage.Store on one SQLite database file.
type Store struct {
	// db serves reads: WAL lets them run beside a writer.
	db *pool
	// writer holds the one connection that writes. SQLite admits one writer
	// at a time; queueing writers here, in Go, is far faster than letting
	// them collide on the file lock and back off in SQLite's busy handler.
	writer *pool

	// rotations feeds the group committer (see rotation.go).
	rotations     chan *rotation
	closing       chan struct{}
	closeOnce     sync.Once
	committerDone chan struct{}
	// removeOnClose is the directory of a store in memory (OpenMemory).
	removeOnClose string
	groupCommits  atomic.Int64
	// onRotationQueued, when set (by tests, before any rotation), is called
	// by each rotation as it starts waiting for the committer.
	onRotationQueued func()
}

var _ storage.Store = (*Store)(nil)

// Open opens (creating if needed) the database in dataDir and applies any
// pending migrations.
func Open(ctx context.Context, dataDir string) (*Store, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	return OpenPath(ctx, filepath.Join(dataDir, FileName))
}

// OpenPath opens the database file at path and applies pending migrations.
// The file is readable by its owner only (0600), and SQLite gives its WAL
// and shared-memory files the same mode: they hold password hashes, token
// digests and, without a key encryption key, private keys.
func OpenPath(ctx context.Context, path string) (*Store, error) {
	if err := ownerOnly(path); err != nil {
		return nil, err
	}
	return open(ctx, path)
}

// OpenMemory opens an empty store whose database is removed when it is
// closed: for tests and throwaway development servers (chitd serve --db
// memory:). It is the file store, so it behaves alike and passes the same
// conformance suite, on a file in /dev/shm (memory) where the machine has
// one, else in the temporary directory. A process killed before Close
// leaves the directory behind (in /dev/shm until the next reboot).
func OpenMemory(ctx context.Context) (*Store, error) {
	parent := ""
	if info, err := os.Stat("/dev/shm"); err == nil && info.IsDir() {
		parent = "/dev/shm"
	}
	dir, err := os.MkdirTemp(parent, "chit-memory-")
	if err != nil {
		return nil, fmt.Errorf("create the memory store's directory: %w", err)
	}
	store, err := Open(ctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	store.removeOnClose = dir
	return store, nil
}

// open opens the database at path.
func open(ctx context.Context, path string) (*Store, error) {
	query := url.Values{}
	// busy_timeout lets the operator commands and the server share the file;
	// synchronous(FULL) makes each commit durable before it returns, even in WAL mode.
	for _, pragma := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)"} {
		query.Add("_pragma", pragma)
	}
	// Write transactions take the write lock up front, so two of them never
	// deadlock upgrading from a read lock.
	query.Set("_txlock", "immediate")
	// The writer keeps up to 64 MiB of pages (SQLite's default is 2 MiB):
	// rotations update the records of logins spread over the whole table,
	// and re-reading each one's page would slow rotations as logins
	// accumulate. It checkpoints the WAL every 10,000 pages (40 MiB) rather
	// than 1,000, so a checkpoint writes a page back once for several of its
	// updates. secure_delete zeroes the space a deleted or updated row frees
	// (a replaced key, a deleted user's password hash) instead of leaving it
	// in the file; measured, the store's benchmarks did not slow.
	writerQuery := url.Values{}
	for key, values := range query {
		writerQuery[key] = slices.Clone(values)
	}
	writerQuery["_pragma"] = append(writerQuery["_pragma"], "cache_size(-65536)", "wal_autocheckpoint(10000)", "secure_delete(1)")
	writer, err := sql.Open("sqlite", "file:"+path+"?"+writerQuery.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite database: %w", err)
	}
	writer.SetMaxOpenConns(1)
	if err := writer.PingContext(ctx); err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
	}
	if err := migrate(ctx, writer); err != nil {
		writer.Close()
		return nil, err
	}
	// The read pool refuses writes: a write there would bypass the writer's
	// queue and wait in SQLite's busy handler instead, sleeping while it
	// holds a thread.
	query.Add("_pragma", "query_only(1)")
	db, err := sql.Open("sqlite", "file:"+path+"?"+query.Encode())
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite database: %w", err)
	}
	// Reads are CPU work in SQLite's library, so a few connections per core
	// serve them; keeping them all idle rather than closing them keeps
	// their prepared statements (statements.go) and page caches.
	readers := max(8, 2*runtime.GOMAXPROCS(0))
	db.SetMaxOpenConns(readers)
	db.SetMaxIdleConns(readers)
	s := &Store{
		db:            newPool(db),
		writer:        newPool(writer),
		rotations:     make(chan *rotation),
		closing:       make(chan struct{}),
		committerDone: make(chan struct{}),
	}
	go s.commitRotations()
	return s, nil
}

// ownerOnly creates the database file with mode 0600 if it is missing, and
// narrows it (and its WAL and shared-memory files) to 0600 if it exists.
func ownerOnly(path string) error {
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open sqlite database %s: %w", path, err)
	}
	file.Close()
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(name, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("make %s readable by its owner only: %w", name, err)
		}
	}
	return nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	migrationFiles, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	provider, err := goose.NewProvider(goose.DialectSQLite3, db, migrationFiles)
	if err != nil {
		return fmt.Errorf("prepare migrations: %w", err)
	}
	// Several processes may open a new database at once (the server and an
	// operator command): two of them then apply the same migration, and the
	// second one's fails (a column that exists) and rolls back. Asking goose
	// again reads the version the first one recorded and applies the rest.
	for attempt := range 5 {
		if _, err = provider.Up(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 20 * time.Millisecond):
		}
	}
	return fmt.Errorf("apply migrations: %w", err)
}

// Close closes the database.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	<-s.committerDone
	err := errors.Join(s.writer.Close(), s.db.Close())
	if s.removeOnClose != "" {
		err = errors.Join(err, os.RemoveAll(s.removeOnClose))
	}
	return err
}

// Times are stored as Unix nanoseconds in UTC; a zero time is NULL.
func toUnix(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

func fromUnix(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.Unix(0, v.Int64).UTC()
}

// insert runs an INSERT ... ON CONFLICT DO NOTHING and reports a skipped row
// as storage.ErrAlreadyExists.
func (s *Store) insert(ctx context.Context, query string, args ...any) error {
	result, err := s.writer.ExecContext(ctx, query, args...)
	if err != nil {
		return err
	}
	return requireOneRow(result, storage.ErrAlreadyExists)
}

func requireOneRow(result sql.Result, otherwise error) error {
	n, err := result.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return otherwise
	}
	return nil
}

func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ErrNotFound
	}
	return err
}

// EraseReplacedValues rebuilds the database from its live rows (VACUUM):
// secure_delete zeroes what the writer frees from now on, but space freed
// before it was on (or by another program) still holds the old cells. It
// then copies the WAL, which holds former versions of pages, into the
// database and truncates it to nothing (a TRUNCATE checkpoint).
func (s *Store) EraseReplacedValues(ctx context.Context) error {
	// Run as given, not kept as a prepared statement: it runs rarely.
	if _, err := s.writer.DB.ExecContext(ctx, `VACUUM`); err != nil {
		return fmt.Errorf("vacuum the database: %w", err)
	}
	var busy, walFrames, checkpointed int
	if err := s.writer.DB.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &walFrames, &checkpointed); err != nil {
		return fmt.Errorf("checkpoint the WAL: %w", err)
	}
	if busy != 0 {
		return errors.New("checkpoint the WAL: another connection kept reading the database; the WAL keeps former pages until its next checkpoint")
	}
	return nil
}

// cleanupBatch bounds each clean-up DELETE: sign-ins and rotations queue
// behind the one writer, and wait for at most one batch.
const cleanupBatch = 1000

// deleteInBatches deletes the rows of table that match condition, one
// transaction per batch, and returns how many it deleted.
func (s *Store) deleteInBatches(ctx context.Context, table, condition string, args ...any) (int, error) {
	total := 0
	key := "rowid"
	if table == "refresh_logins" {
		key = "family_id" // a table WITHOUT ROWID
	}
	query := fmt.Sprintf(`DELETE FROM %s WHERE %s IN (SELECT %s FROM %s WHERE %s LIMIT %d)`, table, key, key, table, condition, cleanupBatch)
	for {
		result, err := s.writer.ExecContext(ctx, query, args...)
		if err != nil {
			return total, err
		}
		n, err := result.RowsAffected()
		total += int(n)
		if err != nil || n < cleanupBatch {
			return total, err
		}
	}
}

// WithCleanupLock runs fn: one SQLite file has one server.
func (s *Store) WithCleanupLock(ctx context.Context, fn func() error) (bool, error) {
	return true, fn()
}
