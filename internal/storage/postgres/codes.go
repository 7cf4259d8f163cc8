package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chit-auth/chit/internal/storage"
)

const codeColumns = `hash, client_id, redirect_uri, code_challenge, subject, role, scope, nonce, auth_time, expires_at, used_at, family_id, session_id`

func (s *Store) CreateAuthorizationCode(ctx context.Context, c storage.AuthorizationCode) error {
	return s.insert(ctx, s.pool, `INSERT INTO authorization_codes (`+codeColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING`,
		c.Hash, c.ClientID, c.RedirectURI, c.CodeChallenge, c.Subject, c.Role, c.Scope, c.Nonce,
		toUnix(c.AuthTime), toUnix(c.ExpiresAt), toUnix(c.UsedAt), c.FamilyID, c.SessionID)
}

func (s *Store) RedeemAuthorizationCode(ctx context.Context, hash []byte, usedAt time.Time, familyID string, check func(storage.AuthorizationCode) error) (storage.AuthorizationCode, error) {
	var code storage.AuthorizationCode
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// FOR UPDATE makes concurrent redemptions of one code queue: the
		// second reads the first one's used_at and family.
		var authTime, expiresAt, used *int64
		err := tx.QueryRow(ctx, `SELECT `+codeColumns+` FROM authorization_codes WHERE hash = $1 FOR UPDATE`, hash).Scan(
			&code.Hash, &code.ClientID, &code.RedirectURI, &code.CodeChallenge, &code.Subject, &code.Role, &code.Scope,
			&code.Nonce, &authTime, &expiresAt, &used, &code.FamilyID, &code.SessionID)
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
