package tokens

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/pkg/accounts"
	"github.com/chit-auth/chit/pkg/chiterr"
	"github.com/chit-auth/chit/pkg/keys"
	"github.com/chit-auth/chit/pkg/secrets"
	"github.com/chit-auth/chit/pkg/storage"
)

// Config is the token policy. cmd/chitd validates it before it gets here.
type Config struct {
	// Issuer is the `iss` of every token.
	Issuer string
	// Audience is the `aud` of every access token.
	Audience string
	// AccessTokenTTL is how long an access token is valid.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is the absolute lifetime of a login: rotation does not
	// extend it.
	RefreshTokenTTL time.Duration
	// ClockSkew is how far a token's times may be off when it is checked.
	ClockSkew time.Duration
	// RefreshIdleTimeout ends a login whose refresh token is not used for
	// this long (never after RefreshTokenTTL). Zero means RefreshTokenTTL.
	RefreshIdleTimeout time.Duration
	// RefreshGracePeriod is how long after a rotation the rotated token may be
	// presented again and get the same successor, instead of counting as
	// reuse. Zero disables it.
	RefreshGracePeriod time.Duration
	// RevocationCacheTTL bounds how long a revocation may go unseen by Check.
	RevocationCacheTTL time.Duration
}

// Defaults, documented in the README's configuration table.
const (
	DefaultAccessTokenTTL  = 15 * time.Minute
	DefaultRefreshTokenTTL = 30 * 24 * time.Hour
	DefaultAudience        = "chit"
	DefaultClockSkew       = 30 * time.Second
	DefaultRefreshIdle     = 7 * 24 * time.Hour
	DefaultRefreshGrace    = 10 * time.Second
	DefaultRevocationCache = 3 * time.Second
)

// RefreshTokenPrefix marks Chit refresh tokens for secret scanners.
const RefreshTokenPrefix = "chit_rt_"

// MaxTokenLength bounds what Check will parse; Chit's own tokens are far
// shorter, and parsing huge input is work an attacker should not buy.
const MaxTokenLength = 8 << 10

// FamilyClaim is the access token claim naming its refresh family.
const FamilyClaim = "fid"

// TokenType is the OAuth token type of access tokens.
const TokenType = "Bearer"

// Grant is the result of a successful exchange.
type Grant struct {
	AccessToken string
	// RefreshToken is empty when the grant includes none (client credentials).
	RefreshToken string
	ExpiresIn    time.Duration
	Scope        string
	// IDToken is an OIDC ID token, only for sign-ins that asked for openid.
	IDToken string
}

// Claims describe a valid access token.
type Claims struct {
	Subject   string
	Role      accounts.Role
	Scopes    []string
	Issuer    string
	Audience  []string
	ID        string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// FamilyID is the login the token belongs to; empty for client credentials.
	FamilyID string
}

// Service issues, refreshes and checks tokens.
type Service struct {
	cfg Config
	Dependencies
	revocations *revocationCache
	verified    *verifiedCache
}

// Dependencies are the live collaborators of the core.
type Dependencies struct {
	Keys *keys.Set
	// ProviderKeys finds provider keys: CheckToken accepts provider tokens,
	// but they never authorize calls to Chit itself. May be nil.
	ProviderKeys keys.KeyLookup
	Store        storage.Store
	Directory    *accounts.Directory
	Now          func() time.Time
	Random       io.Reader
	// Logger receives security events (refresh token reuse, revocations).
	Logger *slog.Logger
	// Events counts what the core does, for metrics. May be nil.
	Events Events
}

// Events receives counts of what the core did.
type Events interface {
	TokenIssued(kind string)
	RefreshReuseDetected()
}

type noEvents struct{}

func (noEvents) TokenIssued(string)    {}
func (noEvents) RefreshReuseDetected() {}

