package tokens

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/secrets"
	"github.com/chit-auth/chit/internal/storage"
)

// Config is the token policy. server.Config.Validate checks it (and chitd its
// own stricter bounds) before it gets here.
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
const MaxTokenLength = secrets.MaxTokenLength

// checkPresentedToken refuses the token field of a request that names a
// token (revocation, introspection) when it is empty or over
// MaxTokenLength.
func checkPresentedToken(token string) error {
	switch {
	case token == "":
		return chiterr.New(chiterr.InvalidArgument, "token is required")
	case len(token) > MaxTokenLength:
		return chiterr.New(chiterr.InvalidArgument, "token is longer than %d bytes", MaxTokenLength)
	}
	return nil
}

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

// ClientIDClaim names the OAuth client a token was issued to (RFC 9068 §2.2).
const ClientIDClaim = "client_id"

// Claims describe a valid access token.
type Claims struct {
	Subject string
	Role    accounts.Role
	Scopes  []string
	// ClientID is the client the token was issued to: the service account
	// itself, or the client a person signed in through. Empty in tokens
	// issued before clients were recorded.
	ClientID  string
	Issuer    string
	Audience  []string
	ID        string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// FamilyID is the login the token belongs to; empty for client credentials.
	FamilyID string
	// AuthTime is when the subject proved who they are, for tokens issued
	// for a sign-in or client credentials; zero for those issued by a
	// refresh or for an API key.
	AuthTime time.Time
	// APIKeyID names the API key the token was exchanged for, if any.
	APIKeyID string
	// signedBy names the key that verified the token, so that a cached
	// verification ends when the key is removed.
	signedBy verifyingKey
	// issuedAtPrecisely is IssuedAt to the microsecond (IssuedAtMicrosClaim),
	// for comparing with revocations within the same second.
	issuedAtPrecisely time.Time
}

// verifyingKey is the key a token was verified with.
type verifyingKey struct {
	id string
	// provider is true for a provider's key: such tokens never authorize
	// calls to Chit, and the key is looked up again before a cached answer.
	provider bool
}

// Service issues, refreshes and checks tokens.
type Service struct {
	cfg Config
	Dependencies
	revocations  *revocationCache
	verified     *verifiedCache
	providerKeys *providerKeyCache
}

// Dependencies are the live collaborators of the core.
type Dependencies struct {
	Keys *keys.Set
	// RefreshKeys make and check the MACs of refresh tokens.
	RefreshKeys *keys.RefreshTokenKeys
	// ProviderKeys finds provider keys: CheckToken accepts provider tokens,
	// but they never authorize calls to Chit itself. May be nil.
	ProviderKeys keys.KeyLookup
	Store        Store
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
	return &Service{
		cfg: cfg, Dependencies: deps, verified: &verifiedCache{},
		revocations:  newRevocationCache(cfg.RevocationCacheTTL, deps.Store, deps.Now),
		providerKeys: &providerKeyCache{ttl: cfg.RevocationCacheTTL, now: deps.Now},
	}
}

// ForgetProviderKeys drops the provider keys the service remembers: call it
// when one was replaced or removed on this server, so the tokens it signed
// are refused at once here (other replicas re-read within the revocation
// cache time).
func (s *Service) ForgetProviderKeys() { s.providerKeys.forgetAll() }

// Config returns the policy the service runs with.
func (s *Service) Config() Config { return s.cfg }

