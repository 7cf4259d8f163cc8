package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chit-auth/chit/internal/storage"
)

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
		err := tx.QueryRow(ctx, `SELECT id FROM signing_keys WHERE state = 'next' AND algorithm = $1`, newNext.Algorithm).Scan(&nextID)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if nextID != expectedNextID {
			return storage.ErrConflict
		}
		if nextID != "" {
			// In this order, so that the family never has two active keys.
			if _, err := tx.Exec(ctx, `UPDATE signing_keys SET state = 'retired', retired_at = $1 WHERE state = 'active' AND algorithm = $2`,
				toUnix(at), newNext.Algorithm); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE signing_keys SET state = 'active', activated_at = $1 WHERE id = $2`, toUnix(at), nextID); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `INSERT INTO signing_keys (id, algorithm, private_key, public_key, state, created_at) VALUES ($1, $2, $3, $4, 'next', $5)
			ON CONFLICT DO NOTHING`,
			newNext.ID, newNext.Algorithm, newNext.PrivateKey, newNext.PublicKey, toUnix(newNext.CreatedAt))
		if err != nil {
			return err
		}
		return requireOneRow(tag, storage.ErrConflict)
	})
}

func (s *Store) RetireSigningKeyFamily(ctx context.Context, algorithm string, at time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx,
		`UPDATE signing_keys SET state = 'retired', retired_at = $1 WHERE state IN ('active', 'next') AND algorithm = $2`, toUnix(at), algorithm)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

func (s *Store) DeleteRetiredSigningKeys(ctx context.Context, cutoff, deletedAt time.Time) (int, error) {
	// Retired keys are few (one per rotation and family): one transaction
	// deletes them all and records each removal.
	var n int
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM signing_keys WHERE state = 'retired' AND retired_at < $1 RETURNING id`, toUnix(cutoff))
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := recordRevocationEvent(ctx, tx, storage.RevocationEvent{Kind: storage.RevocationSigningKeyRemoved, KeyID: id, RevokedAt: deletedAt}); err != nil {
				return err
			}
		}
		n = len(ids)
		return nil
	})
	return n, err
}

func (s *Store) ReplaceSigningPrivateKey(ctx context.Context, id string, current, replacement []byte) error {
	return s.replaceOne(ctx, `UPDATE signing_keys SET private_key = $1 WHERE id = $2 AND private_key = $3`, replacement, id, current)
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
