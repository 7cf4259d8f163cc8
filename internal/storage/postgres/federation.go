package postgres

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chit-auth/chit/internal/storage"
)

const federationRuleColumns = `name, issuer, audience, service_account, claims, jwks, jwks_uri, single_use, max_assertion_lifetime, created_at`

func scanFederationRule(row pgx.Row) (storage.FederationRule, error) {
	var rule storage.FederationRule
	var claims string
	var lifetime int64
	var created *int64
	if err := row.Scan(&rule.Name, &rule.Issuer, &rule.Audience, &rule.ServiceAccount, &claims, &rule.JWKS, &rule.JWKSURI,
		&rule.SingleUse, &lifetime, &created); err != nil {
		return storage.FederationRule{}, notFound(err)
	}
	if err := json.Unmarshal([]byte(claims), &rule.Claims); err != nil {
		return storage.FederationRule{}, err
	}
	rule.MaxAssertionLifetime, rule.CreatedAt = time.Duration(lifetime), fromUnix(created)
	return rule, nil
}

func (s *Store) CreateFederationRule(ctx context.Context, rule storage.FederationRule) error {
	claims, err := json.Marshal(rule.Claims)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO federation_rules (`+federationRuleColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`,
		rule.Name, rule.Issuer, rule.Audience, rule.ServiceAccount, string(claims), rule.JWKS, rule.JWKSURI, rule.SingleUse,
		int64(rule.MaxAssertionLifetime), toUnix(rule.CreatedAt))
	if err != nil {
		return err
	}
	return requireOneRow(tag, storage.ErrAlreadyExists)
}

func (s *Store) GetFederationRule(ctx context.Context, name string) (storage.FederationRule, error) {
	return scanFederationRule(s.pool.QueryRow(ctx, `SELECT `+federationRuleColumns+` FROM federation_rules WHERE name = $1`, name))
}

func (s *Store) ListFederationRules(ctx context.Context, page storage.Page) ([]storage.FederationRule, error) {
	return list(ctx, s.pool, scanFederationRule, `SELECT `+federationRuleColumns+` FROM federation_rules WHERE name > $1 ORDER BY name LIMIT $2`,
		page.After, pageLimit(page))
}

func (s *Store) DeleteFederationRule(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM federation_rules WHERE name = $1`, name)
	if err != nil {
		return err
	}
	return requireOneRow(tag, storage.ErrNotFound)
}

// RecordAssertion inserts on the primary key (issuer, jti): of replicas
// recording one assertion at once, one inserts and the others conflict.
func (s *Store) RecordAssertion(ctx context.Context, issuer, jti string, expiresAt time.Time) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO federated_assertions (issuer, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		issuer, jti, toUnix(expiresAt))
	if err != nil {
		return err
	}
	return requireOneRow(tag, storage.ErrConflict)
}

func (s *Store) DeleteExpiredAssertions(ctx context.Context, cutoff time.Time) (int, error) {
	return deleteInBatches(ctx, s.pool, "federated_assertions", "ctid", `expires_at < $1`, toUnix(cutoff))
}
