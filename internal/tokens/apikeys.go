package tokens

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/secrets"
	"github.com/chit-auth/chit/internal/storage"
)

// APIKeyPrefix marks Chit API keys, so that secret scanners find leaked ones.
const APIKeyPrefix = "chit_ak_"

const (
	// An API key is its prefix, its public id and its secret, in base64url:
	// 12 random bytes of id (16 characters), 32 of secret (43 characters).
	apiKeyIDBytes      = 12
	apiKeyIDLength     = 16
	apiKeySecretBytes  = 32
	apiKeySecretLength = 43
	apiKeyLength       = len(APIKeyPrefix) + apiKeyIDLength + apiKeySecretLength
	apiKeyFamilyPrefix = "apikey:"
)

const (
	// DefaultAPIKeyLifetime is how long a key lasts when its maker names
	// no lifetime.
	DefaultAPIKeyLifetime = 90 * 24 * time.Hour
	// MaxAPIKeyLifetime bounds a key's lifetime: a forgotten key ends.
	MaxAPIKeyLifetime = 365 * 24 * time.Hour
	// MinAPIKeyLifetime refuses keys that would expire before use.
	MinAPIKeyLifetime = time.Minute
	// RecentSignIn is how recent the sign-in behind a key's creation must
	// be: a stolen long-lived session (a refresh token) cannot mint
	// permanent keys.
	RecentSignIn = 10 * time.Minute
	// MaxAPIKeysPerOwner bounds the keys one principal holds, and so the
	// table.
	MaxAPIKeysPerOwner = 50
)

// NewAPIKey is what a key's maker asks for.
type NewAPIKey struct {
	Name string
	// Scopes its tokens may carry: within the owner's allowed scopes; none
	// means the owner's default scopes.
	Scopes []string
	// Lifetime is zero for DefaultAPIKeyLifetime.
	Lifetime time.Duration
}

var errNeedsRecentSignIn = chiterr.New(chiterr.PermissionDenied,
	"making an API key needs a recent sign-in: an access token from signing in (not from a refresh or an API key) within the last %s", RecentSignIn)

