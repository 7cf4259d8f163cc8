package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chit-auth/chit/internal/storage"
)

const apiKeyColumns = `id, subject, name, scope, hash, created_at, expires_at`

func scanAPIKey(row pgx.Row) (storage.APIKey, error) {
	var key storage.APIKey
	var scope string
	var created, expires *int64
	if err := row.Scan(&key.ID, &key.Subject, &key.Name, &scope, &key.Hash, &created, &expires); err != nil {
		return storage.APIKey{}, notFound(err)
	}
	key.Scopes, key.CreatedAt, key.ExpiresAt = splitList(scope), fromUnix(created), fromUnix(expires)
	return key, nil
}

func (s *Store) CreateAPIKey(ctx context.Context, key storage.APIKey) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
		key.ID, key.Subject, key.Name, joinList(key.Scopes), key.Hash, toUnix(key.CreatedAt), toUnix(key.ExpiresAt))
	if err != nil {
		return err
	}
	return requireOneRow(tag, storage.ErrAlreadyExists)
}

// GetAPIKey reads the key with the batched reads: every exchange of an API
// key reads one, and alone each cost the database a round trip of its own.
func (s *Store) GetAPIKey(ctx context.Context, id string) (storage.APIKey, error) {
	return get[storage.APIKey](ctx, s.reads, apiKeyRows, id)
}

var apiKeyRows = &rowKind{
	query: `SELECT ` + apiKeyColumns + ` FROM api_keys WHERE id = ANY($1)`,
	scan: func(rows pgx.Rows) (string, any, error) {
		key, err := scanAPIKey(rows)
		return key.ID, key, err
	},
}

func (s *Store) ListAPIKeys(ctx context.Context, subject string, page storage.Page) ([]storage.APIKey, error) {
	return list(ctx, s.pool, scanAPIKey, `SELECT `+apiKeyColumns+` FROM api_keys WHERE subject = $1 AND id > $2 ORDER BY id LIMIT $3`,
		subject, page.After, pageLimit(page))
}

func (s *Store) DeleteAPIKey(ctx context.Context, id string, revokedAt time.Time) error {
	return s.updateRecord(ctx, func(tx pgx.Tx) (*storage.SubjectRevocation, error) {
		tag, err := tx.Exec(ctx, `DELETE FROM api_keys WHERE id = $1`, id)
		if err != nil {
			return nil, err
		}
		if err := requireOneRow(tag, storage.ErrNotFound); err != nil {
			return nil, err
		}
		return nil, revokeFamily(ctx, tx, storage.APIKeyFamily(id), revokedAt)
	})
}

func (s *Store) DeleteExpiredAPIKeys(ctx context.Context, cutoff time.Time) (int, error) {
	return deleteInBatches(ctx, s.pool, "api_keys", "id", `expires_at < $1`, toUnix(cutoff))
}