// IssueForPassword signs a person in through client (already
// authenticated): an access token and a refresh token that starts a new
// family, with the scopes and audience asked for within what the person and
// the client are allowed.
func (s *Service) IssueForPassword(ctx context.Context, client accounts.Client, address, username, password, scope, audience string) (Grant, error) {
	if client.Service {
		return Grant{}, errServiceNotPasswordClient
	}
	requested, err := accounts.ParseScope(scope)
	if err != nil {
		return Grant{}, err
	}
	principal, err := s.Directory.AuthenticateUser(ctx, address, username, password)
	if err != nil {
		return Grant{}, err
	}
	grantee := accounts.Grantee{Principal: principal, Client: client}
	scopes, err := grantee.GrantScopes(requested)
	if err != nil {
		return Grant{}, err
	}
	if audience, err = grantee.GrantAudience(audience); err != nil {
		return Grant{}, err
	}
	familyID, err := s.NewFamilyID()
	if err != nil {
		return Grant{}, err
	}
	return s.IssueForLogin(ctx, Login{Grantee: grantee, Scopes: scopes, Audience: audience, FamilyID: familyID, WithRefreshToken: true, Kind: "password"})
}

// issuedAt is the time a token for grantee counts as issued: when the
// first of the records that decide its grants (the principal's, the
// client's) was read, not when the token is signed. A change committed in
// between (during a password hash, or while a replica's cache still held the
// old record) then refuses the token, as it refuses every older one.
func (s *Service) issuedAt(grantee accounts.Grantee) time.Time {
	at := s.Now()
	for _, readAt := range []time.Time{grantee.Principal.ReadAt, grantee.Client.ReadAt} {
		if !readAt.IsZero() && readAt.Before(at) {
			at = readAt
		}
	}
	return at
}

var errServiceNotPasswordClient = chiterr.New(chiterr.PermissionDenied, "a service account signs in with client credentials only").WithReason(chiterr.ReasonUnauthorizedClient)

