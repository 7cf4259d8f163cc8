package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

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
	err = tx.QueryRowContext(ctx, `SELECT id FROM signing_keys WHERE state = 'next' AND algorithm = ?`, newNext.Algorithm).Scan(&nextID)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if nextID != expectedNextID {
		return storage.ErrConflict
	}
	if nextID != "" {
		// In this order, so that the family never has two active keys.
		if _, err := tx.ExecContext(ctx, `UPDATE signing_keys SET state = 'retired', retired_at = ? WHERE state = 'active' AND algorithm = ?`,
			toUnix(at), newNext.Algorithm); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE signing_keys SET state = 'active', activated_at = ? WHERE id = ?`, toUnix(at), nextID); err != nil {
			return err
		}
	}
	newNext.State = storage.KeyNext
	result, err := tx.ExecContext(ctx,
		`INSERT INTO signing_keys (id, algorithm, private_key, public_key, state, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		newNext.ID, newNext.Algorithm, newNext.PrivateKey, newNext.PublicKey, newNext.State, toUnix(newNext.CreatedAt))
	if err != nil {
		return err
	}
	if err := requireOneRow(result, storage.ErrConflict); err != nil {
		return err
	}
	return tx.commit(ctx)
}

func (s *Store) RetireSigningKeyFamily(ctx context.Context, algorithm string, at time.Time) (int, error) {
	result, err := s.writer.ExecContext(ctx,
		`UPDATE signing_keys SET state = 'retired', retired_at = ? WHERE state IN ('active', 'next') AND algorithm = ?`, toUnix(at), algorithm)
	if err != nil {
		return 0, err
	}
	n, err := result.RowsAffected()
	return int(n), err
}

func (s *Store) DeleteRetiredSigningKeys(ctx context.Context, cutoff, deletedAt time.Time) (int, error) {
	// Retired keys are few (one per rotation and family): one transaction
	// deletes them all and records each removal.
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `DELETE FROM signing_keys WHERE state = 'retired' AND retired_at < ? RETURNING id`, toUnix(cutoff))
	if err != nil {
		return 0, unavailable(err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, unavailable(err)
	}
	for _, id := range ids {
		if err := recordRevocationEvent(ctx, tx, storage.RevocationEvent{Kind: storage.RevocationSigningKeyRemoved, KeyID: id, RevokedAt: deletedAt}); err != nil {
			return 0, err
		}
	}
	return len(ids), tx.commit(ctx)
}

func (s *Store) ReplaceSigningPrivateKey(ctx context.Context, id string, current, replacement []byte) error {
	result, err := s.writer.ExecContext(ctx, `UPDATE signing_keys SET private_key = ? WHERE id = ? AND private_key = ?`, replacement, id, current)
	if err != nil {
		return err
	}
	return requireOneRow(result, storage.ErrConflict)
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