// NewService wires the core. now and random are injected so expiry and
// rotation can be tested without sleeping.
func NewService(cfg Config, deps Dependencies) *Service {
	if cfg.RefreshIdleTimeout <= 0 || cfg.RefreshIdleTimeout > cfg.RefreshTokenTTL {
		cfg.RefreshIdleTimeout = cfg.RefreshTokenTTL
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Events == nil {
		deps.Events = noEvents{}
	}
	return &Service{cfg: cfg, Dependencies: deps, revocations: newRevocationCache(cfg.RevocationCacheTTL, deps.Store, deps.Now), verified: &verifiedCache{}}
}

// Config returns the policy the service runs with.
func (s *Service) Config() Config { return s.cfg }

// IssueForPassword signs a person in: an access token and a refresh token
// that starts a new family.
func (s *Service) IssueForPassword(ctx context.Context, username, password, scope string) (Grant, error) {
	scopes, err := parseScope(scope)
	if err != nil {
		return Grant{}, err
	}
	principal, err := s.Directory.AuthenticateUser(ctx, username, password)
	if err != nil {
		return Grant{}, err
	}
	familyID, err := s.NewFamilyID()
	if err != nil {
		return Grant{}, err
	}
	return s.IssueForLogin(ctx, Login{Principal: principal, Scopes: scopes, FamilyID: familyID, WithRefreshToken: true, Kind: "password"})
}

// Login describes a person who has just proven who they are, and what to
// issue them.
type Login struct {
	Principal accounts.Principal
	Scopes    []string
	// FamilyID names the refresh family the login starts (NewFamilyID).
	FamilyID         string
	WithRefreshToken bool
	// IDToken, when set, asks for an OIDC ID token.
	IDToken *IDTokenRequest
	// Kind names the grant for metrics (password, authorization_code).
	Kind string
}

// IDTokenRequest is what an ID token states besides the subject.
type IDTokenRequest struct {
	ClientID string
	Nonce    string
	AuthTime time.Time
}

// NewFamilyID returns a fresh refresh family id.
func (s *Service) NewFamilyID() (string, error) { return s.randomString(16) }

// IssueForLogin issues an access token and, as asked, a refresh token that
// starts login.FamilyID and an ID token.
func (s *Service) IssueForLogin(ctx context.Context, login Login) (Grant, error) {
	now := s.Now()
	access, err := s.signAccessToken(login.Principal, login.Scopes, login.FamilyID, now)
	if err != nil {
		return Grant{}, err
	}
	var refresh string
	if login.WithRefreshToken {
		var record storage.RefreshToken
		familyExpiresAt := now.Add(s.cfg.RefreshTokenTTL)
		refresh, record, err = s.newRefreshToken(storage.RefreshToken{
			FamilyID:        login.FamilyID,
			Subject:         login.Principal.Subject,
			Role:            string(login.Principal.Role),
			Scope:           strings.Join(login.Scopes, " "),
			IssuedAt:        now,
			ExpiresAt:       earliest(now.Add(s.cfg.RefreshIdleTimeout), familyExpiresAt),
			FamilyExpiresAt: familyExpiresAt,
		})
		if err != nil {
			return Grant{}, err
		}
		if err := s.Store.CreateRefreshToken(ctx, record); err != nil {
			return Grant{}, fmt.Errorf("store refresh token: %w", err)
		}
	}
	grant := s.grant(access, refresh, login.Scopes)
	s.Events.TokenIssued(login.Kind)
	if login.IDToken != nil {
		if grant.IDToken, err = s.signIDToken(login.Principal, *login.IDToken, now); err != nil {
			return Grant{}, err
		}
	}
	return grant, nil
}

// signIDToken makes an OIDC ID token (OpenID Connect Core §2) for the client.
func (s *Service) signIDToken(principal accounts.Principal, req IDTokenRequest, now time.Time) (string, error) {
	builder := jwt.NewBuilder().
		Issuer(s.cfg.Issuer).
		Subject(principal.Subject).
		Audience([]string{req.ClientID}).
		IssuedAt(now).
		Expiration(now.Add(s.cfg.AccessTokenTTL)).
		Claim("auth_time", req.AuthTime.Unix())
	if req.Nonce != "" {
		builder = builder.Claim("nonce", req.Nonce)
	}
	token, err := builder.Build()
	if err != nil {
		return "", fmt.Errorf("build ID token: %w", err)
	}
	return s.Keys.Sign(token)
}

// ParseScope splits and checks a space-separated scope (RFC 6749 §3.3).
func ParseScope(scope string) ([]string, error) { return parseScope(scope) }

// IssueForClient signs a service account in. It gets no refresh token: it
// holds its secret and simply asks again (RFC 6749 §4.4.3).
func (s *Service) IssueForClient(ctx context.Context, clientID, secret, scope string) (Grant, error) {
	scopes, err := parseScope(scope)
	if err != nil {
		return Grant{}, err
	}
	principal, err := s.Directory.AuthenticateService(ctx, clientID, secret)
	if err != nil {
		return Grant{}, err
	}
	access, err := s.signAccessToken(principal, scopes, "", s.Now())
	if err != nil {
		return Grant{}, err
	}
	s.Events.TokenIssued("client_credentials")
	return s.grant(access, "", scopes), nil
}

var (
	errRefreshInvalid = chiterr.New(chiterr.Unauthenticated, "refresh token is invalid")
	errRefreshReused  = chiterr.New(chiterr.Unauthenticated, "refresh token has already been used; the session is revoked")
	errRefreshExpired = chiterr.New(chiterr.Unauthenticated, "refresh token has expired")
)

// rotationSealPurpose separates the sealing of successors from other uses.
const rotationSealPurpose = "refresh rotation"

// Refresh exchanges a refresh token for a new access token and a successor
// refresh token; the presented one stops working. Presenting it again within
// the grace period answers the same successor (a lost answer, two tabs);
// after that it is reuse, and the whole family is revoked.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Grant, error) {
	if refreshToken == "" {
		return Grant{}, chiterr.New(chiterr.InvalidArgument, "refresh_token is required")
	}
	if len(refreshToken) > MaxTokenLength || !strings.HasPrefix(refreshToken, RefreshTokenPrefix) {
		return Grant{}, errRefreshInvalid
	}
	// A lost race for the rotation is retried once: the second pass finds the
	// token rotated and answers the winner's successor.
	for attempt := 0; ; attempt++ {
		grant, err := s.refreshOnce(ctx, refreshToken)
		if errors.Is(err, storage.ErrConflict) && attempt == 0 {
			continue
		}
		return grant, err
	}
}