// Login describes a person who has just proven who they are, and what to
// issue them.
type Login struct {
	accounts.Grantee
	// Scopes and Audience are what the login was granted (Grantee's
	// GrantScopes and GrantAudience).
	Scopes   []string
	Audience string
	// FamilyID names the refresh family the login starts (NewFamilyID).
	FamilyID         string
	WithRefreshToken bool
	// IDToken, when set, asks for an OIDC ID token.
	IDToken *IDTokenRequest
	// Kind names the grant for metrics (password, authorization_code).
	Kind string
	// AuthTime is when the person proved who they are (the sign-in page's
	// submission, for a code); zero means now.
	AuthTime time.Time
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
	now := s.issuedAt(login.Grantee)
	authTime := login.AuthTime
	if authTime.IsZero() {
		authTime = now
	}
	access, err := s.signAccess(accessToken{grantee: login.Grantee, scopes: login.Scopes, audience: login.Audience,
		familyID: login.FamilyID, issuedAt: now, authTime: authTime})
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
			Role:            string(login.Role()),
			Scope:           strings.Join(login.Scopes, " "),
			ClientID:        login.Client.ID,
			Audience:        login.Audience,
			IssuedAt:        now,
			ExpiresAt:       earliest(now.Add(s.cfg.RefreshIdleTimeout), familyExpiresAt),
			FamilyExpiresAt: familyExpiresAt,
			Generation:      1,
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

// IssueForClient signs a service account in. It gets no refresh token: it
// holds its secret and simply asks again (RFC 6749 §4.4.3).
func (s *Service) IssueForClient(ctx context.Context, clientID, secret, scope, audience string) (Grant, error) {
	requested, err := accounts.ParseScope(scope)
	if err != nil {
		return Grant{}, err
	}
	principal, err := s.Directory.AuthenticateService(ctx, clientID, secret)
	if err != nil {
		return Grant{}, err
	}
	grantee := accounts.Grantee{Principal: principal, Client: accounts.Client{ID: principal.Name, Service: true, Confidential: true, Grants: principal.Grants}}
	scopes, err := grantee.GrantScopes(requested)
	if err != nil {
		return Grant{}, err
	}
	if audience, err = grantee.GrantAudience(audience); err != nil {
		return Grant{}, err
	}
	issuedAt := s.issuedAt(grantee)
	// Client credentials prove who the service is with every request.
	access, err := s.signAccess(accessToken{grantee: grantee, scopes: scopes, audience: audience, issuedAt: issuedAt, authTime: issuedAt})
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

// Refresh exchanges a refresh token, presented by the client it was issued
// to, for a new access token and a successor refresh token; the presented
// one stops working. Presenting it again within the grace period answers
// the same successor (a lost answer, two tabs); after that it is reuse, and
// the whole family is revoked. scope, when not empty, narrows the new
// access token (RFC 6749 §6); the refresh token keeps the login's scopes.
func (s *Service) Refresh(ctx context.Context, client accounts.Client, refreshToken, scope string) (Grant, error) {
	if refreshToken == "" {
		return Grant{}, chiterr.New(chiterr.InvalidArgument, "refresh_token is required")
	}
	requested, err := accounts.ParseScope(scope)
	if err != nil {
		return Grant{}, err
	}
	if len(refreshToken) > MaxTokenLength {
		return Grant{}, chiterr.New(chiterr.InvalidArgument, "refresh_token is longer than %d bytes", MaxTokenLength)
	}
	if !strings.HasPrefix(refreshToken, RefreshTokenPrefix) {
		return Grant{}, errRefreshInvalid
	}
	// A lost race for the rotation is retried once: the second pass finds the
	// token rotated and answers the winner's successor.
	for attempt := 0; ; attempt++ {
		grant, err := s.refreshOnce(ctx, client, refreshToken, requested)
		if errors.Is(err, storage.ErrConflict) && attempt == 0 {
			continue
		}
		return grant, err
	}
}

// userRead is a login's user as read for a refresh: the principal, or
// storage.ErrNotFound (the user was deleted), or the read's error.
type userRead struct {
	principal accounts.Principal
	err       error
}

// lookUpUser reads subject's user alone.
func (s *Service) lookUpUser(ctx context.Context, subject string) userRead {
	principal, err := s.Directory.LookupUser(ctx, subject)
	return userRead{principal, err}
}

var (
	errRefreshOtherClient = chiterr.New(chiterr.Unauthenticated, "refresh token was issued to another client")
	errPrincipalGone      = chiterr.New(chiterr.Unauthenticated, "refresh token is invalid: its user no longer exists")
)

// loginNow is what a refresh of current may issue now: the login's
// principal and client as they are in the store (a deleted one ends the
// login, a new role applies, a narrowed grant narrows), and the scopes of
// the new access token.
func (s *Service) loginNow(ctx context.Context, client accounts.Client, current storage.RefreshToken, requested []string, user userRead) (Login, error) {
	switch {
	case client.Service:
		return Login{}, errServiceNotPasswordClient
	case current.ClientID == "" && !client.FirstParty:
		// Issued before clients were recorded: only Chit's own clients
		// issued such tokens.
		return Login{}, errRefreshOtherClient
	case current.ClientID != "" && current.ClientID != client.ID:
		return Login{}, errRefreshOtherClient
	}
	principal, err := user.principal, user.err
	switch {
	// A user created after the token was issued is another person who took
	// the name of a deleted one: the login is not theirs.
	case errors.Is(err, storage.ErrNotFound) || (err == nil && principal.CreatedAt.After(current.IssuedAt)):
		return Login{}, errPrincipalGone
	case err != nil:
		return Login{}, fmt.Errorf("read the login's user: %w", err)
	}
	if !client.FirstParty {
		// The client's grants as they are now, not as its authentication
		// found them a moment ago: both come from the store.
		if client, err = s.Directory.LookupClient(ctx, client.ID); err != nil {
			if errors.Is(err, storage.ErrUnavailable) {
				return Login{}, err
			}
			return Login{}, chiterr.Wrap(chiterr.Unauthenticated, err, errRefreshInvalid.Message)
		}
		if client.CreatedAt.After(current.IssuedAt) {
			return Login{}, errRefreshOtherClient
		}
	}
	grantee := accounts.Grantee{Principal: principal, Client: client}
	loginScopes := strings.Fields(current.Scope)
	for _, scope := range requested {
		if !slices.Contains(loginScopes, scope) {
			return Login{}, chiterr.New(chiterr.InvalidArgument, "scope %q was not granted to this login; a refresh can only narrow", scope).WithReason(chiterr.ReasonInvalidScope)
		}
	}
	if len(requested) == 0 {
		requested = loginScopes
	}
	// A login lives on through refreshes only while offline_access is
	// still allowed to it: taking it from the person or the client ends
	// the login at its next refresh.
	if slices.Contains(loginScopes, accounts.ScopeOfflineAccess) && len(grantee.StillAllowed([]string{accounts.ScopeOfflineAccess})) == 0 {
		return Login{}, chiterr.New(chiterr.Unauthenticated, "refresh token is invalid: offline_access is no longer allowed")
	}
	audience, err := grantee.GrantAudience(current.Audience)
	if err != nil {
		return Login{}, chiterr.New(chiterr.Unauthenticated, "refresh token is invalid: its audience is no longer allowed")
	}
	return Login{Grantee: grantee, Scopes: grantee.StillAllowed(requested), Audience: audience, FamilyID: current.FamilyID}, nil
}

func (s *Service) refreshOnce(ctx context.Context, client accounts.Client, refreshToken string, requested []string) (Grant, error) {
	// The login's record and its user are read together: one round trip
	// where a round trip costs (PostgreSQL). The user counts as read from
	// before the read began.
	readAt := s.Now()
	current, user, err := s.Store.GetRefreshTokenWithUser(ctx, familyOf(refreshToken), secrets.Digest(refreshToken))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return s.unknownRefreshToken(ctx, client, refreshToken)
	case err != nil:
		return Grant{}, fmt.Errorf("read refresh token: %w", err)
	}
	read := userRead{err: storage.ErrNotFound}
	if user != nil {
		read = userRead{principal: s.Directory.UserPrincipal(*user, readAt)}
	}
	now := s.Now()
	login, err := s.loginNow(ctx, client, current, requested, read)
	if err != nil {
		return Grant{}, err
	}
	if !current.RotatedAt.IsZero() {
		return s.replay(ctx, refreshToken, current, login, now)
	}
	if !now.Before(current.ExpiresAt) {
		return Grant{}, errRefreshExpired
	}
	// The successor and its access token count from when the user was read
	// (issuedAt), so a change committed meanwhile refuses them.
	issuedAt := s.issuedAt(login.Grantee)
	successor := current
	successor.IssuedAt, successor.RotatedAt, successor.ReplacedBy, successor.SealedSuccessor = issuedAt, time.Time{}, nil, nil
	successor.ExpiresAt = earliest(now.Add(s.cfg.RefreshIdleTimeout), current.FamilyExpiresAt)
	successor.ClientID, successor.Role = login.Client.ID, string(login.Role())
	successor.Generation = current.Generation + 1
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
	access, err := s.signAccess(accessToken{grantee: login.Grantee, scopes: login.Scopes, audience: login.Audience, familyID: current.FamilyID, issuedAt: issuedAt})
	if err != nil {
		return Grant{}, err
	}
	switch err := s.Store.RotateRefreshToken(ctx, current.Hash, successor, sealed); {
	case errors.Is(err, storage.ErrConflict):
		return Grant{}, err
	case errors.Is(err, storage.ErrNotFound):
		return Grant{}, errRefreshInvalid
	case err != nil:
		return Grant{}, fmt.Errorf("rotate refresh token: %w", err)
	}
	s.Events.TokenIssued("refresh")
	return s.grant(access, refresh, login.Scopes), nil
}

// unknownRefreshToken answers a refresh token the store does not hold: a
// genuine earlier token of a live login is reuse, which ends the login;
// anything else (forged, altered, of an ended login) is refused and ends
// nothing.
func (s *Service) unknownRefreshToken(ctx context.Context, client accounts.Client, refreshToken string) (Grant, error) {
	login, earlier, err := s.earlierGeneration(ctx, refreshToken)
	if err != nil || !earlier {
		if err == nil {
			err = errRefreshInvalid
		}
		return Grant{}, err
	}
	// As for a token the store holds: presented by another client, it is
	// refused and revokes nothing.
	if _, err := s.loginNow(ctx, client, login, nil, s.lookUpUser(ctx, login.Subject)); err != nil {
		return Grant{}, err
	}
	return s.reuse(ctx, login)
}

// replay handles a refresh token that was already rotated.
func (s *Service) replay(ctx context.Context, refreshToken string, current storage.RefreshToken, login Login, now time.Time) (Grant, error) {
	if s.cfg.RefreshGracePeriod > 0 && now.Sub(current.RotatedAt) <= s.cfg.RefreshGracePeriod && len(current.SealedSuccessor) > 0 {
		successor, err := secrets.Open(rotationSealPurpose, refreshToken, current.SealedSuccessor)
		if err != nil {
			return Grant{}, fmt.Errorf("open sealed successor: %w", err)
		}
		// The successor must still be alive: a revoked family stays revoked.
		if _, err := s.storedRefreshToken(ctx, successor); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return Grant{}, errRefreshInvalid
			}
			return Grant{}, fmt.Errorf("read successor: %w", err)
		}
		access, err := s.signAccess(accessToken{grantee: login.Grantee, scopes: login.Scopes, audience: login.Audience,
			familyID: current.FamilyID, issuedAt: s.issuedAt(login.Grantee)})
		if err != nil {
			return Grant{}, err
		}
		return s.grant(access, successor, login.Scopes), nil
	}
	return s.reuse(ctx, current)
}

