package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

const federationRuleColumns = `name, issuer, audience, service_account, claims, jwks, jwks_uri, single_use, max_assertion_lifetime, created_at`

func scanFederationRule(row rowScanner) (storage.FederationRule, error) {
	var rule storage.FederationRule
	var claims string
	var lifetime int64
	var created sql.NullInt64
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
	return s.insert(ctx, `INSERT INTO federation_rules (`+federationRuleColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		rule.Name, rule.Issuer, rule.Audience, rule.ServiceAccount, string(claims), rule.JWKS, rule.JWKSURI, rule.SingleUse,
		int64(rule.MaxAssertionLifetime), toUnix(rule.CreatedAt))
}

func (s *Store) GetFederationRule(ctx context.Context, name string) (storage.FederationRule, error) {
	return scanFederationRule(s.db.QueryRowContext(ctx, `SELECT `+federationRuleColumns+` FROM federation_rules WHERE name = ?`, name))
}

func (s *Store) ListFederationRules(ctx context.Context, page storage.Page) ([]storage.FederationRule, error) {
	return listRows(ctx, s.db, scanFederationRule, `SELECT `+federationRuleColumns+` FROM federation_rules WHERE name > ? ORDER BY name LIMIT ?`,
		page.After, pageLimit(page))
}

func (s *Store) DeleteFederationRule(ctx context.Context, name string) error {
	result, err := s.writer.ExecContext(ctx, `DELETE FROM federation_rules WHERE name = ?`, name)
	if err != nil {
		return err
	}
	return requireOneRow(result, storage.ErrNotFound)
}

func (s *Store) RecordAssertion(ctx context.Context, issuer, jti string, expiresAt time.Time) error {
	err := s.insert(ctx, `INSERT INTO federated_assertions (issuer, jti, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		issuer, jti, toUnix(expiresAt))
	if errors.Is(err, storage.ErrAlreadyExists) {
		return storage.ErrConflict
	}
	return err
}

func (s *Store) DeleteExpiredAssertions(ctx context.Context, cutoff time.Time) (int, error) {
	return s.deleteInBatches(ctx, "federated_assertions", `expires_at < ?`, toUnix(cutoff))
}