func (s *Service) refreshOnce(ctx context.Context, refreshToken string) (Grant, error) {
	oldHash := secrets.Digest(refreshToken)
	current, err := s.Store.GetRefreshToken(ctx, oldHash)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return Grant{}, errRefreshInvalid
	case err != nil:
		return Grant{}, fmt.Errorf("read refresh token: %w", err)
	}
	now := s.Now()
	principal := accounts.Principal{Subject: current.Subject, Role: accounts.Role(current.Role)}
	scopes := strings.Fields(current.Scope)
	if !current.RotatedAt.IsZero() {
		return s.replay(ctx, refreshToken, current, principal, scopes, now)
	}
	if !now.Before(current.ExpiresAt) {
		return Grant{}, errRefreshExpired
	}
	successor := current
	successor.IssuedAt, successor.RotatedAt, successor.ReplacedBy, successor.SealedSuccessor = now, time.Time{}, nil, nil
	successor.ExpiresAt = earliest(now.Add(s.cfg.RefreshIdleTimeout), current.FamilyExpiresAt)
	refresh, successor, err := s.newRefreshToken(successor)
	if err != nil {
		return Grant{}, err
	}
	var sealed []byte
	if s.cfg.RefreshGracePeriod > 0 {
		if sealed, err = secrets.Seal(rotationSealPurpose, refreshToken, refresh, s.Random); err != nil {
			return Grant{}, err
		}
	}
	access, err := s.signAccessToken(principal, scopes, current.FamilyID, now)
	if err != nil {
		return Grant{}, err
	}
	switch err := s.Store.RotateRefreshToken(ctx, oldHash, successor, sealed); {
	case errors.Is(err, storage.ErrConflict):
		return Grant{}, err
	case errors.Is(err, storage.ErrNotFound):
		return Grant{}, errRefreshInvalid
	case err != nil:
		return Grant{}, fmt.Errorf("rotate refresh token: %w", err)
	}
	s.Events.TokenIssued("refresh")
	return s.grant(access, refresh, scopes), nil
}

