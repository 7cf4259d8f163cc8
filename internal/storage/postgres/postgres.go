package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strings"
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

// Signing keys.

func (s *Store) CreateSigningKey(ctx context.Context, key storage.SigningKey) error {
	return s.insert(ctx, s.pool, `INSERT INTO signing_keys (id, algorithm, private_key, public_key, state, created_at, activated_at, retired_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
		key.ID, key.Algorithm, key.PrivateKey, key.PublicKey, key.State, toUnix(key.CreatedAt), toUnix(key.ActivatedAt), toUnix(key.RetiredAt))
}

func scanSigningKey(row pgx.Row) (storage.SigningKey, error) {
	var key storage.SigningKey
	var createdAt, activatedAt, retiredAt *int64
	err := row.Scan(&key.ID, &key.Algorithm, &key.PrivateKey, &key.PublicKey, &key.State, &createdAt, &activatedAt, &retiredAt)
	key.CreatedAt, key.ActivatedAt, key.RetiredAt = fromUnix(createdAt), fromUnix(activatedAt), fromUnix(retiredAt)
	return key, err
}

func (s *Store) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	return list(ctx, s.pool, scanSigningKey,
		`SELECT id, algorithm, private_key, public_key, state, created_at, activated_at, retired_at FROM signing_keys ORDER BY created_at, id`)
}

// keyRotationLock serializes rotations across replicas (an arbitrary
// constant naming the advisory lock).
const keyRotationLock = 0x63686974_6b657973

func (s *Store) RotateSigningKeys(ctx context.Context, expectedNextID string, newNext storage.SigningKey, at time.Time) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(keyRotationLock)); err != nil {
			return err
		}
		var nextID string
		err := tx.QueryRow(ctx, `SELECT id FROM signing_keys WHERE state = 'next' ORDER BY created_at DESC LIMIT 1`).Scan(&nextID)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if nextID != expectedNextID {
			return storage.ErrConflict
		}
		if nextID != "" {
			if _, err := tx.Exec(ctx, `UPDATE signing_keys SET state = 'retired', retired_at = $1 WHERE state = 'active'`, toUnix(at)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE signing_keys SET state = 'active', activated_at = $1 WHERE id = $2`, toUnix(at), nextID); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO signing_keys (id, algorithm, private_key, public_key, state, created_at) VALUES ($1, $2, $3, $4, 'next', $5)`,
			newNext.ID, newNext.Algorithm, newNext.PrivateKey, newNext.PublicKey, toUnix(newNext.CreatedAt))
		return err
	})
}

func (s *Store) DeleteRetiredSigningKeys(ctx context.Context, cutoff time.Time) (int, error) {
	return deleteInBatches(ctx, s.pool, "signing_keys", "id", `state = 'retired' AND retired_at < $1`, toUnix(cutoff))
}

func (s *Store) ReplaceSigningPrivateKey(ctx context.Context, id string, current, replacement []byte) error {
	return s.replaceOne(ctx, `UPDATE signing_keys SET private_key = $1 WHERE id = $2 AND private_key = $3`, replacement, id, current)
}

func (s *Store) ReplaceProviderPrivateKey(ctx context.Context, providerID string, current, replacement []byte) error {
	return s.replaceOne(ctx, `UPDATE providers SET private_key = $1 WHERE id = $2 AND private_key = $3`, replacement, providerID, current)
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

// Refresh tokens.

// The columns of a record of one token (generation 0), from before logins
// kept one record.
const refreshTokenColumns = `hash, family_id, subject, role, scope, client_id, audience, issued_at, expires_at, family_expires_at, rotated_at, replaced_by, sealed_successor, generation, login_salt`

// The columns of a login's record, in the order scanRefreshRecord reads
// them: as a token's, then the token before the current one.
const (
	refreshLoginColumns     = `family_id, subject, client_id, hash, generation, previous_hash, previous_rotated_at, sealed_successor, role, scope, audience, issued_at, expires_at, family_expires_at, login_salt`
	refreshLoginReadColumns = `hash, family_id, subject, role, scope, client_id, audience, issued_at, expires_at, family_expires_at, NULL::bigint, NULL::bytea, sealed_successor, generation, login_salt, previous_hash, previous_rotated_at`
	refreshTokenReadColumns = refreshTokenColumns + `, NULL::bytea, NULL::bigint`
)

// insertRefreshToken stores a login's record, or, for generation 0, a
// record of one token.
func insertRefreshToken(ctx context.Context, q querier, t storage.RefreshToken) error {
	var tag pgconn.CommandTag
	var err error
	if t.Generation == 0 {
		tag, err = q.Exec(ctx, `INSERT INTO refresh_tokens (`+refreshTokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT DO NOTHING`,
			t.Hash, t.FamilyID, t.Subject, t.Role, t.Scope, t.ClientID, t.Audience, toUnix(t.IssuedAt), toUnix(t.ExpiresAt), toUnix(t.FamilyExpiresAt),
			toUnix(t.RotatedAt), t.ReplacedBy, t.SealedSuccessor, int64(t.Generation), t.LoginSalt)
	} else {
		tag, err = q.Exec(ctx, `INSERT INTO refresh_logins (`+refreshLoginColumns+`) VALUES ($1, $2, $3, $4, $5, NULL, NULL, NULL, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING`,
			t.FamilyID, t.Subject, t.ClientID, t.Hash, int64(t.Generation), t.Role, t.Scope, t.Audience,
			toUnix(t.IssuedAt), toUnix(t.ExpiresAt), toUnix(t.FamilyExpiresAt), t.LoginSalt)
	}
	if err != nil {
		return err
	}
	return requireOneRow(tag, storage.ErrAlreadyExists)
}

