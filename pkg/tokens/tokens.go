package tokens

import (
	"context"
	"errors"
	"fmt"
	"io"
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
}

// Defaults, documented in the README's configuration table.
const (
	DefaultAccessTokenTTL  = 15 * time.Minute
	DefaultRefreshTokenTTL = 30 * 24 * time.Hour
	DefaultAudience        = "chit"
	DefaultClockSkew       = 30 * time.Second
)

// RefreshTokenPrefix marks Chit refresh tokens for secret scanners.
const RefreshTokenPrefix = "chit_rt_"

// MaxTokenLength bounds what Check will parse; Chit's own tokens are far
// shorter, and parsing huge input is work an attacker should not buy.
const MaxTokenLength = 8 << 10

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
}

// Service issues, refreshes and checks tokens.
type Service struct {
	cfg  Config
	keys *keys.Set
	// providerKeys finds provider keys: CheckToken accepts provider tokens,
	// but they never authorize calls to Chit itself.
	providerKeys keys.KeyLookup
	store        storage.Store
	directory    *accounts.Directory
	now          func() time.Time
	random       io.Reader
}

// NewService wires the core. now and random are injected so expiry and
// rotation can be tested without sleeping.
// providerKeys may be nil.
func NewService(cfg Config, signingKeys *keys.Set, providerKeys keys.KeyLookup, store storage.Store, directory *accounts.Directory, now func() time.Time, random io.Reader) *Service {
	return &Service{cfg: cfg, keys: signingKeys, providerKeys: providerKeys, store: store, directory: directory, now: now, random: random}
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
	principal, err := s.directory.AuthenticateUser(ctx, username, password)
	if err != nil {
		return Grant{}, err
	}
	familyID, err := s.NewFamilyID()
	if err != nil {
		return Grant{}, err
	}
	return s.IssueForLogin(ctx, Login{Principal: principal, Scopes: scopes, FamilyID: familyID, WithRefreshToken: true})
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
	now := s.now()
	access, err := s.signAccessToken(login.Principal, login.Scopes, now)
	if err != nil {
		return Grant{}, err
	}
	var refresh string
	if login.WithRefreshToken {
		var record storage.RefreshToken
		refresh, record, err = s.newRefreshToken(storage.RefreshToken{
			FamilyID:  login.FamilyID,
			Subject:   login.Principal.Subject,
			Role:      string(login.Principal.Role),
			Scope:     strings.Join(login.Scopes, " "),
			IssuedAt:  now,
			ExpiresAt: now.Add(s.cfg.RefreshTokenTTL),
		})
		if err != nil {
			return Grant{}, err
		}
		if err := s.store.CreateRefreshToken(ctx, record); err != nil {
			return Grant{}, fmt.Errorf("store refresh token: %w", err)
		}
	}
	grant := s.grant(access, refresh, login.Scopes)
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
	return s.keys.Sign(token)
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
	principal, err := s.directory.AuthenticateService(ctx, clientID, secret)
	if err != nil {
		return Grant{}, err
	}
	access, err := s.signAccessToken(principal, scopes, s.now())
	if err != nil {
		return Grant{}, err
	}
	return s.grant(access, "", scopes), nil
}

var (
	errRefreshInvalid = chiterr.New(chiterr.Unauthenticated, "refresh token is invalid")
	errRefreshUsed    = chiterr.New(chiterr.Unauthenticated, "refresh token has already been used")
	errRefreshExpired = chiterr.New(chiterr.Unauthenticated, "refresh token has expired")
)

// Refresh exchanges a refresh token for a new access token and a successor
// refresh token; the presented one stops working.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Grant, error) {
	if refreshToken == "" {
		return Grant{}, chiterr.New(chiterr.InvalidArgument, "refresh_token is required")
	}
	if len(refreshToken) > MaxTokenLength || !strings.HasPrefix(refreshToken, RefreshTokenPrefix) {
		return Grant{}, errRefreshInvalid
	}
	oldHash := secrets.Digest(refreshToken)
	current, err := s.store.GetRefreshToken(ctx, oldHash)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return Grant{}, errRefreshInvalid
	case err != nil:
		return Grant{}, fmt.Errorf("read refresh token: %w", err)
	}
	now := s.now()
	if !current.RotatedAt.IsZero() {
		return Grant{}, errRefreshUsed
	}
	if !now.Before(current.ExpiresAt) {
		return Grant{}, errRefreshExpired
	}
	successor := current
	successor.IssuedAt, successor.RotatedAt, successor.ReplacedBy = now, time.Time{}, nil
	refresh, successor, err := s.newRefreshToken(successor)
	if err != nil {
		return Grant{}, err
	}
	scopes := strings.Fields(current.Scope)
	principal := accounts.Principal{Subject: current.Subject, Role: accounts.Role(current.Role)}
	access, err := s.signAccessToken(principal, scopes, now)
	if err != nil {
		return Grant{}, err
	}
	switch err := s.store.RotateRefreshToken(ctx, oldHash, successor); {
	case errors.Is(err, storage.ErrConflict):
		return Grant{}, errRefreshUsed
	case errors.Is(err, storage.ErrNotFound):
		return Grant{}, errRefreshInvalid
	case err != nil:
		return Grant{}, fmt.Errorf("rotate refresh token: %w", err)
	}
	return s.grant(access, refresh, scopes), nil
}

var (
	errMissingToken = chiterr.New(chiterr.Unauthenticated, "missing bearer token")
	errInvalidToken = chiterr.New(chiterr.Unauthenticated, "access token is invalid")
	errExpiredToken = chiterr.New(chiterr.Unauthenticated, "access token has expired")
)

// Check verifies an access token signed by the server or by a provider's key
// (for CheckToken) and returns its claims.
func (s *Service) Check(ctx context.Context, accessToken string) (Claims, error) {
	lookups := []keys.KeyLookup{s.keys.LookupContext}
	if s.providerKeys != nil {
		lookups = append(lookups, s.providerKeys)
	}
	return s.verify(ctx, accessToken, lookups)
}

// Authenticate verifies an access token signed by the server itself: only
// those say who may call Chit's own RPCs.
func (s *Service) Authenticate(ctx context.Context, accessToken string) (Claims, error) {
	return s.verify(ctx, accessToken, []keys.KeyLookup{s.keys.LookupContext})
}

// verify checks signature, issuer, audience and times, and returns the claims.
func (s *Service) verify(ctx context.Context, accessToken string, lookups []keys.KeyLookup) (Claims, error) {
	if accessToken == "" {
		return Claims{}, errMissingToken
	}
	if len(accessToken) > MaxTokenLength {
		return Claims{}, errInvalidToken
	}
	token, err := jwt.ParseString(accessToken,
		jwt.WithContext(ctx),
		jwt.WithKeyProvider(keys.KeyProvider(lookups...)),
		jwt.WithValidate(true),
		jwt.WithIssuer(s.cfg.Issuer),
		jwt.WithAudience(s.cfg.Audience),
		jwt.WithClock(jwt.ClockFunc(s.now)),
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
	return Claims{
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

func (s *Service) signAccessToken(principal accounts.Principal, scopes []string, now time.Time) (string, error) {
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
	token, err := builder.Build()
	if err != nil {
		return "", fmt.Errorf("build access token: %w", err)
	}
	return s.keys.Sign(token)
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

func (s *Service) randomString(n int) (string, error) { return secrets.Random(s.random, n) }

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
