package providers

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/secrets"
	"github.com/chit-auth/chit/internal/storage"
)

// Config is the provider policy.
type Config struct {
	// Issuer and Audience are the `iss` and `aud` of provider tokens.
	Issuer   string
	Audience string
	// AccessTokenTTL is the lifetime of tokens from refresh and
	// refreshAsOrchestrator.
	AccessTokenTTL time.Duration
	// ClaimTTL is how long after registration a claim token works.
	ClaimTTL time.Duration
	// KeyPoolSize is how many key pairs are kept ready for claim and renew
	// (see KeyPool); 0 makes each pair when it is needed.
	KeyPoolSize int
}

// Defaults, documented in the README.
const (
	DefaultAccessTokenTTL = 15 * time.Minute
	DefaultClaimTTL       = 24 * time.Hour
)

// A claim may be retried (its first answer can be lost) and must return the
// same refresh token, which is otherwise kept only as a digest; so it is also
// kept sealed under the claim token, for the claim token's holder only.
const claimSealPurpose = "provider claim"

// MaxBulkItems bounds every bulk request.
const MaxBulkItems = 1000

// tokenBytes is the entropy of claim and refresh tokens.
const tokenBytes = 64

// Credentials are what claim and renew answer.
type Credentials struct {
	ProviderID   string
	PublicKey    string
	RefreshToken string
}

// Service runs the provider calls.
type Service struct {
	cfg    Config
	store  Store
	sealer *keys.Sealer
	now    func() time.Time
	random io.Reader
	events Events
	keys   *KeyPool
	// onKeysChanged, when set, runs after a renew or delete (WhenKeysChange).
	onKeysChanged func()
}

// Dependencies are the live collaborators of the provider core.
type Dependencies struct {
	Store Store
	// Sealer encrypts provider private keys at rest, like the server's own
	// keys.
	Sealer *keys.Sealer
	Now    func() time.Time
	Random io.Reader
	// Events counts issued tokens, for metrics. May be nil.
	Events Events
	// GenerateKeyPair makes provider key pairs; GenerateKeyPair when nil.
	GenerateKeyPair func() (KeyPair, error)
}

// Events receives counts of what the provider core did.
type Events interface {
	TokenIssued(kind string)
}

// Token kinds counted by Events.
const (
	KindProvider     = "provider"
	KindOrchestrator = "provider_orchestrator"
)

type noEvents struct{}

func (noEvents) TokenIssued(string) {}

// NewService returns the provider core.
func NewService(cfg Config, deps Dependencies) *Service {
	if deps.Events == nil {
		deps.Events = noEvents{}
	}
	return &Service{
		cfg: cfg, store: deps.Store, sealer: deps.Sealer, now: deps.Now, random: deps.Random, events: deps.Events,
		keys: NewKeyPool(cfg.KeyPoolSize, deps.GenerateKeyPair),
	}
}

// FillKeyPool keeps the key pool full until ctx ends, once claims or renewals
// have started using it.
func (s *Service) FillKeyPool(ctx context.Context) { s.keys.Fill(ctx) }

// checkBulk bounds a bulk request and refuses one that names an item twice
// (what names it: an id, a claim token): the answer has one response per
// item, and two of them for one thing could only disagree.
func checkBulk(items []string, what string) error {
	if n := len(items); n < 1 || n > MaxBulkItems {
		return chiterr.New(chiterr.InvalidArgument, "a bulk request needs 1 to %d items, got %d", MaxBulkItems, n)
	}
	first := make(map[string]int, len(items))
	for i, item := range items {
		if earlier, seen := first[item]; seen && item != "" {
			return chiterr.New(chiterr.InvalidArgument, "items %d and %d name the same %s", earlier, i, what)
		}
		first[item] = i
	}
	return nil
}

func itemError(index int, kind chiterr.Kind, format string, args ...any) error {
	return chiterr.New(kind, "item %d: %s", index, fmt.Sprintf(format, args...))
}