// CreateAPIKey makes an API key for caller and returns it (it is stored as a
// digest and cannot be shown again) with its record. The caller's access
// token must come from a sign-in within RecentSignIn. A key never carries
// the ADMIN role: an admin's key acts as a USER.
func (s *Service) CreateAPIKey(ctx context.Context, caller Claims, req NewAPIKey) (string, storage.APIKey, error) {
	now := s.Now()
	if caller.AuthTime.IsZero() || caller.APIKeyID != "" || now.Sub(caller.AuthTime) > RecentSignIn {
		return "", storage.APIKey{}, errNeedsRecentSignIn
	}
	if err := accounts.ValidateName("api key", req.Name); err != nil {
		return "", storage.APIKey{}, err
	}
	lifetime := req.Lifetime
	switch {
	case lifetime == 0:
		lifetime = DefaultAPIKeyLifetime
	case lifetime < MinAPIKeyLifetime || lifetime > MaxAPIKeyLifetime:
		return "", storage.APIKey{}, chiterr.New(chiterr.InvalidArgument, "ttl must be between %s and %d days", MinAPIKeyLifetime, int(MaxAPIKeyLifetime.Hours()/24))
	}
	grantee, err := s.apiKeyGrantee(ctx, caller.Subject)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return "", storage.APIKey{}, chiterr.New(chiterr.PermissionDenied, "%s may not make API keys", chiterr.Quote(caller.Subject))
		}
		return "", storage.APIKey{}, err
	}
	// The token that makes a key is the ceiling of what the key may give:
	// one issued through Chit's own clients (a person's) or to the service
	// itself, and only scopes it carries. A token a third-party client
	// obtained, or one narrowed to fewer scopes, makes no wider key.
	if caller.ClientID != "" && !slices.Contains(accounts.FirstPartyClientIDs, caller.ClientID) &&
		!(grantee.Principal.Role == accounts.RoleService && caller.ClientID == grantee.Principal.Name) {
		return "", storage.APIKey{}, chiterr.New(chiterr.PermissionDenied,
			"API keys are made with a token issued through Chit's own clients (chit login, the API), not through client %s", chiterr.Quote(caller.ClientID))
	}
	requested, err := accounts.NewGrants(accounts.GrantFields{Allowed: "scopes"}, req.Scopes, nil, nil)
	if err != nil {
		return "", storage.APIKey{}, err
	}
	for _, scope := range requested.AllowedScopes {
		switch {
		case slices.Contains(accounts.PersonScopes, scope):
			return "", storage.APIKey{}, chiterr.New(chiterr.InvalidArgument, "scope %q is for signing in; an API key does not carry it", scope)
		case !slices.Contains(caller.Scopes, scope):
			return "", storage.APIKey{}, chiterr.New(chiterr.InvalidArgument,
				"scope %q is not in the token that makes the key: sign in with it first", scope).WithReason(chiterr.ReasonInvalidScope)
		}
	}
	scopes, err := grantee.GrantScopes(requested.AllowedScopes)
	if err != nil {
		return "", storage.APIKey{}, err
	}
	if len(requested.AllowedScopes) == 0 {
		// The owner's defaults, as far as the making token carries them.
		scopes = slices.DeleteFunc(scopes, func(scope string) bool {
			return slices.Contains(accounts.PersonScopes, scope) || !slices.Contains(caller.Scopes, scope)
		})
	}
	held, err := s.Store.ListAPIKeys(ctx, caller.Subject, storage.Page{})
	if err != nil {
		return "", storage.APIKey{}, err
	}
	held = slices.DeleteFunc(held, func(key storage.APIKey) bool { return !now.Before(key.ExpiresAt) })
	if len(held) >= MaxAPIKeysPerOwner {
		return "", storage.APIKey{}, chiterr.New(chiterr.FailedPrecondition, "%s holds %d API keys, the most allowed; revoke one first", chiterr.Quote(caller.Subject), MaxAPIKeysPerOwner)
	}
	id, err := s.randomString(apiKeyIDBytes)
	if err != nil {
		return "", storage.APIKey{}, err
	}
	secret, err := s.randomString(apiKeySecretBytes)
	if err != nil {
		return "", storage.APIKey{}, err
	}
	key := APIKeyPrefix + id + secret
	record := storage.APIKey{ID: id, Subject: caller.Subject, Name: req.Name, Scopes: scopes, Hash: secrets.Digest(key),
		CreatedAt: now, ExpiresAt: now.Add(lifetime)}
	if err := s.Store.CreateAPIKey(ctx, record); err != nil {
		if errors.Is(err, storage.ErrAlreadyExists) {
			return "", storage.APIKey{}, chiterr.New(chiterr.AlreadyExists, "%s already has an API key named %s", chiterr.Quote(caller.Subject), chiterr.Quote(req.Name))
		}
		return "", storage.APIKey{}, fmt.Errorf("store API key: %w", err)
	}
	s.Logger.InfoContext(ctx, "API key created", "audit", true, "event", "api_key_created", "subject", caller.Subject, "api_key_id", id)
	return key, record, nil
}

// apiKeyGrantee is who an API key's tokens are for: its owner as now
// stored, through Chit's API client for a person (so an admin acts as a
// USER), as its own client for a service account.
func (s *Service) apiKeyGrantee(ctx context.Context, subject string) (accounts.Grantee, error) {
	principal, err := s.Directory.LookupSubject(ctx, subject)
	if err != nil {
		return accounts.Grantee{}, err
	}
	switch principal.Role {
	case accounts.RoleAdmin:
		principal.Role = accounts.RoleUser
		fallthrough
	case accounts.RoleUser:
		return accounts.Grantee{Principal: principal, Client: accounts.FirstPartyClient(accounts.APIClientID)}, nil
	case accounts.RoleService:
		return accounts.Grantee{Principal: principal, Client: accounts.Client{ID: principal.Name, Service: true, Confidential: true,
			Grants: principal.Grants, ReadAt: principal.ReadAt}}, nil
	}
	return accounts.Grantee{}, storage.ErrNotFound
}

var errBadAPIKey = chiterr.New(chiterr.Unauthenticated, "invalid API key")

// decoyAPIKeyHash is compared against when a key's id is unknown, so both
// failures take the same path.
var decoyAPIKeyHash = secrets.Digest("decoy API key")

// APIKeyRequest is the exchange of an API key: the key is the whole
// credential, no client authenticates.
type APIKeyRequest struct {
	Key string
	// Scope names some of the key's scopes ("" for all of them); Audience
	// is the token's ("" for the server's own).
	Scope    string
	Audience string
	// Binding is the key the token is bound to; zero issues a bearer token.
	Binding Binding
}