// reuse ends the login of a rotated token presented again outside the grace
// period: either the client or a thief holds a stale copy, and we cannot
// tell which; end the whole login (RFC 9700 §4.14.2).
func (s *Service) reuse(ctx context.Context, current storage.RefreshToken) (Grant, error) {
	s.Logger.WarnContext(ctx, "refresh token reuse detected; revoking its family",
		"audit", true, "event", "refresh_reuse", "subject", current.Subject, "family", current.FamilyID, "rotated_at", current.RotatedAt)
	s.Events.RefreshReuseDetected()
	if err := s.RevokeFamily(ctx, Family{ID: current.FamilyID, Subject: current.Subject, ClientID: current.ClientID}, "refresh token reuse"); err != nil {
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
// (for CheckToken and introspection) and returns its claims. Only tokens for
// the server's own audience pass: a token minted for another service is
// verified by that service (pkg/verifier), so CheckToken never vouches for
// a token to a service it was not minted for.
func (s *Service) Check(ctx context.Context, accessToken string) (Claims, error) {
	return s.verify(ctx, accessToken, false)
}

// Authenticate verifies an access token that authorizes a call to Chit
// itself: signed by the server, never by a provider's key.
func (s *Service) Authenticate(ctx context.Context, accessToken string) (Claims, error) {
	return s.authenticate(ctx, accessToken, false)
}

func (s *Service) authenticate(ctx context.Context, accessToken string, fromStore bool) (Claims, error) {
	claims, err := s.verify(ctx, accessToken, fromStore)
	if err != nil {
		return Claims{}, err
	}
	if claims.signedBy.provider {
		return Claims{}, errInvalidToken
	}
	return claims, nil
}

// verify checks signature, issuer, times and revocation, and returns the
// claims. With revocationFromStore the revocations are read from the store,
// not from what this replica read within RevocationCacheTTL.
func (s *Service) verify(ctx context.Context, accessToken string, revocationFromStore bool) (Claims, error) {
	// A token checked before is not verified again: its signature and claims
	// cannot have changed. Its key can be removed, and it can be revoked:
	// both are checked every time.
	claims, ok := s.verified.get(accessToken, s.Now().Add(-s.cfg.ClockSkew))
	if ok {
		if !s.keyStillTrusted(ctx, claims.signedBy) {
			return Claims{}, errInvalidToken
		}
	} else {
		var err error
		if claims, err = s.parse(ctx, accessToken); err != nil {
			return Claims{}, err
		}
		s.verified.put(accessToken, claims)
	}
	var client string
	if claims.ClientID != "" {
		client = accounts.ClientSubject(claims.ClientID)
	}
	revocation, err := s.revocations.get(ctx, claims.FamilyID, claims.Subject, client, revocationFromStore)
	if err != nil {
		return Claims{}, fmt.Errorf("check revocation: %w", err)
	}
	if revocation.FamilyRevoked || (!revocation.SubjectRevokedAt.IsZero() && !claims.issuedAtPrecisely.After(revocation.SubjectRevokedAt)) {
		return Claims{}, errRevokedToken
	}
	return claims, nil
}

// keyStillTrusted tells whether the key that verified a cached token is
// still published: the server's keys are in memory; a provider's is looked
// up again (within the revocation propagation time, see providerKeyCache).
func (s *Service) keyStillTrusted(ctx context.Context, key verifyingKey) bool {
	if !key.provider {
		_, ok := s.Keys.Lookup(key.id)
		return ok
	}
	_, ok := s.providerKeys.lookup(ctx, s.ProviderKeys, key.id)
	return ok
}

// parse verifies an access token's signature, issuer and times.
func (s *Service) parse(ctx context.Context, accessToken string) (Claims, error) {
	if accessToken == "" {
		return Claims{}, errMissingToken
	}
	if len(accessToken) > MaxTokenLength {
		return Claims{}, errInvalidToken
	}
	if err := checkPayloadShape(accessToken); err != nil {
		return Claims{}, chiterr.Wrap(chiterr.Unauthenticated, err, errInvalidToken.Message)
	}
	var signedBy verifyingKey
	serverKey := func(_ context.Context, kid string) (jwk.Key, bool) {
		key, ok := s.Keys.Lookup(kid)
		signedBy = verifyingKey{id: kid}
		return key, ok
	}
	providerKey := func(ctx context.Context, kid string) (jwk.Key, bool) {
		signedBy = verifyingKey{id: kid, provider: true}
		return s.providerKeys.lookup(ctx, s.ProviderKeys, kid)
	}
	// A kid neither knows may be a server key another replica activated
	// moments ago: the keys are read again, last, so that provider tokens
	// (found second) never cost a reload.
	newServerKey := func(ctx context.Context, kid string) (jwk.Key, bool) {
		key, ok := s.Keys.LookupContext(ctx, kid)
		signedBy = verifyingKey{id: kid}
		return key, ok
	}
	var typ string
	keyProvider := keys.KeyProvider(serverKey, providerKey, newServerKey)
	typed := jws.KeyProviderFunc(func(ctx context.Context, sink jws.KeySink, sig *jws.Signature, message *jws.Message) error {
		headers := sig.ProtectedHeaders()
		typ = headers.Type()
		if !keys.HasLowS(accessToken, headers.Algorithm()) {
			return errors.New("an ES256 signature must have the low s (a token has one encoding)")
		}
		return keyProvider.FetchKeys(ctx, sink, sig, message)
	})
	token, err := jwt.ParseString(accessToken,
		jwt.WithContext(ctx),
		jwt.WithKeyProvider(typed),
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
	role, hasRole := stringClaim(token, "role")
	if !hasRole {
		return Claims{}, chiterr.New(chiterr.Unauthenticated, "%s: role is not a string", errInvalidToken.Message)
	}
	if !keys.IsAccessTokenType(typ, hasRole) {
		// An ID token, or any other JWT signed with the same keys, is not
		// an access token.
		return Claims{}, chiterr.New(chiterr.Unauthenticated, "%s: typ %q is not an access token", errInvalidToken.Message, typ)
	}
	scope, _ := stringClaim(token, "scope")
	familyID, _ := stringClaim(token, FamilyClaim)
	clientID, _ := stringClaim(token, ClientIDClaim)
	apiKeyID, _ := stringClaim(token, APIKeyClaim)
	var authTime time.Time
	if raw, ok := token.Get(AuthTimeClaim); ok {
		if seconds, ok := raw.(float64); ok && seconds > 0 {
			authTime = time.Unix(int64(seconds), 0)
		}
	}
	issuedAt := token.IssuedAt()
	issuedAtPrecisely := issuedAt
	if precise, ok := token.Get(IssuedAtMicrosClaim); ok {
		if micros, ok := precise.(float64); ok && time.UnixMicro(int64(micros)).Truncate(time.Second).Equal(issuedAt) {
			issuedAtPrecisely = time.UnixMicro(int64(micros))
		}
	}
	return Claims{
		AuthTime:  authTime,
		APIKeyID:  apiKeyID,
		FamilyID:  familyID,
		Subject:   token.Subject(),
		Role:      accounts.Role(role),
		Scopes:    strings.Fields(scope),
		ClientID:  clientID,
		Issuer:    token.Issuer(),
		Audience:  token.Audience(),
		ID:        token.JwtID(),
		IssuedAt:  issuedAt,
		ExpiresAt: token.Expiration(),
		signedBy:  signedBy,

		issuedAtPrecisely: issuedAtPrecisely,
	}, nil
}

// IssuedAtMicrosClaim carries the issue time in microseconds: `iat` has
// whole seconds, and a revocation must tell a token issued just before it
// from one issued just after it within the same second.
const IssuedAtMicrosClaim = "iat_us"

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

// accessToken is what an access token states.
type accessToken struct {
	grantee accounts.Grantee
	scopes  []string
	// audience "" is the server's own.
	audience string
	// familyID is the login the token belongs to (FamilyClaim), if any:
	// revoking the login refuses the token too.
	familyID string
	issuedAt time.Time
	// authTime, when set, is when the subject proved who they are for this
	// token (AuthTimeClaim): set by sign-ins and client credentials, never
	// by a refresh or an API key, so a token shows whether it comes from a
	// recent sign-in.
	authTime time.Time
	// apiKeyID names the API key the token was exchanged for (APIKeyClaim).
	apiKeyID string
}

// AuthTimeClaim is when the subject proved who they are (RFC 9068 §2.2.1),
// in seconds. Only tokens issued for a sign-in carry it.
const AuthTimeClaim = "auth_time"

// APIKeyClaim names the API key an access token was exchanged for.
const APIKeyClaim = "api_key_id"

// signAccess signs the access token t describes.
func (s *Service) signAccess(t accessToken) (string, error) {
	grantee, scopes, audience, familyID, now := t.grantee, t.scopes, t.audience, t.familyID, t.issuedAt
	jti, err := s.randomString(16)
	if err != nil {
		return "", err
	}
	if audience == "" {
		audience = s.cfg.Audience
	}
	builder := jwt.NewBuilder().
		Issuer(s.cfg.Issuer).
		Subject(grantee.Principal.Subject).
		Audience([]string{audience}).
		IssuedAt(now).
		NotBefore(now).
		Expiration(now.Add(s.cfg.AccessTokenTTL)).
		JwtID(jti).
		Claim(IssuedAtMicrosClaim, now.UnixMicro()).
		Claim("role", string(grantee.Role()))
	if grantee.Client.ID != "" {
		builder = builder.Claim(ClientIDClaim, grantee.Client.ID)
	}
	if len(scopes) > 0 {
		builder = builder.Claim("scope", strings.Join(scopes, " "))
	}
	if familyID != "" {
		builder = builder.Claim(FamilyClaim, familyID)
	}
	if !t.authTime.IsZero() {
		builder = builder.Claim(AuthTimeClaim, t.authTime.Unix())
	}
	if t.apiKeyID != "" {
		builder = builder.Claim(APIKeyClaim, t.apiKeyID)
	}
	token, err := builder.Build()
	if err != nil {
		return "", fmt.Errorf("build access token: %w", err)
	}
	return s.Keys.SignAs(token, keys.AccessTokenType)
}

func (s *Service) randomString(n int) (string, error) { return secrets.Random(s.Random, n) }