// Caller is who calls a provider operation: an admin, or a service account.
type Caller struct {
	Admin bool
	// ServiceID is the calling service account's client id.
	ServiceID string
}

// Register creates unclaimed providers, owned by the calling service, and
// returns a claim token for each.
func (s *Service) Register(ctx context.Context, caller Caller, ids []string) ([]string, error) {
	if err := checkBulk(ids, "provider"); err != nil {
		return nil, err
	}
	now := s.now()
	claimTokens := make([]string, len(ids))
	records := make([]storage.Provider, len(ids))
	for i, id := range ids {
		if err := accounts.ValidateName("provider", id); err != nil {
			return nil, itemError(i, chiterr.InvalidArgument, "%s", chiterr.PublicMessage(err))
		}
		token, err := s.newToken()
		if err != nil {
			return nil, err
		}
		claimTokens[i] = token
		records[i] = storage.Provider{ID: id, ClaimTokenHash: secrets.Digest(token), ClaimExpiresAt: now.Add(s.cfg.ClaimTTL), RegisteredBy: caller.ServiceID, CreatedAt: now}
	}
	err := s.store.CreateProviders(ctx, records)
	var item *storage.ItemError
	if errors.As(err, &item) && errors.Is(err, storage.ErrAlreadyExists) {
		return nil, itemError(item.Index, chiterr.AlreadyExists, "provider %q already exists", ids[item.Index])
	}
	if err != nil {
		return nil, fmt.Errorf("store providers: %w", err)
	}
	return claimTokens, nil
}

// Claim answers each claim token with its provider's id, public key and
// refresh token. A retried claim gets the same answer until the claim
// expires.
func (s *Service) Claim(ctx context.Context, claimTokens []string) ([]Credentials, error) {
	if err := checkBulk(claimTokens, "claim token"); err != nil {
		return nil, err
	}
	answers, err := s.claimOnce(ctx, claimTokens)
	// A concurrent claim of the same provider won: its credentials are now
	// stored, and a second pass answers them.
	if errors.Is(err, storage.ErrConflict) {
		answers, err = s.claimOnce(ctx, claimTokens)
	}
	return answers, err
}

func (s *Service) claimOnce(ctx context.Context, claimTokens []string) ([]Credentials, error) {
	now := s.now()
	answers := make([]Credentials, len(claimTokens))
	var pending []storage.ProviderCredentials
	var pendingIndex []int
	for i, claimToken := range claimTokens {
		if claimToken == "" {
			return nil, itemError(i, chiterr.InvalidArgument, "claimToken is required")
		}
		if len(claimToken) > secrets.MaxTokenLength {
			return nil, itemError(i, chiterr.InvalidArgument, "claimToken is longer than %d bytes", secrets.MaxTokenLength)
		}
		provider, err := s.store.GetProviderByClaimToken(ctx, secrets.Digest(claimToken))
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return nil, itemError(i, chiterr.NotFound, "claim token is not valid")
		case err != nil:
			return nil, fmt.Errorf("read provider: %w", err)
		case !now.Before(provider.ClaimExpiresAt):
			return nil, itemError(i, chiterr.NotFound, "claim token has expired")
		}
		if !provider.ClaimedAt.IsZero() {
			if len(provider.Credentials.SealedRefreshToken) == 0 {
				return nil, itemError(i, chiterr.NotFound, "claim token is no longer valid: the provider's credentials were renewed")
			}
			refreshToken, err := secrets.Open(claimSealPurpose, claimToken, provider.Credentials.SealedRefreshToken)
			if err != nil {
				return nil, fmt.Errorf("provider %s: %w", provider.ID, err)
			}
			answers[i] = Credentials{ProviderID: provider.ID, PublicKey: base64.StdEncoding.EncodeToString(provider.Credentials.PublicKey), RefreshToken: refreshToken}
			continue
		}
		pending = append(pending, storage.ProviderCredentials{ProviderID: provider.ID})
		pendingIndex = append(pendingIndex, i)
	}
	if len(pending) == 0 {
		return answers, nil
	}
	pairs, err := s.keys.Take(ctx, len(pending))
	if err != nil {
		return nil, err
	}
	for j, i := range pendingIndex {
		if answers[i], pending[j], err = s.newCredentials(pairs[j], pending[j].ProviderID, claimTokens[i]); err != nil {
			return nil, err
		}
	}
	err = s.store.ClaimProviders(ctx, pending, now)
	var item *storage.ItemError
	switch {
	case errors.Is(err, storage.ErrConflict):
		return nil, err
	case errors.As(err, &item) && errors.Is(err, storage.ErrNotFound):
		return nil, itemError(pendingIndex[item.Index], chiterr.NotFound, "claim token is not valid")
	case err != nil:
		return nil, fmt.Errorf("claim providers: %w", err)
	}
	return answers, nil
}

