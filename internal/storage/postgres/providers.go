package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chit-auth/chit/internal/storage"
)

const providerColumns = `id, claim_token_hash, claim_expires_at, claimed_at, key_id, public_key, private_key,
	refresh_token_hash, sealed_refresh_token, registered_by, created_at`

func scanProvider(row pgx.Row) (storage.Provider, error) {
	var p storage.Provider
	var claimExpiresAt, claimedAt, createdAt *int64
	var keyID *string
	err := row.Scan(&p.ID, &p.ClaimTokenHash, &claimExpiresAt, &claimedAt, &keyID, &p.Credentials.PublicKey,
		&p.Credentials.PrivateKey, &p.Credentials.RefreshTokenHash, &p.Credentials.SealedRefreshToken, &p.RegisteredBy, &createdAt)
	if err != nil {
		return storage.Provider{}, notFound(err)
	}
	p.ClaimExpiresAt, p.ClaimedAt, p.CreatedAt = fromUnix(claimExpiresAt), fromUnix(claimedAt), fromUnix(createdAt)
	p.Credentials.ProviderID = p.ID
	if keyID != nil {
		p.Credentials.KeyID = *keyID
	}
	return p, nil
}

func (s *Store) CreateProviders(ctx context.Context, providers []storage.Provider) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		for i, p := range providers {
			tag, err := tx.Exec(ctx, `INSERT INTO providers (id, claim_token_hash, claim_expires_at, registered_by, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
				p.ID, p.ClaimTokenHash, toUnix(p.ClaimExpiresAt), p.RegisteredBy, toUnix(p.CreatedAt))
			if err != nil {
				return err
			}
			if err := requireOneRow(tag, storage.ErrAlreadyExists); err != nil {
				return &storage.ItemError{Index: i, Err: err}
			}
		}
		return nil
	})
}

func (s *Store) getProviderWhere(ctx context.Context, column string, value any) (storage.Provider, error) {
	return scanProvider(s.pool.QueryRow(ctx, `SELECT `+providerColumns+` FROM providers WHERE `+column+` = $1`, value))
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
	return list(ctx, s.pool, scanProvider, `SELECT `+providerColumns+` FROM providers WHERE id > $1 ORDER BY id LIMIT $2`, page.After, pageLimit(page))
}

func (s *Store) DeleteProvider(ctx context.Context, id string, deletedAt time.Time) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var keyID *string
		if err := tx.QueryRow(ctx, `DELETE FROM providers WHERE id = $1 RETURNING key_id`, id).Scan(&keyID); err != nil {
			return notFound(err)
		}
		return recordProviderKeyRemoved(ctx, tx, id, keyID, deletedAt)
	})
}

// recordProviderKeyRemoved records that provider's key keyID (nil or ""
// when it had none yet: nothing to tell) no longer verifies.
func recordProviderKeyRemoved(ctx context.Context, tx pgx.Tx, provider string, keyID *string, at time.Time) error {
	if keyID == nil || *keyID == "" {
		return nil
	}
	return recordRevocationEvent(ctx, tx, storage.RevocationEvent{Kind: storage.RevocationProviderKeyRemoved, ProviderID: provider, KeyID: *keyID, RevokedAt: at})
}

func (s *Store) ClaimProviders(ctx context.Context, credentials []storage.ProviderCredentials, claimedAt time.Time) error {
	return s.setProviderCredentials(ctx, credentials, claimedAt, true)
}

func (s *Store) RenewProviders(ctx context.Context, credentials []storage.ProviderCredentials, renewedAt time.Time) error {
	return s.setProviderCredentials(ctx, credentials, renewedAt, false)
}

func (s *Store) setProviderCredentials(ctx context.Context, credentials []storage.ProviderCredentials, at time.Time, onlyUnclaimed bool) error {
	query := `UPDATE providers SET key_id = $1, public_key = $2, private_key = $3, refresh_token_hash = $4,
		sealed_refresh_token = $5, claimed_at = COALESCE(claimed_at, $6) WHERE id = $7`
	if onlyUnclaimed {
		query += ` AND claimed_at IS NULL`
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		for i, c := range credentials {
			// A renewal replaces the key: its tokens stop verifying. The
			// row lock keeps a concurrent renewal from replacing it unseen.
			if !onlyUnclaimed {
				var formerKeyID *string
				err := tx.QueryRow(ctx, `SELECT key_id FROM providers WHERE id = $1 FOR UPDATE`, c.ProviderID).Scan(&formerKeyID)
				if err != nil && !errors.Is(err, pgx.ErrNoRows) {
					return err
				}
				if formerKeyID != nil && *formerKeyID != c.KeyID {
					if err := recordProviderKeyRemoved(ctx, tx, c.ProviderID, formerKeyID, at); err != nil {
						return err
					}
				}
			}
			tag, err := tx.Exec(ctx, query, c.KeyID, c.PublicKey, c.PrivateKey, c.RefreshTokenHash, c.SealedRefreshToken, toUnix(at), c.ProviderID)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				err := storage.ErrNotFound
				var exists int
				if onlyUnclaimed && tx.QueryRow(ctx, `SELECT 1 FROM providers WHERE id = $1`, c.ProviderID).Scan(&exists) == nil {
					err = storage.ErrConflict
				}
				return &storage.ItemError{Index: i, Err: err}
			}
		}
		return nil
	})
}

func (s *Store) ReplaceProviderPrivateKey(ctx context.Context, providerID string, current, replacement []byte) error {
	return s.replaceOne(ctx, `UPDATE providers SET private_key = $1 WHERE id = $2 AND private_key = $3`, replacement, providerID, current)
}
