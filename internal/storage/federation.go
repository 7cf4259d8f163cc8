package storage

import (
	"context"
	"time"
)

// FederationRules are the external issuers an admin trusts, each for one
// service account (workload identity federation). Invariants: a rule's
// name is unique; deleting its service account deletes it (a service
// account created again under that name is not trusted by the old rule).
type FederationRules interface {
	// CreateFederationRule stores a rule; ErrAlreadyExists when its name is
	// taken. Its service account must exist.
	CreateFederationRule(ctx context.Context, rule FederationRule) error
	// GetFederationRule returns the rule name; ErrNotFound when there is none.
	GetFederationRule(ctx context.Context, name string) (FederationRule, error)
	// ListFederationRules returns the rules of page, by name.
	ListFederationRules(ctx context.Context, page Page) ([]FederationRule, error)
	// DeleteFederationRule removes the rule; ErrNotFound when there is none.
	DeleteFederationRule(ctx context.Context, name string) error
}

// FederationRule trusts the JWTs of Issuer for Audience whose claims match
// Claims as the service account ServiceAccount.
type FederationRule struct {
	Name     string
	Issuer   string
	Audience string
	// ServiceAccount is the client id of the service account issued for.
	ServiceAccount string
	// Claims are what the assertion's claims must equal (or match, as
	// globs; internal/federation says how).
	Claims map[string]string
	// JWKS is the issuer's key set inline (JSON), or empty to fetch it from
	// JWKSURI or the issuer's discovery document.
	JWKS    string
	JWKSURI string
	// SingleUse: each assertion (by its jti) is exchanged once.
	SingleUse bool
	// MaxAssertionLifetime bounds an assertion's exp - iat; zero is the
	// default of internal/federation.
	MaxAssertionLifetime time.Duration
	CreatedAt            time.Time
}

// AssertionReplays remember the assertions of single-use rules that were
// exchanged, across replicas. Invariant: of concurrent records of one
// (issuer, jti), exactly one succeeds.
type AssertionReplays interface {
	// RecordAssertion remembers issuer's assertion jti until expiresAt;
	// ErrConflict when it is remembered already (a replay).
	RecordAssertion(ctx context.Context, issuer, jti string, expiresAt time.Time) error
	// DeleteExpiredAssertions forgets the assertions that expired before
	// cutoff: they can no longer be presented.
	DeleteExpiredAssertions(ctx context.Context, cutoff time.Time) (int, error)
}