// Renew replaces each provider's key pair and refresh token; the old refresh
// token and every token signed with the old key stop working. Only the
// service that registered a provider, or an admin, may renew it: renewing
// hands over the provider's new key.
func (s *Service) Renew(ctx context.Context, caller Caller, ids []string) ([]Credentials, error) {
	if err := checkBulk(ids, "provider"); err != nil {
		return nil, err
	}
	// Who may renew, and whether every provider exists, is settled before
	// any key is made: a key pair costs tens of milliseconds of CPU.
	var callerCreatedAt time.Time
	if !caller.Admin {
		account, err := s.store.GetServiceAccount(ctx, caller.ServiceID)
		if errors.Is(err, storage.ErrUnavailable) {
			return nil, err
		}
		if err != nil {
			return nil, chiterr.New(chiterr.PermissionDenied, "only the service that registered a provider, or an admin, may renew it")
		}
		callerCreatedAt = account.CreatedAt
	}
	for i, id := range ids {
		if err := accounts.ValidateName("provider", id); err != nil {
			return nil, itemError(i, chiterr.InvalidArgument, "%s", chiterr.PublicMessage(err))
		}
		provider, err := s.store.GetProvider(ctx, id)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return nil, itemError(i, chiterr.NotFound, "provider %q does not exist", id)
		case err != nil:
			return nil, fmt.Errorf("read provider: %w", err)
		case caller.Admin:
		// A service deleted and created again under the same name is
		// another party: it does not inherit the providers of the first.
		case provider.RegisteredBy == "" || provider.RegisteredBy != caller.ServiceID || callerCreatedAt.After(provider.CreatedAt):
			return nil, itemError(i, chiterr.PermissionDenied, "provider %q was registered by another service; only it or an admin may renew it", id)
		}
	}
	pairs, err := s.keys.Take(ctx, len(ids))
	if err != nil {
		return nil, err
	}
	answers := make([]Credentials, len(ids))
	records := make([]storage.ProviderCredentials, len(ids))
	for i, id := range ids {
		if answers[i], records[i], err = s.newCredentials(pairs[i], id, ""); err != nil {
			return nil, err
		}
	}
	err = s.store.RenewProviders(ctx, records, s.now())
	var item *storage.ItemError
	if errors.As(err, &item) && errors.Is(err, storage.ErrNotFound) {
		return nil, itemError(item.Index, chiterr.NotFound, "provider %q does not exist", ids[item.Index])
	}
	if err != nil {
		return nil, fmt.Errorf("renew providers: %w", err)
	}
	s.keysChanged()
	return answers, nil
}

// GenerateKeyPair makes a key pair for the caller to keep (the contract's
// generateKeyPair); it shares the pool, and its CPU bound, with claim and
// renew.
func (s *Service) GenerateKeyPair(ctx context.Context) (KeyPair, error) {
	pairs, err := s.keys.Take(ctx, 1)
	if err != nil {
		return KeyPair{}, err
	}
	return pairs[0], nil
}

// WhenKeysChange registers what to do when a provider's key is replaced or
// removed on this server (the token core forgets the keys it remembers, so
// tokens signed with the old key are refused at once here).
func (s *Service) WhenKeysChange(f func()) { s.onKeysChanged = f }

