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

func (s *Store) CreateSigningKey(ctx context.Context, key storage.SigningKey) error {
	return s.insert(ctx,
		`INSERT INTO signing_keys (id, algorithm, private_key, public_key, state, created_at, activated_at, retired_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		key.ID, key.Algorithm, key.PrivateKey, key.PublicKey, key.State, toUnix(key.CreatedAt), toUnix(key.ActivatedAt), toUnix(key.RetiredAt))
}

func (s *Store) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT id, algorithm, private_key, public_key, state, created_at, activated_at, retired_at FROM signing_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []storage.SigningKey
	for rows.Next() {
		var key storage.SigningKey
		var createdAt, activatedAt, retiredAt sql.NullInt64
		if err := rows.Scan(&key.ID, &key.Algorithm, &key.PrivateKey, &key.PublicKey, &key.State, &createdAt, &activatedAt, &retiredAt); err != nil {
			return nil, err
		}
		key.CreatedAt, key.ActivatedAt, key.RetiredAt = fromUnix(createdAt), fromUnix(activatedAt), fromUnix(retiredAt)
		keys = append(keys, key)
	}
	return keys, rows.Err()
}

func (s *Store) RotateSigningKeys(ctx context.Context, expectedNextID string, newNext storage.SigningKey, at time.Time) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var nextID string
	err = tx.QueryRowContext(ctx, `SELECT id FROM signing_keys WHERE state = 'next' ORDER BY created_at DESC LIMIT 1`).Scan(&nextID)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if nextID != expectedNextID {
		return storage.ErrConflict
	}
	if nextID != "" {
		if _, err := tx.ExecContext(ctx, `UPDATE signing_keys SET state = 'retired', retired_at = ? WHERE state = 'active'`, toUnix(at)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE signing_keys SET state = 'active', activated_at = ? WHERE id = ?`, toUnix(at), nextID); err != nil {
			return err
		}
	}
	newNext.State = storage.KeyNext
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO signing_keys (id, algorithm, private_key, public_key, state, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		newNext.ID, newNext.Algorithm, newNext.PrivateKey, newNext.PublicKey, newNext.State, toUnix(newNext.CreatedAt)); err != nil {
		return err
	}
	return tx.commit(ctx)
}

func (s *Store) DeleteRetiredSigningKeys(ctx context.Context, cutoff time.Time) (int, error) {
	return s.deleteInBatches(ctx, "signing_keys", `state = 'retired' AND retired_at < ?`, toUnix(cutoff))
}

func (s *Store) ReplaceSigningPrivateKey(ctx context.Context, id string, current, replacement []byte) error {
	result, err := s.writer.ExecContext(ctx, `UPDATE signing_keys SET private_key = ? WHERE id = ? AND private_key = ?`, replacement, id, current)
	if err != nil {
		return err
	}
	return requireOneRow(result, storage.ErrConflict)
}