func (s *Store) CreateRefreshToken(ctx context.Context, token storage.RefreshToken) error {
	return insertRefreshToken(ctx, s.pool, token)
}

// notRevoked keeps out the records of revoked families, also one stored
// after the revocation by an exchange or sign-in that raced it.
func notRevoked(table string) string {
	return `NOT EXISTS (SELECT 1 FROM revoked_families WHERE revoked_families.family_id = ` + table + `.family_id)`
}

func scanRefreshRecord(row pgx.Row) (storage.RefreshToken, storage.PreviousRefreshToken, error) {
	var t storage.RefreshToken
	var previous storage.PreviousRefreshToken
	var issuedAt, expiresAt, familyExpiresAt, rotatedAt, previousRotatedAt *int64
	var generation int64
	err := row.Scan(&t.Hash, &t.FamilyID, &t.Subject, &t.Role, &t.Scope, &t.ClientID, &t.Audience, &issuedAt, &expiresAt, &familyExpiresAt,
		&rotatedAt, &t.ReplacedBy, &t.SealedSuccessor, &generation, &t.LoginSalt, &previous.Hash, &previousRotatedAt)
	t.IssuedAt, t.ExpiresAt, t.FamilyExpiresAt, t.RotatedAt = fromUnix(issuedAt), fromUnix(expiresAt), fromUnix(familyExpiresAt), fromUnix(rotatedAt)
	t.Generation, previous.RotatedAt = uint64(generation), fromUnix(previousRotatedAt)
	return t, previous, notFound(err)
}

func (s *Store) GetRefreshToken(ctx context.Context, familyID string, hash []byte) (storage.RefreshToken, error) {
	var record storage.RefreshToken
	var previous storage.PreviousRefreshToken
	var err error
	if familyID == "" {
		record, previous, err = scanRefreshRecord(s.pool.QueryRow(ctx, `SELECT `+refreshTokenReadColumns+` FROM refresh_tokens
			WHERE hash = $1 AND generation = 0 AND `+notRevoked("refresh_tokens"), hash))
	} else {
		record, previous, err = s.readLogin(ctx, familyID)
	}
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
	if familyID == "" {
		return storage.ReadRefreshTokenWithUser(ctx, s, familyID, hash)
	}
	record, err := get[loginWithUser](ctx, s.reads, loginWithUserRows, familyID)
	if err != nil {
		return storage.RefreshToken{}, nil, err
	}
	token, ok := storage.TokenOfRecord(record.login.current, record.login.previous, hash)
	if !ok {
		return storage.RefreshToken{}, nil, storage.ErrNotFound
	}
	return token, record.user, nil
}

