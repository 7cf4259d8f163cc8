package tokens

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/storage"
)

// PasswordRequest is a person's sign-in with their password.
type PasswordRequest struct {
	// Client is the client the person signs in through, already
	// authenticated.
	Client accounts.Client
	// Address is the caller's network address: the sign-in throttle counts
	// failures by it.
	Address  string
	Username string
	Password string
	// Scope and Audience are what is asked for ("" for the defaults).
	Scope    string
	Audience string
	// Binding is the key the tokens are bound to (a DPoP proof's, a
	// client certificate's); zero issues bearer tokens.
	Binding Binding
}

// IssueForPassword signs a person in through req.Client: an access token
// and a refresh token that starts a new family, with the scopes and
// audience asked for within what the person and the client are allowed.
func (s *Service) IssueForPassword(ctx context.Context, req PasswordRequest) (Grant, error) {
	client, audience := req.Client, req.Audience
	if client.Service {
		return Grant{}, errServiceNotPasswordClient
	}
	requested, err := accounts.ParseScope(req.Scope)
	if err != nil {
		return Grant{}, err
	}
	principal, err := s.Directory.AuthenticateUser(ctx, req.Address, req.Username, req.Password)
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
	login := Login{Grantee: grantee, Scopes: scopes, Audience: audience, FamilyID: familyID, WithRefreshToken: true, Kind: "password", Binding: req.Binding}
	if slices.Contains(scopes, accounts.ScopeOpenID) {
		// A sign-in granted openid answers an ID token (OIDC Core §3.1.3.3),
		// whichever grant it came through.
		login.IDToken = &IDTokenRequest{ClientID: client.ID}
	}
	return s.IssueForLogin(ctx, login)
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
	// Binding is the key the access token is bound to. A public client's
	// refresh token is bound to a DPoP key too (RFC 9449 §5): a
	// confidential client proves who it is at each refresh, a public one
	// only by holding the key.
	Binding Binding
}