// IssueForAPIKey exchanges an API key for a short-lived access token with
// the key's scopes (those requested, within them), re-reading its owner: a
// deleted owner, a narrower grant or a revoked key ends what the key gives.
// No refresh token: the key itself is the long-lived credential.
func (s *Service) IssueForAPIKey(ctx context.Context, req APIKeyRequest) (Grant, error) {
	key, audience := req.Key, req.Audience
	requested, err := accounts.ParseScope(req.Scope)
	if err != nil {
		return Grant{}, err
	}
	if len(key) != apiKeyLength || !strings.HasPrefix(key, APIKeyPrefix) {
		return Grant{}, errBadAPIKey
	}
	id := key[len(APIKeyPrefix) : len(APIKeyPrefix)+apiKeyIDLength]
	record, err := s.Store.GetAPIKey(ctx, id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		record.Hash = decoyAPIKeyHash
	case err != nil:
		return Grant{}, err
	}
	if subtle.ConstantTimeCompare(secrets.Digest(key), record.Hash) != 1 || record.ID == "" {
		return Grant{}, errBadAPIKey
	}
	if !s.Now().Before(record.ExpiresAt) {
		return Grant{}, chiterr.New(chiterr.Unauthenticated, "the API key expired at %s", record.ExpiresAt.UTC().Format(time.RFC3339))
	}
	grantee, err := s.apiKeyGrantee(ctx, record.Subject)
	if errors.Is(err, storage.ErrNotFound) {
		return Grant{}, errBadAPIKey
	}
	if err != nil {
		return Grant{}, err
	}
	// A key made before its owner was (its owner deleted while it was made,
	// and a principal of that name created since) is not the new one's.
	if record.CreatedAt.Before(grantee.Principal.CreatedAt) {
		return Grant{}, errBadAPIKey
	}
	// What the key may still give: its scopes that its owner still holds;
	// a request names some of them. (GrantScopes would also let a person's
	// key ask for the OpenID Connect scopes every person has.)
	scopes := grantee.StillAllowed(record.Scopes)
	if len(requested) > 0 {
		for _, scope := range requested {
			if !slices.Contains(scopes, scope) {
				return Grant{}, chiterr.New(chiterr.InvalidArgument, "scope %q is not one this API key gives", scope).WithReason(chiterr.ReasonInvalidScope)
			}
		}
		scopes = requested
	}
	if audience, err = grantee.GrantAudience(audience); err != nil {
		return Grant{}, err
	}
	access, err := s.signAccess(accessToken{grantee: grantee, scopes: scopes, audience: audience,
		familyID: storage.APIKeyFamily(record.ID), issuedAt: s.issuedAt(grantee), apiKeyID: record.ID, binding: req.Binding})
	if err != nil {
		return Grant{}, err
	}
	s.Events.TokenIssued("api_key")
	return s.grant(access, "", scopes, req.Binding), nil
}

// ListAPIKeys returns subject's keys of page, by id, for the owner or an
// admin (callers check which).
func (s *Service) ListAPIKeys(ctx context.Context, subject string, page storage.Page) ([]storage.APIKey, error) {
	if err := accounts.ValidateLoginSubject(subject); err != nil {
		return nil, err
	}
	return s.Store.ListAPIKeys(ctx, subject, page)
}

// RevokeAPIKey deletes the key id on behalf of caller, its owner or an
// admin: it stops working and its access tokens are refused. A key of
// someone else is NotFound to anyone but an admin.
func (s *Service) RevokeAPIKey(ctx context.Context, caller Claims, id string) error {
	if id == "" {
		return chiterr.New(chiterr.InvalidArgument, "id is required")
	}
	notFound := chiterr.New(chiterr.NotFound, "there is no API key %s", chiterr.Quote(id))
	record, err := s.Store.GetAPIKey(ctx, id)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && record.Subject != caller.Subject && caller.Role != accounts.RoleAdmin) {
		return notFound
	}
	if err != nil {
		return err
	}
	return s.deleteAPIKey(ctx, record, "revoked by "+caller.Subject)
}

func (s *Service) deleteAPIKey(ctx context.Context, record storage.APIKey, reason string) error {
	err := s.Store.DeleteAPIKey(ctx, record.ID, s.Now())
	if errors.Is(err, storage.ErrNotFound) {
		return chiterr.New(chiterr.NotFound, "there is no API key %s", chiterr.Quote(record.ID))
	}
	if err != nil {
		return err
	}
	s.revocations.forgetFamily(storage.APIKeyFamily(record.ID))
	s.Logger.InfoContext(ctx, "API key revoked", "audit", true, "event", "api_key_revoked", "reason", reason,
		"subject", record.Subject, "api_key_id", record.ID)
	return nil
}

// apiKeyOfFamily is the API key id a token's family names, if it names one.
func apiKeyOfFamily(familyID string) (string, bool) {
	return strings.CutPrefix(familyID, apiKeyFamilyPrefix)
}
