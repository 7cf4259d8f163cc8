package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

const providerColumns = `id, claim_token_hash, claim_expires_at, claimed_at, key_id, public_key, private_key,
	refresh_token_hash, sealed_refresh_token, registered_by, created_at`

type rowScanner interface {
	Scan(dest ...any) error
}

func scanProvider(row rowScanner) (storage.Provider, error) {
	var p storage.Provider
	var claimExpiresAt, claimedAt, createdAt sql.NullInt64
	var keyID sql.NullString
	err := row.Scan(&p.ID, &p.ClaimTokenHash, &claimExpiresAt, &claimedAt, &keyID, &p.Credentials.PublicKey,
		&p.Credentials.PrivateKey, &p.Credentials.RefreshTokenHash, &p.Credentials.SealedRefreshToken, &p.RegisteredBy, &createdAt)
	if err != nil {
		return storage.Provider{}, notFound(err)
	}
	p.ClaimExpiresAt, p.ClaimedAt, p.CreatedAt = fromUnix(claimExpiresAt), fromUnix(claimedAt), fromUnix(createdAt)
	p.Credentials.ProviderID, p.Credentials.KeyID = p.ID, keyID.String
	return p, nil
}

func (s *Store) CreateProviders(ctx context.Context, providers []storage.Provider) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for i, p := range providers {
		result, err := tx.ExecContext(ctx,
			`INSERT INTO providers (id, claim_token_hash, claim_expires_at, registered_by, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			p.ID, p.ClaimTokenHash, toUnix(p.ClaimExpiresAt), p.RegisteredBy, toUnix(p.CreatedAt))
		if err != nil {
			return err
		}
		if err := requireOneRow(result, storage.ErrAlreadyExists); err != nil {
			return &storage.ItemError{Index: i, Err: err}
		}
	}
	return tx.commit(ctx)
}

func (s *Store) getProviderWhere(ctx context.Context, column string, value any) (storage.Provider, error) {
	return scanProvider(s.db.QueryRowContext(ctx, `SELECT `+providerColumns+` FROM providers WHERE `+column+` = ?`, value))
}

func (s *Store) GetProvider(ctx context.Context, id string) (storage.Provider, error) {
	return s.getProviderWhere(ctx, "id", id)
}

func (s *Store) GetProviderByClaimToken(ctx context.Context, hash []byte) (storage.Provider, error) {
	return s.getProviderWhere(ctx, "claim_token_hash", hash)
}

func (s *Store) GetProviderByRefreshToken(ctx context.Context, hash []byte) (storage.Provider, error) {
	return s.getProviderWhere(ctx, "refresh_token_hash", hash)
}

func (s *Store) GetProviderByKeyID(ctx context.Context, keyID string) (storage.Provider, error) {
	return s.getProviderWhere(ctx, "key_id", keyID)
}

func (s *Store) ListProviders(ctx context.Context, page storage.Page) ([]storage.Provider, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+providerColumns+` FROM providers WHERE id > ? ORDER BY id LIMIT ?`, page.After, pageLimit(page))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var providers []storage.Provider
	for rows.Next() {
		p, err := scanProvider(rows)
		if err != nil {
			return nil, err
		}
		providers = append(providers, p)
	}
	return providers, rows.Err()
}

func (s *Store) DeleteProvider(ctx context.Context, id string, deletedAt time.Time) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var keyID sql.NullString
	if err := tx.QueryRowContext(ctx, `DELETE FROM providers WHERE id = ? RETURNING key_id`, id).Scan(&keyID); err != nil {
		return notFound(err)
	}
	if err := recordProviderKeyRemoved(ctx, tx, id, keyID.String, deletedAt); err != nil {
		return err
	}
	return tx.commit(ctx)
}

// recordProviderKeyRemoved records that provider's key keyID ("" when it
// had none yet: nothing to tell) no longer verifies.
func recordProviderKeyRemoved(ctx context.Context, tx execer, provider, keyID string, at time.Time) error {
	if keyID == "" {
		return nil
	}
	return recordRevocationEvent(ctx, tx, storage.RevocationEvent{Kind: storage.RevocationProviderKeyRemoved, ProviderID: provider, KeyID: keyID, RevokedAt: at})
}

func (s *Store) ClaimProviders(ctx context.Context, credentials []storage.ProviderCredentials, claimedAt time.Time) error {
	return s.setProviderCredentials(ctx, credentials, claimedAt, true)
}

func (s *Store) RenewProviders(ctx context.Context, credentials []storage.ProviderCredentials, renewedAt time.Time) error {
	return s.setProviderCredentials(ctx, credentials, renewedAt, false)
}

// setProviderCredentials writes every item's credentials in one transaction.
// With onlyUnclaimed, a provider claimed meanwhile is a conflict: the
// concurrent claim that won keeps its credentials.
func (s *Store) setProviderCredentials(ctx context.Context, credentials []storage.ProviderCredentials, at time.Time, onlyUnclaimed bool) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	query := `UPDATE providers SET key_id = ?, public_key = ?, private_key = ?, refresh_token_hash = ?,
		sealed_refresh_token = ?, claimed_at = COALESCE(claimed_at, ?) WHERE id = ?`
	if onlyUnclaimed {
		query += ` AND claimed_at IS NULL`
	}
	for i, c := range credentials {
		// A renewal replaces the key: its tokens stop verifying.
		var formerKeyID sql.NullString
		if !onlyUnclaimed {
			err := tx.QueryRowContext(ctx, `SELECT key_id FROM providers WHERE id = ?`, c.ProviderID).Scan(&formerKeyID)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if formerKeyID.String != c.KeyID {
				if err := recordProviderKeyRemoved(ctx, tx, c.ProviderID, formerKeyID.String, at); err != nil {
					return err
				}
			}
		}
		result, err := tx.ExecContext(ctx, query, c.KeyID, c.PublicKey, c.PrivateKey, c.RefreshTokenHash,
			c.SealedRefreshToken, toUnix(at), c.ProviderID)
		if err != nil {
			return err
		}
		if err := requireOneRow(result, storage.ErrNotFound); err != nil {
			if onlyUnclaimed {
				var exists int
				if tx.QueryRowContext(ctx, `SELECT 1 FROM providers WHERE id = ?`, c.ProviderID).Scan(&exists) == nil {
					err = storage.ErrConflict
				}
			}
			return &storage.ItemError{Index: i, Err: err}
		}
	}
	return tx.commit(ctx)
}

func (s *Store) ReplaceProviderPrivateKey(ctx context.Context, providerID string, current, replacement []byte) error {
	result, err := s.writer.ExecContext(ctx, `UPDATE providers SET private_key = ? WHERE id = ? AND private_key = ?`, replacement, providerID, current)
	if err != nil {
		return err
	}
	return requireOneRow(result, storage.ErrConflict)
}