// replay handles a refresh token that was already rotated.
func (s *Service) replay(ctx context.Context, refreshToken string, current storage.RefreshToken, principal accounts.Principal, scopes []string, now time.Time) (Grant, error) {
	if s.cfg.RefreshGracePeriod > 0 && now.Sub(current.RotatedAt) <= s.cfg.RefreshGracePeriod && len(current.SealedSuccessor) > 0 {
		successor, err := secrets.Open(rotationSealPurpose, refreshToken, current.SealedSuccessor)
		if err != nil {
			return Grant{}, fmt.Errorf("open sealed successor: %w", err)
		}
		// The successor must still be alive: a revoked family stays revoked.
		if _, err := s.Store.GetRefreshToken(ctx, secrets.Digest(successor)); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return Grant{}, errRefreshInvalid
			}
			return Grant{}, fmt.Errorf("read successor: %w", err)
		}
		access, err := s.signAccessToken(principal, scopes, current.FamilyID, now)
		if err != nil {
			return Grant{}, err
		}
		return s.grant(access, successor, scopes), nil
	}
	// Reuse outside the grace period: either the client or a thief holds a
	// stale copy, and we cannot tell which; end the whole login (RFC 9700 §4.14.2).
	s.Logger.WarnContext(ctx, "refresh token reuse detected; revoking its family",
		"audit", true, "event", "refresh_reuse", "subject", current.Subject, "family", current.FamilyID, "rotated_at", current.RotatedAt)
	s.Events.RefreshReuseDetected()
	if err := s.RevokeFamily(ctx, current.FamilyID, current.Subject, "refresh token reuse"); err != nil {
		return Grant{}, fmt.Errorf("revoke family after reuse: %w", err)
	}
	return Grant{}, errRefreshReused
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

var (
	errMissingToken = chiterr.New(chiterr.Unauthenticated, "missing bearer token")
	errInvalidToken = chiterr.New(chiterr.Unauthenticated, "access token is invalid")
	errExpiredToken = chiterr.New(chiterr.Unauthenticated, "access token has expired")
	errRevokedToken = chiterr.New(chiterr.Unauthenticated, "access token has been revoked")
)

// Check verifies an access token signed by the server or by a provider's key
// (for CheckToken) and returns its claims.
func (s *Service) Check(ctx context.Context, accessToken string) (Claims, error) {
	lookups := []keys.KeyLookup{s.Keys.LookupContext}
	if s.ProviderKeys != nil {
		lookups = append(lookups, s.ProviderKeys)
	}
	return s.verify(ctx, accessToken, lookups)
}

// Authenticate verifies an access token signed by the server itself: only
// those say who may call Chit's own RPCs.
func (s *Service) Authenticate(ctx context.Context, accessToken string) (Claims, error) {
	return s.verify(ctx, accessToken, []keys.KeyLookup{s.Keys.LookupContext})
}

// verify checks signature, issuer, audience and times, and returns the claims.
func (s *Service) verify(ctx context.Context, accessToken string, lookups []keys.KeyLookup) (Claims, error) {
	// A token checked before is not verified again: its signature and claims
	// cannot have changed. Only revocation can, and it is checked every time.
	cacheKey := verifiedKey{token: accessToken, sources: len(lookups)}
	claims, ok := s.verified.get(cacheKey, s.Now().Add(-s.cfg.ClockSkew))
	if !ok {
		var err error
		if claims, err = s.parse(ctx, accessToken, lookups); err != nil {
			return Claims{}, err
		}
		s.verified.put(cacheKey, claims)
	}
	revocation, err := s.revocations.get(ctx, claims.FamilyID, claims.Subject)
	if err != nil {
		return Claims{}, fmt.Errorf("check revocation: %w", err)
	}
	if revocation.FamilyRevoked || (!revocation.SubjectRevokedAt.IsZero() && !claims.IssuedAt.After(revocation.SubjectRevokedAt)) {
		return Claims{}, errRevokedToken
	}
	return claims, nil
}

