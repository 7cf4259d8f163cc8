package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

const codeColumns = `hash, client_id, redirect_uri, code_challenge, subject, role, scope, nonce, auth_time, expires_at, used_at, family_id, session_id`

func (s *Store) CreateAuthorizationCode(ctx context.Context, code storage.AuthorizationCode) error {
	return s.insert(ctx, `INSERT INTO authorization_codes (`+codeColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		code.Hash, code.ClientID, code.RedirectURI, code.CodeChallenge, code.Subject, code.Role, code.Scope, code.Nonce,
		toUnix(code.AuthTime), toUnix(code.ExpiresAt), toUnix(code.UsedAt), code.FamilyID, code.SessionID)
}

func (s *Store) RedeemAuthorizationCode(ctx context.Context, hash []byte, usedAt time.Time, familyID string, check func(storage.AuthorizationCode) error) (storage.AuthorizationCode, error) {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return storage.AuthorizationCode{}, err
	}
	defer tx.Rollback()
	var code storage.AuthorizationCode
	var authTime, expiresAt, used sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT `+codeColumns+` FROM authorization_codes WHERE hash = ?`, hash).Scan(
		&code.Hash, &code.ClientID, &code.RedirectURI, &code.CodeChallenge, &code.Subject, &code.Role, &code.Scope,
		&code.Nonce, &authTime, &expiresAt, &used, &code.FamilyID, &code.SessionID)
	if err != nil {
		return storage.AuthorizationCode{}, notFound(err)
	}
	code.AuthTime, code.ExpiresAt, code.UsedAt = fromUnix(authTime), fromUnix(expiresAt), fromUnix(used)
	if !code.UsedAt.IsZero() {
		return code, storage.ErrConflict
	}
	if err := check(code); err != nil {
		return storage.AuthorizationCode{}, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE authorization_codes SET used_at = ?, family_id = ? WHERE hash = ?`,
		toUnix(usedAt), familyID, hash); err != nil {
		return storage.AuthorizationCode{}, err
	}
	return code, tx.commit(ctx)
}

func (s *Store) DeleteExpiredAuthorizationCodes(ctx context.Context, cutoff time.Time) (int, error) {
	return s.deleteInBatches(ctx, "authorization_codes", `expires_at < ?`, toUnix(cutoff))
}