func (s *Service) keysChanged() {
	if s.onKeysChanged != nil {
		s.onKeysChanged()
	}
}

// Refresh trades provider refresh tokens for access tokens signed with each
// provider's own key. The refresh token is long-lived and not rotated.
func (s *Service) Refresh(ctx context.Context, refreshTokens []string) ([]string, error) {
	if err := checkBulk(refreshTokens, "refresh token"); err != nil {
		return nil, err
	}
	accessTokens := make([]string, len(refreshTokens))
	for i, refreshToken := range refreshTokens {
		if refreshToken == "" {
			return nil, itemError(i, chiterr.InvalidArgument, "refreshToken is required")
		}
		if len(refreshToken) > secrets.MaxTokenLength {
			return nil, itemError(i, chiterr.InvalidArgument, "refreshToken is longer than %d bytes", secrets.MaxTokenLength)
		}
		provider, err := s.store.GetProviderByRefreshToken(ctx, secrets.Digest(refreshToken))
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return nil, itemError(i, chiterr.Unauthenticated, "refresh token is invalid")
		case err != nil:
			return nil, fmt.Errorf("read provider: %w", err)
		}
		accessTokens[i], err = s.sign(provider, accounts.ProviderSubject(provider.ID), accounts.RoleProvider, "provider")
		if err != nil {
			return nil, err
		}
	}
	for range accessTokens {
		s.events.TokenIssued(KindProvider)
	}
	return accessTokens, nil
}

// RefreshAsOrchestrator signs, with each provider's key, a token for the
// calling service, which the provider verifies with the public key it got
// from claim.
func (s *Service) RefreshAsOrchestrator(ctx context.Context, service string, providerIDs []string) ([]string, error) {
	if err := checkBulk(providerIDs, "provider"); err != nil {
		return nil, err
	}
	accessTokens := make([]string, len(providerIDs))
	for i, id := range providerIDs {
		provider, err := s.claimedProvider(ctx, id)
		if errors.Is(err, storage.ErrUnavailable) {
			// Not the item's fault: answered as it is, with its retry hint.
			return nil, err
		}
		if err != nil {
			return nil, itemError(i, chiterr.KindOf(err), "%s", chiterr.PublicMessage(err))
		}
		accessTokens[i], err = s.sign(provider, accounts.ServiceSubject(service), accounts.RoleService, "service")
		if err != nil {
			return nil, err
		}
	}
	for range accessTokens {
		s.events.TokenIssued(KindOrchestrator)
	}
	return accessTokens, nil
}

// RetrievePublicKey returns a provider's public key, base64 SPKI DER.
func (s *Service) RetrievePublicKey(ctx context.Context, id string) (string, error) {
	provider, err := s.claimedProvider(ctx, id)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(provider.Credentials.PublicKey), nil
}

func (s *Service) claimedProvider(ctx context.Context, id string) (storage.Provider, error) {
	if err := accounts.ValidateName("provider", id); err != nil {
		return storage.Provider{}, err
	}
	provider, err := s.store.GetProvider(ctx, id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return storage.Provider{}, chiterr.New(chiterr.NotFound, "provider %q does not exist", id)
	case err != nil:
		return storage.Provider{}, fmt.Errorf("read provider: %w", err)
	case provider.Credentials.KeyID == "":
		return storage.Provider{}, chiterr.New(chiterr.FailedPrecondition, "provider %q has not been claimed yet", id)
	}
	return provider, nil
}

// LookupKey returns the public key of the provider key named kid, for
// checking provider-signed tokens.
func (s *Service) LookupKey(ctx context.Context, kid string) (jwk.Key, bool) {
	if kid == "" {
		return nil, false
	}
	provider, err := s.store.GetProviderByKeyID(ctx, kid)
	if err != nil {
		return nil, false
	}
	key, err := verifyingKey(provider.Credentials.PublicKey, provider.Credentials.KeyID)
	if err != nil {
		return nil, false
	}
	return key, true
}

