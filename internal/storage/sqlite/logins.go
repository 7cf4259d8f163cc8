package sqlite

import (
	"context"
	"database/sql"
	"time"

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
	refreshLoginReadColumns = `hash, family_id, subject, role, scope, client_id, audience, issued_at, expires_at, family_expires_at, NULL, NULL, sealed_successor, generation, login_salt, previous_hash, previous_rotated_at, dpop_jkt`
	refreshTokenReadColumns = refreshTokenColumns + `, NULL, NULL, NULL`
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
			`INSERT INTO refresh_logins (`+refreshLoginColumns+`) VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			token.FamilyID, token.Subject, token.ClientID, token.Hash, int64(token.Generation), token.Role, token.Scope, token.Audience,
			toUnix(token.IssuedAt), toUnix(token.ExpiresAt), toUnix(token.FamilyExpiresAt), token.LoginSalt, token.DPoPKeyThumbprint)
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
	// A record of one token has no DPoP binding: NULL, read as unbound.
	var keyThumbprint sql.NullString
	err := row.Scan(&token.Hash, &token.FamilyID, &token.Subject, &token.Role, &token.Scope, &token.ClientID, &token.Audience,
		&issuedAt, &expiresAt, &familyExpiresAt, &rotatedAt, &token.ReplacedBy, &token.SealedSuccessor, &generation, &token.LoginSalt,
		&previous.Hash, &previousRotatedAt, &keyThumbprint)
	token.IssuedAt, token.ExpiresAt, token.RotatedAt = fromUnix(issuedAt), fromUnix(expiresAt), fromUnix(rotatedAt)
	token.FamilyExpiresAt, token.Generation = fromUnix(familyExpiresAt), uint64(generation)
	previous.RotatedAt, token.DPoPKeyThumbprint = fromUnix(previousRotatedAt), keyThumbprint.String
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

func (s *Store) DeleteExpiredRefreshTokens(ctx context.Context, cutoff time.Time) (int, error) {
	logins, err := s.deleteInBatches(ctx, "refresh_logins", `expires_at < ?`, toUnix(cutoff))
	if err != nil {
		return logins, err
	}
	tokens, err := s.deleteInBatches(ctx, "refresh_tokens", `expires_at < ?`, toUnix(cutoff))
	return logins + tokens, err
}

// loginsQuery lists a subject's live logins: the records of one per login
// and, for logins from before them, their one unrotated token.
const loginsQuery = `SELECT family_id, client_id, scope, audience, issued_at, expires_at, family_expires_at, generation FROM (
	SELECT family_id, client_id, scope, audience, issued_at, expires_at, family_expires_at, generation
	FROM refresh_logins WHERE subject = ? AND family_id > ? AND expires_at > ?
	UNION ALL
	SELECT family_id, client_id, scope, audience, issued_at, expires_at, family_expires_at, generation
	FROM refresh_tokens t WHERE subject = ? AND family_id > ? AND expires_at > ? AND rotated_at IS NULL
		AND NOT EXISTS (SELECT 1 FROM refresh_logins l WHERE l.family_id = t.family_id)
) logins ORDER BY family_id LIMIT ?`

func (s *Store) ListLogins(ctx context.Context, subject string, now time.Time, page storage.Page) ([]storage.RefreshToken, error) {
	at := toUnix(now)
	logins, err := listRows(ctx, s.db, scanLogin, loginsQuery, subject, page.After, at, subject, page.After, at, pageLimit(page))
	for i := range logins {
		logins[i].Subject = subject
	}
	return logins, err
}

func scanLogin(row rowScanner) (storage.RefreshToken, error) {
	var login storage.RefreshToken
	var issued, expires, familyExpires sql.NullInt64
	if err := row.Scan(&login.FamilyID, &login.ClientID, &login.Scope, &login.Audience, &issued, &expires, &familyExpires, &login.Generation); err != nil {
		return storage.RefreshToken{}, err
	}
	login.IssuedAt, login.ExpiresAt, login.FamilyExpiresAt = fromUnix(issued), fromUnix(expires), fromUnix(familyExpires)
	return login, nil
}