func (s *Store) GetRefreshLogin(ctx context.Context, familyID string) (storage.RefreshToken, error) {
	record, _, err := s.readLogin(ctx, familyID)
	if err != nil {
		return storage.RefreshToken{}, err
	}
	token, _ := storage.TokenOfRecord(record, storage.PreviousRefreshToken{}, record.Hash)
	return token, nil
}

// readLogin reads a login's record unless its family was revoked.
func (s *Store) readLogin(ctx context.Context, familyID string) (storage.RefreshToken, storage.PreviousRefreshToken, error) {
	record, err := get[loginRecord](ctx, s.reads, loginRows, familyID)
	return record.current, record.previous, err
}

func (s *Store) CreateRefreshTokenKey(ctx context.Context, key storage.RefreshTokenKey) error {
	return s.insert(ctx, s.pool, `INSERT INTO refresh_token_keys (id, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		int64(key.ID), key.Secret, toUnix(key.CreatedAt))
}

func (s *Store) ListRefreshTokenKeys(ctx context.Context) ([]storage.RefreshTokenKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, secret, created_at FROM refresh_token_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []storage.RefreshTokenKey
	for rows.Next() {
		var key storage.RefreshTokenKey
		var id int64
		var createdAt *int64
		if err := rows.Scan(&id, &key.Secret, &createdAt); err != nil {
			return nil, err
		}
		key.ID, key.CreatedAt = uint32(id), fromUnix(createdAt)
		keys = append(keys, key)
	}
	return keys, rows.Err()
}

func (s *Store) ReplaceRefreshTokenKeySecret(ctx context.Context, id uint32, current, replacement []byte) error {
	return s.replaceOne(ctx, `UPDATE refresh_token_keys SET secret = $1 WHERE id = $2 AND secret = $3`, replacement, int64(id), current)
}

func (s *Store) DeleteExpiredRefreshTokens(ctx context.Context, cutoff time.Time) (int, error) {
	logins, err := deleteInBatches(ctx, s.pool, "refresh_logins", "family_id", `expires_at < $1`, toUnix(cutoff))
	if err != nil {
		return logins, err
	}
	tokens, err := deleteInBatches(ctx, s.pool, "refresh_tokens", "hash", `expires_at < $1`, toUnix(cutoff))
	return logins + tokens, err
}

// revokeFamily records familyID as revoked at revokedAt, in tx: the access
// tokens that carry it (a login's, an API key's) are refused from then on.
func revokeFamily(ctx context.Context, tx pgx.Tx, familyID string, revokedAt time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO revoked_families (family_id, revoked_at) VALUES ($1, $2) ON CONFLICT DO NOTHING`, familyID, toUnix(revokedAt))
	return err
}

func (s *Store) RevokeRefreshFamily(ctx context.Context, familyID string, revokedAt time.Time) (int, error) {
	var n int
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := revokeFamily(ctx, tx, familyID, revokedAt); err != nil {
			return err
		}
		var err error
		n, err = deleteRefreshTokens(ctx, tx, "family_id", familyID)
		return err
	})
	return n, err
}

func (s *Store) RevokeSubject(ctx context.Context, subject string, revokedAt time.Time) (int, error) {
	var n int
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := refuseAccessTokens(ctx, tx, storage.SubjectRevocation{Subject: subject, At: revokedAt}); err != nil {
			return err
		}
		var err error
		n, err = deleteRefreshTokens(ctx, tx, "subject", subject)
		return err
	})
	return n, err
}

// deleteRefreshTokens deletes the login records and the records of one
// token whose column is value, and returns how many it deleted.
func deleteRefreshTokens(ctx context.Context, q querier, column, value string) (int, error) {
	logins, err := deleteWhere(ctx, q, `DELETE FROM refresh_logins WHERE `+column+` = $1`, value)
	if err != nil {
		return 0, err
	}
	tokens, err := deleteWhere(ctx, q, `DELETE FROM refresh_tokens WHERE `+column+` = $1`, value)
	return logins + tokens, err
}

func refuseAccessTokens(ctx context.Context, q querier, revoke storage.SubjectRevocation) error {
	_, err := q.Exec(ctx, `INSERT INTO revoked_subjects (subject, revoked_at) VALUES ($1, $2)
		ON CONFLICT (subject) DO UPDATE SET revoked_at = GREATEST(revoked_subjects.revoked_at, excluded.revoked_at)`,
		revoke.Subject, toUnix(revoke.At))
	return err
}