// parse verifies an access token's signature, issuer, audience and times.
func (s *Service) parse(ctx context.Context, accessToken string, lookups []keys.KeyLookup) (Claims, error) {
	if accessToken == "" {
		return Claims{}, errMissingToken
	}
	if len(accessToken) > MaxTokenLength {
		return Claims{}, errInvalidToken
	}
	if err := checkPayloadShape(accessToken); err != nil {
		return Claims{}, chiterr.Wrap(chiterr.Unauthenticated, err, errInvalidToken.Message)
	}
	token, err := jwt.ParseString(accessToken,
		jwt.WithContext(ctx),
		jwt.WithKeyProvider(keys.KeyProvider(lookups...)),
		jwt.WithValidate(true),
		jwt.WithIssuer(s.cfg.Issuer),
		jwt.WithAudience(s.cfg.Audience),
		jwt.WithClock(jwt.ClockFunc(s.Now)),
		jwt.WithAcceptableSkew(s.cfg.ClockSkew),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.SubjectKey),
		jwt.WithRequiredClaim("role"),
	)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired()) {
			return Claims{}, errExpiredToken
		}
		return Claims{}, chiterr.Wrap(chiterr.Unauthenticated, err, errInvalidToken.Message)
	}
	role, _ := stringClaim(token, "role")
	scope, _ := stringClaim(token, "scope")
	familyID, _ := stringClaim(token, FamilyClaim)
	return Claims{
		FamilyID:  familyID,
		Subject:   token.Subject(),
		Role:      accounts.Role(role),
		Scopes:    strings.Fields(scope),
		Issuer:    token.Issuer(),
		Audience:  token.Audience(),
		ID:        token.JwtID(),
		IssuedAt:  token.IssuedAt(),
		ExpiresAt: token.Expiration(),
	}, nil
}

func stringClaim(token jwt.Token, name string) (string, bool) {
	value, ok := token.Get(name)
	if !ok {
		return "", false
	}
	text, ok := value.(string)
	return text, ok
}

func (s *Service) grant(access, refresh string, scopes []string) Grant {
	return Grant{AccessToken: access, RefreshToken: refresh, ExpiresIn: s.cfg.AccessTokenTTL, Scope: strings.Join(scopes, " ")}
}

// signAccessToken signs an access token; familyID (the `fid` claim) ties it to
// its login so revoking the login refuses it too.
func (s *Service) signAccessToken(principal accounts.Principal, scopes []string, familyID string, now time.Time) (string, error) {
	jti, err := s.randomString(16)
	if err != nil {
		return "", err
	}
	builder := jwt.NewBuilder().
		Issuer(s.cfg.Issuer).
		Subject(principal.Subject).
		Audience([]string{s.cfg.Audience}).
		IssuedAt(now).
		NotBefore(now).
		Expiration(now.Add(s.cfg.AccessTokenTTL)).
		JwtID(jti).
		Claim("role", string(principal.Role))
	if len(scopes) > 0 {
		builder = builder.Claim("scope", strings.Join(scopes, " "))
	}
	if familyID != "" {
		builder = builder.Claim(FamilyClaim, familyID)
	}
	token, err := builder.Build()
	if err != nil {
		return "", fmt.Errorf("build access token: %w", err)
	}
	return s.Keys.Sign(token)
}

// newRefreshToken fills record with a fresh random token's hash and returns
// the token itself, which is shown once and never stored.
func (s *Service) newRefreshToken(record storage.RefreshToken) (string, storage.RefreshToken, error) {
	secret, err := s.randomString(32)
	if err != nil {
		return "", storage.RefreshToken{}, err
	}
	token := RefreshTokenPrefix + secret
	record.Hash = secrets.Digest(token)
	return token, record, nil
}

func (s *Service) randomString(n int) (string, error) { return secrets.Random(s.Random, n) }

// parseScope splits a space-separated scope (RFC 6749 §3.3), refusing
// characters outside scope-token and dropping duplicates.
func parseScope(scope string) ([]string, error) {
	if len(scope) > 1024 {
		return nil, chiterr.New(chiterr.InvalidArgument, "scope is longer than 1024 characters")
	}
	var scopes []string
	seen := map[string]bool{}
	for _, item := range strings.Split(scope, " ") {
		if item == "" {
			continue
		}
		for _, r := range item {
			if r < 0x21 || r == 0x22 || r == 0x5c || r > 0x7e {
				return nil, chiterr.New(chiterr.InvalidArgument, "scope %q contains a character not allowed in a scope", item)
			}
		}
		if !seen[item] {
			seen[item] = true
			scopes = append(scopes, item)
		}
	}
	return scopes, nil
}