// List returns the providers of page, by id, for operators.
func (s *Service) List(ctx context.Context, page storage.Page) ([]storage.Provider, error) {
	return s.store.ListProviders(ctx, page)
}

// Get returns the provider id as stored, for operators.
func (s *Service) Get(ctx context.Context, id string) (storage.Provider, error) {
	if err := accounts.ValidateName("provider", id); err != nil {
		return storage.Provider{}, err
	}
	provider, err := s.store.GetProvider(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Provider{}, chiterr.New(chiterr.NotFound, "provider %q does not exist", id)
	}
	return provider, err
}

// Delete removes a provider; its refresh token and key stop working.
func (s *Service) Delete(ctx context.Context, id string) error {
	if err := accounts.ValidateName("provider", id); err != nil {
		return err
	}
	err := s.store.DeleteProvider(ctx, id, s.now())
	if errors.Is(err, storage.ErrNotFound) {
		return chiterr.New(chiterr.NotFound, "provider %q does not exist", id)
	}
	if err == nil {
		s.keysChanged()
	}
	return err
}

func (s *Service) sign(provider storage.Provider, subject string, role accounts.Role, principalType string) (string, error) {
	privateDER, err := s.sealer.Open(provider.Credentials.PrivateKey)
	if err != nil {
		return "", fmt.Errorf("provider %s: %w", provider.ID, err)
	}
	key, err := signingKey(privateDER, provider.Credentials.KeyID)
	if err != nil {
		return "", fmt.Errorf("provider %s: %w", provider.ID, err)
	}
	jti, err := s.newTokenOfSize(16)
	if err != nil {
		return "", err
	}
	now := s.now()
	token, err := jwt.NewBuilder().
		Issuer(s.cfg.Issuer).
		Subject(subject).
		Audience([]string{s.cfg.Audience}).
		IssuedAt(now).
		NotBefore(now).
		Expiration(now.Add(s.cfg.AccessTokenTTL)).
		JwtID(jti).
		Claim("role", string(role)).
		Claim("principalType", principalType).
		Build()
	if err != nil {
		return "", err
	}
	headers := jws.NewHeaders()
	if err := headers.Set(jws.TypeKey, keys.AccessTokenType); err != nil {
		return "", err
	}
	signed, err := jwt.Sign(token, jwt.WithKey(jwa.RS256, key, jws.WithProtectedHeaders(headers)))
	if err != nil {
		return "", fmt.Errorf("sign provider token: %w", err)
	}
	return string(signed), nil
}

// newCredentials gives provider id the key pair and a new refresh token.
// With a claim token, the refresh token is also sealed for retried claims.
func (s *Service) newCredentials(pair KeyPair, id, claimToken string) (Credentials, storage.ProviderCredentials, error) {
	refreshToken, err := s.newToken()
	if err != nil {
		return Credentials{}, storage.ProviderCredentials{}, err
	}
	sealedPrivate, err := s.sealer.Seal(pair.PrivateDER)
	if err != nil {
		return Credentials{}, storage.ProviderCredentials{}, fmt.Errorf("encrypt provider key: %w", err)
	}
	record := storage.ProviderCredentials{
		ProviderID:       id,
		KeyID:            pair.KeyID,
		PublicKey:        pair.PublicDER,
		PrivateKey:       sealedPrivate,
		RefreshTokenHash: secrets.Digest(refreshToken),
	}
	if claimToken != "" {
		if record.SealedRefreshToken, err = secrets.Seal(claimSealPurpose, claimToken, refreshToken, s.random); err != nil {
			return Credentials{}, storage.ProviderCredentials{}, err
		}
	}
	return Credentials{ProviderID: id, PublicKey: pair.PublicBase64(), RefreshToken: refreshToken}, record, nil
}

func (s *Service) newToken() (string, error) { return s.newTokenOfSize(tokenBytes) }

func (s *Service) newTokenOfSize(n int) (string, error) { return secrets.Random(s.random, n) }