func (s *Store) RefuseAccessTokens(ctx context.Context, revoke storage.SubjectRevocation) error {
	return refuseAccessTokens(ctx, s.pool, revoke)
}

func (s *Store) GetRevocation(ctx context.Context, familyID, subject, client string) (storage.Revocation, error) {
	var revocation storage.Revocation
	var subjectRevokedAt *int64
	err := s.pool.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM revoked_families WHERE family_id = $1 AND $1 <> ''),
		(SELECT MAX(revoked_at) FROM revoked_subjects WHERE subject IN ($2, $3) AND subject <> '')`, familyID, subject, client).
		Scan(&revocation.FamilyRevoked, &subjectRevokedAt)
	revocation.SubjectRevokedAt = fromUnix(subjectRevokedAt)
	return revocation, err
}

func (s *Store) DeleteExpiredRevocations(ctx context.Context, cutoff time.Time) (int, error) {
	// Refresh tokens of a family about to be forgotten go first: one stored
	// after the revocation (a raced exchange) would otherwise come back.
	for table, key := range map[string]string{"refresh_logins": "family_id", "refresh_tokens": "hash"} {
		if _, err := deleteInBatches(ctx, s.pool, table, key,
			`family_id IN (SELECT family_id FROM revoked_families WHERE revoked_at < $1)`, toUnix(cutoff)); err != nil {
			return 0, err
		}
	}
	families, err := deleteInBatches(ctx, s.pool, "revoked_families", "family_id", `revoked_at < $1`, toUnix(cutoff))
	if err != nil {
		return 0, err
	}
	subjects, err := deleteInBatches(ctx, s.pool, "revoked_subjects", "subject", `revoked_at < $1`, toUnix(cutoff))
	return families + subjects, err
}

// Clients and authorization codes.

const codeColumns = `hash, client_id, redirect_uri, code_challenge, subject, role, scope, nonce, auth_time, expires_at, used_at, family_id`

func (s *Store) CreateAuthorizationCode(ctx context.Context, c storage.AuthorizationCode) error {
	return s.insert(ctx, s.pool, `INSERT INTO authorization_codes (`+codeColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING`,
		c.Hash, c.ClientID, c.RedirectURI, c.CodeChallenge, c.Subject, c.Role, c.Scope, c.Nonce,
		toUnix(c.AuthTime), toUnix(c.ExpiresAt), toUnix(c.UsedAt), c.FamilyID)
}