// IDTokenRequest is what an ID token states besides the subject.
type IDTokenRequest struct {
	ClientID string
	Nonce    string
	// AuthTime is when the person signed in; zero leaves auth_time out.
	// IssueForLogin sets it to the login's.
	AuthTime time.Time
	// AccessToken is the access token issued beside the ID token, whose
	// at_hash it carries (IssueForLogin sets it).
	AccessToken string
	// Scopes are the login's granted scopes: they say which of the
	// person's profile claims the token states (ProfileClaims).
	Scopes []string
	// SigningAlgorithm is the client's id_token_signed_response_alg; empty
	// is the server's algorithm. IssueForLogin sets it to the client's.
	SigningAlgorithm string
	// SessionID is the sign-in session the login came through, stated as
	// sid (OpenID Connect Front- and Back-Channel Logout); "" leaves it
	// out.
	SessionID string
	// AMR are the authentication methods of the sign-in (RFC 8176), stated
	// as amr; none leaves it out.
	AMR []string
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
		familyID: login.FamilyID, issuedAt: now, authTime: authTime, binding: login.Binding})
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
			// Only a public client's: a confidential client may refresh
			// with another key, or none, having proven who it is.
			DPoPKeyThumbprint: refreshKeyBinding(login.Client, login.Binding),
		})
		if err != nil {
			return Grant{}, err
		}
		if err := s.Store.CreateRefreshToken(ctx, record); err != nil {
			return Grant{}, fmt.Errorf("store refresh token: %w", err)
		}
	}
	grant := s.grant(access, refresh, login.Scopes, login.Binding)
	s.Events.TokenIssued(login.Kind)
	if login.IDToken != nil {
		idToken := *login.IDToken
		idToken.AccessToken = access
		if idToken.SigningAlgorithm == "" {
			idToken.SigningAlgorithm = login.Client.IDTokenSigningAlgorithm
		}
		if idToken.AuthTime.IsZero() {
			idToken.AuthTime = authTime
		}
		if idToken.Scopes == nil {
			// The login's scopes decide the profile claims, whichever
			// grant signed the person in.
			idToken.Scopes = login.Scopes
		}
		if grant.IDToken, err = s.signIDToken(login.Principal, idToken, now); err != nil {
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
		// azp: the client the token was issued to (OIDC Core §2).
		Claim("azp", req.ClientID)
	if !req.AuthTime.IsZero() {
		builder = builder.Claim("auth_time", req.AuthTime.Unix())
	}
	if req.Nonce != "" {
		builder = builder.Claim("nonce", req.Nonce)
	}
	if req.SessionID != "" {
		builder = builder.Claim(SessionIDClaim, req.SessionID)
	}
	if len(req.AMR) > 0 {
		builder = builder.Claim(AMRClaim, req.AMR)
	}
	for name, value := range ProfileClaims(principal, req.Scopes) {
		builder = builder.Claim(name, value)
	}
	token, err := builder.Build()
	if err != nil {
		return "", fmt.Errorf("build ID token: %w", err)
	}
	return s.signWithAccessTokenHash(token, jwa.SignatureAlgorithm(req.SigningAlgorithm), req.AccessToken)
}

// ClientRequest is a service account's sign-in with client credentials.
type ClientRequest struct {
	// Service is the service account, authenticated with its secret
	// (accounts.Directory.AuthenticateService) or by a federated assertion
	// (internal/federation).
	Service accounts.Principal
	// Scope and Audience are what is asked for ("" for the defaults).
	Scope    string
	Audience string
	// NotAfter, when set, caps the access token's expiry: a token issued
	// for a federated assertion never outlives the assertion.
	NotAfter time.Time
	// Grant names the grant in the metrics; "" is client_credentials.
	Grant string
	// Federated says the service proved who it is with a federated
	// assertion, not its secret: the token carries no auth_time, so it
	// cannot make an API key, a long-lived secret that would outlive the
	// platform's short-lived token, its rule and the workload.
	Federated bool
	// Binding is the key the token is bound to; zero issues a bearer token.
	Binding Binding
}

// IssueForClient signs a service account in. It gets no refresh token: it
// holds its secret and simply asks again (RFC 6749 §4.4.3).
func (s *Service) IssueForClient(ctx context.Context, req ClientRequest) (Grant, error) {
	requested, err := accounts.ParseScope(req.Scope)
	if err != nil {
		return Grant{}, err
	}
	principal, audience := req.Service, req.Audience
	if principal.Role != accounts.RoleService {
		return Grant{}, fmt.Errorf("client credentials are a service account's, not %s %q's", principal.Role, principal.Subject)
	}
	grantee := accounts.Grantee{Principal: principal, Client: accounts.Client{ID: principal.Name, Service: true, Confidential: true, Grants: principal.Grants,
		RequireDPoP: principal.RequireDPoP}}
	scopes, err := grantee.GrantScopes(requested)
	if err != nil {
		return Grant{}, err
	}
	if audience, err = grantee.GrantAudience(audience); err != nil {
		return Grant{}, err
	}
	issuedAt := s.issuedAt(grantee)
	expiresAt := issuedAt.Add(s.cfg.AccessTokenTTL)
	if !req.NotAfter.IsZero() && req.NotAfter.Before(expiresAt) {
		expiresAt = req.NotAfter
	}
	if !expiresAt.After(issuedAt) {
		return Grant{}, chiterr.New(chiterr.Unauthenticated, "the credential expires before a token could be used")
	}
	// Client credentials prove who the service is with every request.
	authTime := issuedAt
	if req.Federated {
		authTime = time.Time{}
	}
	access, err := s.signAccess(accessToken{grantee: grantee, scopes: scopes, audience: audience, issuedAt: issuedAt, authTime: authTime,
		expiresAt: expiresAt, binding: req.Binding})
	if err != nil {
		return Grant{}, err
	}
	grantName := req.Grant
	if grantName == "" {
		grantName = "client_credentials"
	}
	s.Events.TokenIssued(grantName)
	issued := s.grant(access, "", scopes, req.Binding)
	issued.ExpiresIn = expiresAt.Sub(issuedAt)
	return issued, nil
}

func (s *Service) grant(access, refresh string, scopes []string, binding Binding) Grant {
	return Grant{AccessToken: access, RefreshToken: refresh, ExpiresIn: s.cfg.AccessTokenTTL, Scope: strings.Join(scopes, " "), TokenType: binding.TokenType()}
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
	// expiresAt, when set, is the token's exp (a token exchange's, capped
	// at the subject token's); zero is issuedAt plus AccessTokenTTL.
	expiresAt time.Time
	// actor is the act claim of a token issued by token exchange.
	actor *Actor
	// subjectClient is SubjectClientClaim, of a token issued by token
	// exchange.
	subjectClient string
	// binding is the key the holder must prove it holds (cnf).
	binding Binding
}

// SessionIDClaim names an ID token's sign-in session (OpenID Connect
// Front-Channel Logout §3, Back-Channel Logout §2.4); AMRClaim its
// authentication methods (OpenID Connect Core §2, RFC 8176).
const (
	SessionIDClaim = "sid"
	AMRClaim       = "amr"
)

// AuthTimeClaim is when the subject proved who they are (RFC 9068 §2.2.1),
// in seconds. Only tokens issued for a sign-in carry it.
const AuthTimeClaim = "auth_time"

// APIKeyClaim names the API key an access token was exchanged for.
const APIKeyClaim = "api_key_id"

func (t accessToken) expiry(ttl time.Duration) time.Time {
	if !t.expiresAt.IsZero() {
		return t.expiresAt
	}
	return t.issuedAt.Add(ttl)
}

// signAccess signs the access token t describes.
func (s *Service) signAccess(t accessToken) (string, error) {
	grantee, scopes, audience, familyID, now := t.grantee, t.scopes, t.audience, t.familyID, t.issuedAt
	// Every grant checks this before it runs (grants.Issue, federation);
	// here it holds whichever path signs.
	if (grantee.Client.RequireDPoP || grantee.Principal.RequireDPoP) && t.binding.KeyThumbprint == "" {
		return "", ErrDPoPRequired
	}
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
		Expiration(t.expiry(s.cfg.AccessTokenTTL)).
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
	if t.actor != nil {
		builder = builder.Claim(ActorClaim, t.actor.claim())
	}
	if t.subjectClient != "" {
		builder = builder.Claim(SubjectClientClaim, t.subjectClient)
	}
	if cnf := t.binding.claim(); cnf != nil {
		builder = builder.Claim(ConfirmationClaim, cnf)
	}
	token, err := builder.Build()
	if err != nil {
		return "", fmt.Errorf("build access token: %w", err)
	}
	return s.Keys.SignAs(token, keys.AccessTokenType)
}