func (s *Store) ReplaceProviderPrivateKey(ctx context.Context, providerID string, current, replacement []byte) error {
	result, err := s.writer.ExecContext(ctx, `UPDATE providers SET private_key = ? WHERE id = ? AND private_key = ?`, replacement, providerID, current)
	if err != nil {
		return err
	}
	return requireOneRow(result, storage.ErrConflict)
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

// The columns of a record of one token (generation 0), from before logins
// kept one record.
const refreshTokenColumns = `hash, family_id, subject, role, scope, client_id, audience, issued_at, expires_at, family_expires_at, rotated_at, replaced_by, sealed_successor, generation, login_salt`

// The columns of a login's record, in the order scanRefreshRecord reads
// them: as a token's, then the token before the current one.
const (
	refreshLoginColumns     = `family_id, subject, client_id, hash, generation, previous_hash, previous_rotated_at, sealed_successor, role, scope, audience, issued_at, expires_at, family_expires_at, login_salt`
	refreshLoginReadColumns = `hash, family_id, subject, role, scope, client_id, audience, issued_at, expires_at, family_expires_at, NULL, NULL, sealed_successor, generation, login_salt, previous_hash, previous_rotated_at`
	refreshTokenReadColumns = refreshTokenColumns + `, NULL, NULL`
)

func (s *Store) CreateRefreshToken(ctx context.Context, token storage.RefreshToken) error {
	return insertRefreshToken(ctx, s.writer, token)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// insertRefreshToken stores a login's record, or, for generation 0, a
// record of one token.
func insertRefreshToken(ctx context.Context, db execer, token storage.RefreshToken) error {
	var result sql.Result
	var err error
	if token.Generation == 0 {
		result, err = db.ExecContext(ctx,
			`INSERT INTO refresh_tokens (`+refreshTokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			token.Hash, token.FamilyID, token.Subject, token.Role, token.Scope, token.ClientID, token.Audience, toUnix(token.IssuedAt), toUnix(token.ExpiresAt),
			toUnix(token.FamilyExpiresAt), toUnix(token.RotatedAt), token.ReplacedBy, token.SealedSuccessor, int64(token.Generation), token.LoginSalt)
	} else {
		result, err = db.ExecContext(ctx,
			`INSERT INTO refresh_logins (`+refreshLoginColumns+`) VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			token.FamilyID, token.Subject, token.ClientID, token.Hash, int64(token.Generation), token.Role, token.Scope, token.Audience,
			toUnix(token.IssuedAt), toUnix(token.ExpiresAt), toUnix(token.FamilyExpiresAt), token.LoginSalt)
	}
	if err != nil {
		return err
	}
	return requireOneRow(result, storage.ErrAlreadyExists)
}

// notRevoked keeps out the records of revoked families, also one stored
// after the revocation by an exchange or sign-in that raced it.
func notRevoked(table string) string {
	return `NOT EXISTS (SELECT 1 FROM revoked_families WHERE revoked_families.family_id = ` + table + `.family_id)`
}

func scanRefreshRecord(row interface{ Scan(...any) error }) (storage.RefreshToken, storage.PreviousRefreshToken, error) {
	var token storage.RefreshToken
	var previous storage.PreviousRefreshToken
	var issuedAt, expiresAt, familyExpiresAt, rotatedAt, previousRotatedAt sql.NullInt64
	var generation int64
	err := row.Scan(&token.Hash, &token.FamilyID, &token.Subject, &token.Role, &token.Scope, &token.ClientID, &token.Audience,
		&issuedAt, &expiresAt, &familyExpiresAt, &rotatedAt, &token.ReplacedBy, &token.SealedSuccessor, &generation, &token.LoginSalt,
		&previous.Hash, &previousRotatedAt)
	token.IssuedAt, token.ExpiresAt, token.RotatedAt = fromUnix(issuedAt), fromUnix(expiresAt), fromUnix(rotatedAt)
	token.FamilyExpiresAt, token.Generation = fromUnix(familyExpiresAt), uint64(generation)
	previous.RotatedAt = fromUnix(previousRotatedAt)
	return token, previous, notFound(err)
}

func (s *Store) GetRefreshToken(ctx context.Context, familyID string, hash []byte) (storage.RefreshToken, error) {
	var row *sql.Row
	if familyID == "" {
		row = s.db.QueryRowContext(ctx, `SELECT `+refreshTokenReadColumns+` FROM refresh_tokens
			WHERE hash = ? AND generation = 0 AND `+notRevoked("refresh_tokens"), hash)
	} else {
		row = s.db.QueryRowContext(ctx, `SELECT `+refreshLoginReadColumns+` FROM refresh_logins
			WHERE family_id = ? AND `+notRevoked("refresh_logins"), familyID)
	}
	record, previous, err := scanRefreshRecord(row)
	if err != nil {
		return storage.RefreshToken{}, err
	}
	token, ok := storage.TokenOfRecord(record, previous, hash)
	if !ok {
		return storage.RefreshToken{}, storage.ErrNotFound
	}
	return token, nil
}

func (s *Store) GetRefreshTokenWithUser(ctx context.Context, familyID string, hash []byte) (storage.RefreshToken, *storage.User, error) {
	return storage.ReadRefreshTokenWithUser(ctx, s, familyID, hash)
}

func (s *Store) GetRefreshLogin(ctx context.Context, familyID string) (storage.RefreshToken, error) {
	record, _, err := scanRefreshRecord(s.db.QueryRowContext(ctx, `SELECT `+refreshLoginReadColumns+` FROM refresh_logins
		WHERE family_id = ? AND `+notRevoked("refresh_logins"), familyID))
	if err != nil {
		return storage.RefreshToken{}, err
	}
	token, _ := storage.TokenOfRecord(record, storage.PreviousRefreshToken{}, record.Hash)
	return token, nil
}

func (s *Store) CreateRefreshTokenKey(ctx context.Context, key storage.RefreshTokenKey) error {
	return s.insert(ctx, `INSERT INTO refresh_token_keys (id, secret, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		int64(key.ID), key.Secret, toUnix(key.CreatedAt))
}

func (s *Store) ListRefreshTokenKeys(ctx context.Context) ([]storage.RefreshTokenKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, secret, created_at FROM refresh_token_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []storage.RefreshTokenKey
	for rows.Next() {
		var key storage.RefreshTokenKey
		var id int64
		var createdAt sql.NullInt64
		if err := rows.Scan(&id, &key.Secret, &createdAt); err != nil {
			return nil, err
		}
		key.ID, key.CreatedAt = uint32(id), fromUnix(createdAt)
		keys = append(keys, key)
	}
	return keys, rows.Err()
}

func (s *Store) ReplaceRefreshTokenKeySecret(ctx context.Context, id uint32, current, replacement []byte) error {
	result, err := s.writer.ExecContext(ctx, `UPDATE refresh_token_keys SET secret = ? WHERE id = ? AND secret = ?`, replacement, int64(id), current)
	if err != nil {
		return err
	}
	return requireOneRow(result, storage.ErrConflict)
}

func (s *Store) DeleteExpiredRefreshTokens(ctx context.Context, cutoff time.Time) (int, error) {
	logins, err := s.deleteInBatches(ctx, "refresh_logins", `expires_at < ?`, toUnix(cutoff))
	if err != nil {
		return logins, err
	}
	tokens, err := s.deleteInBatches(ctx, "refresh_tokens", `expires_at < ?`, toUnix(cutoff))
	return logins + tokens, err
}

// WithCleanupLock runs fn: one SQLite file has one server.
func (s *Store) WithCleanupLock(ctx context.Context, fn func() error) (bool, error) {
	return true, fn()
}