func (s *Store) RedeemAuthorizationCode(ctx context.Context, hash []byte, usedAt time.Time, familyID string, check func(storage.AuthorizationCode) error) (storage.AuthorizationCode, error) {
	var code storage.AuthorizationCode
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// FOR UPDATE makes concurrent redemptions of one code queue: the
		// second reads the first one's used_at and family.
		var authTime, expiresAt, used *int64
		err := tx.QueryRow(ctx, `SELECT `+codeColumns+` FROM authorization_codes WHERE hash = $1 FOR UPDATE`, hash).Scan(
			&code.Hash, &code.ClientID, &code.RedirectURI, &code.CodeChallenge, &code.Subject, &code.Role, &code.Scope,
			&code.Nonce, &authTime, &expiresAt, &used, &code.FamilyID)
		if err != nil {
			return notFound(err)
		}
		code.AuthTime, code.ExpiresAt, code.UsedAt = fromUnix(authTime), fromUnix(expiresAt), fromUnix(used)
		if !code.UsedAt.IsZero() {
			return storage.ErrConflict
		}
		if err := check(code); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE authorization_codes SET used_at = $1, family_id = $2 WHERE hash = $3`, toUnix(usedAt), familyID, hash)
		return err
	})
	if err != nil && !errors.Is(err, storage.ErrConflict) {
		return storage.AuthorizationCode{}, err
	}
	return code, err
}

func (s *Store) DeleteExpiredAuthorizationCodes(ctx context.Context, cutoff time.Time) (int, error) {
	return deleteInBatches(ctx, s.pool, "authorization_codes", "hash", `expires_at < $1`, toUnix(cutoff))
}

// Throttling.

func (s *Store) GetLoginFailures(ctx context.Context, key string) (storage.LoginFailures, error) {
	var failures storage.LoginFailures
	var last *int64
	err := s.pool.QueryRow(ctx, `SELECT failures, last_failure_at FROM login_failures WHERE key = $1`, key).Scan(&failures.Count, &last)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.LoginFailures{}, nil
	}
	failures.LastFailureAt = fromUnix(last)
	return failures, err
}

func (s *Store) ReserveLoginAttempt(ctx context.Context, key string, at time.Time, forgetAfter time.Duration, allow func(storage.LoginFailures) bool) (storage.LoginFailures, bool, error) {
	var before storage.LoginFailures
	allowed := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// The row exists before it is locked, so that concurrent first
		// attempts queue on it too.
		if _, err := tx.Exec(ctx, `INSERT INTO login_failures (key, failures, last_failure_at) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING`,
			key, toUnix(at)); err != nil {
			return err
		}
		var last *int64
		if err := tx.QueryRow(ctx, `SELECT failures, last_failure_at FROM login_failures WHERE key = $1 FOR UPDATE`, key).
			Scan(&before.Count, &last); err != nil {
			return err
		}
		before.LastFailureAt = fromUnix(last)
		if before.Count == 0 || before.LastFailureAt.Before(at.Add(-forgetAfter)) {
			before = storage.LoginFailures{}
		}
		if allowed = allow(before); !allowed {
			return nil
		}
		_, err := tx.Exec(ctx, `UPDATE login_failures SET failures = $1, last_failure_at = $2 WHERE key = $3`, before.Count+1, toUnix(at), key)
		return err
	})
	return before, allowed && err == nil, err
}

func (s *Store) ReleaseLoginAttempts(ctx context.Context, key string, n int) error {
	_, err := s.pool.Exec(ctx, `UPDATE login_failures SET failures = GREATEST(failures - $1, 0) WHERE key = $2 AND failures > 0`, n, key)
	return err
}

func (s *Store) ResetLoginFailures(ctx context.Context, key string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM login_failures WHERE key = $1`, key)
	return err
}

func (s *Store) DeleteStaleLoginFailures(ctx context.Context, cutoff time.Time) (int, error) {
	return deleteInBatches(ctx, s.pool, "login_failures", "key", `last_failure_at < $1`, toUnix(cutoff))
}

// loginsQuery lists a subject's live logins: the records of one per login
// and, for logins from before them, their one unrotated token.
const loginsQuery = `SELECT family_id, client_id, scope, audience, issued_at, expires_at, family_expires_at, generation FROM (
	SELECT family_id, client_id, scope, audience, issued_at, expires_at, family_expires_at, generation
	FROM refresh_logins WHERE subject = $1 AND family_id > $2 AND expires_at > $3
	UNION ALL
	SELECT family_id, client_id, scope, audience, issued_at, expires_at, family_expires_at, generation
	FROM refresh_tokens t WHERE subject = $1 AND family_id > $2 AND expires_at > $3 AND rotated_at IS NULL
		AND NOT EXISTS (SELECT 1 FROM refresh_logins l WHERE l.family_id = t.family_id)
) logins ORDER BY family_id LIMIT $4`

func (s *Store) ListLogins(ctx context.Context, subject string, now time.Time, page storage.Page) ([]storage.RefreshToken, error) {
	logins, err := list(ctx, s.pool, scanLogin, loginsQuery, subject, page.After, toUnix(now), pageLimit(page))
	for i := range logins {
		logins[i].Subject = subject
	}
	return logins, err
}

func scanLogin(row pgx.Row) (storage.RefreshToken, error) {
	var login storage.RefreshToken
	var issued, expires, familyExpires *int64
	if err := row.Scan(&login.FamilyID, &login.ClientID, &login.Scope, &login.Audience, &issued, &expires, &familyExpires, &login.Generation); err != nil {
		return storage.RefreshToken{}, err
	}
	login.IssuedAt, login.ExpiresAt, login.FamilyExpiresAt = fromUnix(issued), fromUnix(expires), fromUnix(familyExpires)
	return login, nil
}
