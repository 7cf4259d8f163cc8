package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chit-auth/chit/internal/storage"
)

// The columns of a record of one token (generation 0), from before logins
// kept one record (storage.Logins says why they stay, and until when).
const refreshTokenColumns = `hash, family_id, subject, role, scope, client_id, audience, issued_at, expires_at, family_expires_at, rotated_at, replaced_by, sealed_successor, generation, login_salt`

// The columns of a login's record, in the order scanRefreshRecord reads
// them: as a token's, then the token before the current one, then the
// DPoP key the login is bound to (none for a record of one token).
const (
	refreshLoginColumns     = `family_id, subject, client_id, hash, generation, previous_hash, previous_rotated_at, sealed_successor, role, scope, audience, issued_at, expires_at, family_expires_at, login_salt, dpop_jkt`
	refreshLoginReadColumns = `hash, family_id, subject, role, scope, client_id, audience, issued_at, expires_at, family_expires_at, NULL::bigint, NULL::bytea, sealed_successor, generation, login_salt, previous_hash, previous_rotated_at, dpop_jkt`
	refreshTokenReadColumns = refreshTokenColumns + `, NULL::bytea, NULL::bigint, NULL::text`
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
		tag, err = q.Exec(ctx, `INSERT INTO refresh_logins (`+refreshLoginColumns+`) VALUES ($1, $2, $3, $4, $5, NULL, NULL, NULL, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING`,
			t.FamilyID, t.Subject, t.ClientID, t.Hash, int64(t.Generation), t.Role, t.Scope, t.Audience,
			toUnix(t.IssuedAt), toUnix(t.ExpiresAt), toUnix(t.FamilyExpiresAt), t.LoginSalt, t.DPoPKeyThumbprint)
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
	// A record of one token has no DPoP binding: NULL, read as unbound.
	var keyThumbprint *string
	err := row.Scan(&t.Hash, &t.FamilyID, &t.Subject, &t.Role, &t.Scope, &t.ClientID, &t.Audience, &issuedAt, &expiresAt, &familyExpiresAt,
		&rotatedAt, &t.ReplacedBy, &t.SealedSuccessor, &generation, &t.LoginSalt, &previous.Hash, &previousRotatedAt, &keyThumbprint)
	t.IssuedAt, t.ExpiresAt, t.FamilyExpiresAt, t.RotatedAt = fromUnix(issuedAt), fromUnix(expiresAt), fromUnix(familyExpiresAt), fromUnix(rotatedAt)
	t.Generation, previous.RotatedAt = uint64(generation), fromUnix(previousRotatedAt)
	if keyThumbprint != nil {
		t.DPoPKeyThumbprint = *keyThumbprint
	}
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

func (s *Store) DeleteExpiredRefreshTokens(ctx context.Context, cutoff time.Time) (int, error) {
	logins, err := deleteInBatches(ctx, s.pool, "refresh_logins", "family_id", `expires_at < $1`, toUnix(cutoff))
	if err != nil {
		return logins, err
	}
	tokens, err := deleteInBatches(ctx, s.pool, "refresh_tokens", "hash", `expires_at < $1`, toUnix(cutoff))
	return logins + tokens, err
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
