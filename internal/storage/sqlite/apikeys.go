package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

const apiKeyColumns = `id, subject, name, scope, hash, created_at, expires_at`

func scanAPIKey(row rowScanner) (storage.APIKey, error) {
	var key storage.APIKey
	var scope string
	var created, expires sql.NullInt64
	if err := row.Scan(&key.ID, &key.Subject, &key.Name, &scope, &key.Hash, &created, &expires); err != nil {
		return storage.APIKey{}, notFound(err)
	}
	key.Scopes, key.CreatedAt, key.ExpiresAt = splitList(scope), fromUnix(created), fromUnix(expires)
	return key, nil
}

func (s *Store) CreateAPIKey(ctx context.Context, key storage.APIKey) error {
	return s.insert(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		key.ID, key.Subject, key.Name, joinList(key.Scopes), key.Hash, toUnix(key.CreatedAt), toUnix(key.ExpiresAt))
}

func (s *Store) GetAPIKey(ctx context.Context, id string) (storage.APIKey, error) {
	return scanAPIKey(s.db.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = ?`, id))
}

func (s *Store) ListAPIKeys(ctx context.Context, subject string, page storage.Page) ([]storage.APIKey, error) {
	return listRows(ctx, s.db, scanAPIKey, `SELECT `+apiKeyColumns+` FROM api_keys WHERE subject = ? AND id > ? ORDER BY id LIMIT ?`,
		subject, page.After, pageLimit(page))
}

func (s *Store) DeleteAPIKey(ctx context.Context, id string, revokedAt time.Time) error {
	return s.updateRecord(ctx, func(tx *transaction) (*storage.SubjectRevocation, error) {
		result, err := tx.ExecContext(ctx, `DELETE FROM api_keys WHERE id = ?`, id)
		if err != nil {
			return nil, err
		}
		if err := requireOneRow(result, storage.ErrNotFound); err != nil {
			return nil, err
		}
		return nil, revokeFamily(ctx, tx, storage.APIKeyFamily(id), revokedAt)
	})
}

func (s *Store) DeleteExpiredAPIKeys(ctx context.Context, cutoff time.Time) (int, error) {
	return s.deleteInBatches(ctx, "api_keys", `expires_at < ?`, toUnix(cutoff))
}
