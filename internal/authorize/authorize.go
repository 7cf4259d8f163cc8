package authorize

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/secrets"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/tokens"
)

// CLIClientID is Chit's own command-line client. It needs no registration and
// may use any loopback redirect URI.
const CLIClientID = accounts.CLIClientID

// Scopes with a meaning to the sign-in flow.
const (
	ScopeOfflineAccess = accounts.ScopeOfflineAccess
	ScopeOpenID        = accounts.ScopeOpenID
)

// PagePath is where the sign-in page lives on the HTTP port.
const PagePath = "/oauth2/authorize"

// Config is the sign-in policy.
type Config struct {
	// BaseURL is the public URL of the HTTP port (the issuer).
	BaseURL string
	// RequirePKCE refuses requests without an S256 code challenge.
	RequirePKCE bool
	// CodeTTL is how long an authorization code may be exchanged.
	CodeTTL time.Duration
}

// DefaultCodeTTL is the lifetime of authorization codes.
const DefaultCodeTTL = 60 * time.Second

// Request is an authorization request, as the page and GetAuthorizeUrl get it.
type Request struct {
	ClientID            string
	RedirectURI         string
	State               string
	Scope               string
	CodeChallenge       string
	CodeChallengeMethod string
	Nonce               string
}

// Service runs sign-ins and code exchanges.
type Service struct {
	cfg       Config
	store     Store
	directory *accounts.Directory
	tokens    *tokens.Service
	now       func() time.Time
	random    io.Reader
}

// Dependencies are what the sign-in core works with.
type Dependencies struct {
	Store     Store
	Directory *accounts.Directory
	Tokens    *tokens.Service
	Now       func() time.Time
	Random    io.Reader
}

// NewService wires the sign-in core, as tokens.NewService and
// providers.NewService do: its configuration, then what it works with.
func NewService(cfg Config, deps Dependencies) *Service {
	return &Service{cfg: cfg, store: deps.Store, directory: deps.Directory, tokens: deps.Tokens, now: deps.Now, random: deps.Random}
}

// challengePattern is base64url of a SHA-256: 43 characters, no padding.
var challengePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// verifierPattern is RFC 7636 §4.1: 43 to 128 unreserved characters.
var verifierPattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// Validate checks a request and returns it with defaults filled in. Its
// errors are shown to the person, never sent to the redirect URI, because
// the redirect URI itself may be what is wrong.
func (s *Service) Validate(ctx context.Context, req Request) (Request, error) {
	if req.ClientID == "" {
		req.ClientID = CLIClientID
	}
	if req.ClientID == accounts.APIClientID {
		return Request{}, chiterr.New(chiterr.InvalidArgument, "client %q does not sign people in through this page", req.ClientID)
	}
	client, err := s.directory.LookupClient(ctx, req.ClientID)
	if err != nil {
		return Request{}, err
	}
	if err := checkRedirect(client, req.RedirectURI); err != nil {
		return Request{}, err
	}
	if req.State == "" {
		return Request{}, chiterr.New(chiterr.InvalidArgument, "state is required")
	}
	if !utf8.ValidString(req.State) || !utf8.ValidString(req.Nonce) {
		return Request{}, chiterr.New(chiterr.InvalidArgument, "state and nonce must be UTF-8 text")
	}
	if utf8.RuneCountInString(req.State) > MaxStateLength || utf8.RuneCountInString(req.Nonce) > MaxStateLength {
		return Request{}, chiterr.New(chiterr.InvalidArgument, "state and nonce must be at most %d characters", MaxStateLength)
	}
	requested, err := accounts.ParseScope(req.Scope)
	if err != nil {
		return Request{}, err
	}
	// What the person may obtain is known after sign-in (SignIn); what the
	// client may ask for is known now.
	if !client.FirstParty {
		for _, scope := range requested {
			if !client.Allows(scope) {
				return Request{}, chiterr.New(chiterr.InvalidArgument, "scope %q is not allowed for client %q", scope, client.ID).WithReason(chiterr.ReasonInvalidScope)
			}
		}
	}
	switch {
	case req.CodeChallengeMethod == "plain":
		return Request{}, chiterr.New(chiterr.InvalidArgument, "code_challenge_method plain is not allowed; use S256")
	case req.CodeChallenge == "" && req.CodeChallengeMethod != "":
		return Request{}, chiterr.New(chiterr.InvalidArgument, "code_challenge_method without code_challenge")
	case req.CodeChallenge == "" && (s.cfg.RequirePKCE || (!client.Confidential && !client.FirstParty)):
		return Request{}, chiterr.New(chiterr.InvalidArgument, "code_challenge is required (PKCE with S256)")
	case req.CodeChallenge != "":
		if req.CodeChallengeMethod == "" {
			req.CodeChallengeMethod = "S256"
		}
		if req.CodeChallengeMethod != "S256" {
			return Request{}, chiterr.New(chiterr.InvalidArgument, "code_challenge_method %s is not supported; use S256", chiterr.Quote(req.CodeChallengeMethod))
		}
		if !challengePattern.MatchString(req.CodeChallenge) {
			return Request{}, chiterr.New(chiterr.InvalidArgument, "code_challenge must be the base64url SHA-256 of the verifier (43 characters)")
		}
	}
	return req, nil
}

// hostPattern is what a redirect URI's host may be: a DNS name or an IPv4
// address, or an IPv6 address (without its brackets). Nothing else, so the
// origin can go into a header (the sign-in page's Content-Security-Policy)
// as it is.
var hostPattern = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|[0-9A-Fa-f:.]+)$`)

// Origin returns the scheme, host and port of a redirect URI, or "" when
// its host is not a plain name or address.
func Origin(redirectURI string) string {
	u, err := url.Parse(redirectURI)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || !hostPattern.MatchString(u.Hostname()) {
		return ""
	}
	if strings.HasSuffix(u.Host, ":") || !validPort(u.Port()) {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// validPort reports whether a URI's port is absent or one a listener can
// have, in plain decimal: 1 to 65535, without sign or leading zero. Redirect
// URIs are compared as strings, so each must have one spelling.
func validPort(port string) bool {
	if port == "" {
		return true
	}
	number, err := strconv.Atoi(port)
	return err == nil && number >= 1 && number <= 65535 && strconv.Itoa(number) == port
}

// hasFragment reports whether uri has a fragment component, an empty one
// ("...#") included, which url.URL does not record: RFC 6749 §3.1.2 forbids
// it in a redirection endpoint's URI.
func hasFragment(uri string) bool { return strings.Contains(uri, "#") }

// MaxStateLength bounds state and nonce, in characters.
const MaxStateLength = 512

// MaxRedirectURILength bounds a redirect URI, registered or asked for.
const MaxRedirectURILength = 2048

// checkRedirect applies RFC 8252 for the CLI (loopback IP literals, any port)
// and exact matching for registered clients.
func checkRedirect(client accounts.Client, redirectURI string) error {
	if redirectURI == "" {
		return chiterr.New(chiterr.InvalidArgument, "redirect_uri is required")
	}
	if len(redirectURI) > MaxRedirectURILength {
		return chiterr.New(chiterr.InvalidArgument, "redirect_uri is longer than %d characters", MaxRedirectURILength)
	}
	if client.ID == CLIClientID {
		if !IsLoopbackRedirect(redirectURI) {
			return chiterr.New(chiterr.InvalidArgument,
				"redirect_uri %q is not allowed: the CLI must redirect to http://127.0.0.1:PORT/... or http://[::1]:PORT/... (PORT from 1 to 65535), without a fragment", redirectURI)
		}
		return nil
	}
	// The rules of registration hold for what is asked for too: a URI
	// registered before a rule was added is not used once it breaks it.
	if !validRegisteredRedirect(redirectURI) {
		return chiterr.New(chiterr.InvalidArgument, "redirect_uri %s is not allowed: "+redirectRule, chiterr.Quote(redirectURI))
	}
	if !slices.Contains(client.RedirectURIs, redirectURI) {
		return chiterr.New(chiterr.InvalidArgument, "redirect_uri %q is not registered for client %q", redirectURI, client.ID)
	}
	return nil
}

// IsLoopbackRedirect reports whether uri is an http URI on a loopback IP
// literal, with a valid port or none, without userinfo or fragment (RFC
// 8252 §7.3).
func IsLoopbackRedirect(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "http" || u.User != nil || hasFragment(uri) || u.Opaque != "" || !validPort(u.Port()) {
		return false
	}
	// u.Host must be exactly the literal with an optional port: this refuses
	// tricks such as "127.0.0.1@evil.example" or "127.0.0.1.evil.example".
	host := u.Hostname()
	if host != "127.0.0.1" && host != "::1" {
		return false
	}
	port := u.Port()
	want := host
	if host == "::1" {
		want = "[::1]"
	}
	if port != "" {
		want += ":" + port
	}
	return u.Host == want
}

// ValidateRedirectURIs checks the redirect URIs of a new client.
func ValidateRedirectURIs(redirectURIs []string) error {
	if len(redirectURIs) == 0 {
		return chiterr.New(chiterr.InvalidArgument, "a client needs at least one redirect URI")
	}
	if len(redirectURIs) > 16 {
		return chiterr.New(chiterr.InvalidArgument, "a client has at most 16 redirect URIs")
	}
	for _, uri := range redirectURIs {
		if len(uri) > MaxRedirectURILength {
			return chiterr.New(chiterr.InvalidArgument, "redirect URI is longer than %d characters", MaxRedirectURILength)
		}
		if !validRegisteredRedirect(uri) {
			return chiterr.New(chiterr.InvalidArgument, "redirect URI %s is not allowed: "+redirectRule, chiterr.Quote(uri))
		}
	}
	return nil
}

// redirectRule is what validRegisteredRedirect checks, for people.
const redirectRule = "it must be an absolute https URI (or a loopback http URI) with a host name or address and a port from 1 to 65535 if any, without userinfo or fragment"

// validRegisteredRedirect reports whether uri may be a registered client's
// redirect URI.
func validRegisteredRedirect(uri string) bool {
	u, err := url.Parse(uri)
	return err == nil && u.IsAbs() && Origin(uri) != "" && u.User == nil && !hasFragment(uri) &&
		(u.Scheme == "https" || IsLoopbackRedirect(uri))
}

// AuthorizeURL validates req and returns the sign-in page URL carrying it.
func (s *Service) AuthorizeURL(ctx context.Context, req Request) (string, error) {
	req, err := s.Validate(ctx, req)
	if err != nil {
		return "", err
	}
	query := url.Values{}
	query.Set("response_type", "code")
	query.Set("client_id", req.ClientID)
	query.Set("redirect_uri", req.RedirectURI)
	query.Set("state", req.State)
	for name, value := range map[string]string{"scope": req.Scope, "code_challenge": req.CodeChallenge,
		"code_challenge_method": req.CodeChallengeMethod, "nonce": req.Nonce} {
		if value != "" {
			query.Set(name, value)
		}
	}
	return strings.TrimSuffix(s.cfg.BaseURL, "/") + PagePath + "?" + query.Encode(), nil
}

// SignIn authenticates a person for req, signing in from address (for
// throttling), and returns where to send the browser: the redirect URI with
// a fresh code and the state.
func (s *Service) SignIn(ctx context.Context, req Request, address, username, password string) (string, error) {
	req, err := s.Validate(ctx, req)
	if err != nil {
		return "", err
	}
	principal, err := s.directory.AuthenticateUser(ctx, address, username, password)
	if err != nil {
		return "", err
	}
	client, err := s.directory.LookupClient(ctx, req.ClientID)
	if err != nil {
		return "", err
	}
	requested, _ := accounts.ParseScope(req.Scope) // checked by Validate
	scopes, err := accounts.Grantee{Principal: principal, Client: client}.GrantScopes(requested)
	if err != nil {
		// The request was valid; the person is not allowed what it asks
		// for: the client hears it as RFC 6749 §4.1.2.1 says.
		return withQuery(req.RedirectURI, url.Values{"error": {chiterr.ReasonInvalidScope}, "error_description": {chiterr.PublicMessage(err)}, "state": {req.State}}), nil
	}
	code, err := secrets.Random(s.random, 32)
	if err != nil {
		return "", err
	}
	now := s.now()
	err = s.store.CreateAuthorizationCode(ctx, storage.AuthorizationCode{
		Hash:          secrets.Digest(code),
		ClientID:      req.ClientID,
		RedirectURI:   req.RedirectURI,
		CodeChallenge: req.CodeChallenge,
		Subject:       principal.Subject,
		Role:          string(principal.Role),
		Scope:         strings.Join(scopes, " "),
		Nonce:         req.Nonce,
		AuthTime:      principal.ReadAt,
		ExpiresAt:     now.Add(s.cfg.CodeTTL),
	})
	if err != nil {
		return "", fmt.Errorf("store authorization code: %w", err)
	}
	return withQuery(req.RedirectURI, url.Values{"code": {code}, "state": {req.State}}), nil
}

// ErrorRedirect returns where to send the browser for err, found by
// Validate in req, when the client should hear it by redirect (RFC 6749
// §4.1.2.1): a scope the client may not ask for, found once the client,
// its redirect URI and the state were validated. Other errors are shown
// on the page, because the redirect URI itself may be what is wrong.
func (s *Service) ErrorRedirect(ctx context.Context, req Request, err error) (string, bool) {
	if chiterr.ReasonOf(err) != chiterr.ReasonInvalidScope || req.State == "" {
		return "", false
	}
	if req.ClientID == "" {
		req.ClientID = CLIClientID
	}
	client, lookupErr := s.directory.LookupClient(ctx, req.ClientID)
	if lookupErr != nil || checkRedirect(client, req.RedirectURI) != nil {
		return "", false
	}
	return withQuery(req.RedirectURI, url.Values{"error": {chiterr.ReasonInvalidScope}, "error_description": {chiterr.PublicMessage(err)}, "state": {req.State}}), true
}

// LoginRequired returns where to send the browser for a validated request
// that asked not to be shown the page (prompt=none): Chit keeps no sign-in
// sessions, so a person must always sign in.
func (s *Service) LoginRequired(req Request) string {
	return withQuery(req.RedirectURI, url.Values{"error": {"login_required"}, "state": {req.State}})
}

// Deny returns where to send the browser when the person cancels.
func (s *Service) Deny(ctx context.Context, req Request) (string, error) {
	req, err := s.Validate(ctx, req)
	if err != nil {
		return "", err
	}
	return withQuery(req.RedirectURI, url.Values{"error": {"access_denied"}, "state": {req.State}}), nil
}

func withQuery(uri string, extra url.Values) string {
	u, _ := url.Parse(uri) // validated before
	query := u.Query()
	for name, values := range extra {
		query[name] = values
	}
	u.RawQuery = query.Encode()
	return u.String()
}

var errCodeInvalid = chiterr.New(chiterr.Unauthenticated, "authorization code is invalid")

// CodeRequest is the redemption of an authorization code (RFC 6749 §4.1.3).
type CodeRequest struct {
	// Client is the client redeeming the code, already authenticated: the
	// code is bound to the client it was issued to.
	Client      accounts.Client
	Code        string
	RedirectURI string
	// CodeVerifier is the PKCE verifier (RFC 7636), for a code issued with
	// a challenge.
	CodeVerifier string
	// Audience, when set, asks for tokens for another audience the client
	// is allowed (RFC 8707).
	Audience string
}

// Exchange redeems a code for tokens on behalf of req.Client. A code works
// once: a second use fails and revokes the refresh tokens the first one
// started.
func (s *Service) Exchange(ctx context.Context, req CodeRequest) (tokens.Grant, error) {
	client, code, redirectURI, verifier, audience := req.Client, req.Code, req.RedirectURI, req.CodeVerifier, req.Audience
	if client.Service {
		return tokens.Grant{}, chiterr.New(chiterr.PermissionDenied, "a service account signs in with client credentials only").WithReason(chiterr.ReasonUnauthorizedClient)
	}
	switch {
	case code == "" || redirectURI == "":
		return tokens.Grant{}, chiterr.New(chiterr.InvalidArgument, "code and redirect_uri are required")
	case len(code) > tokens.MaxTokenLength:
		return tokens.Grant{}, chiterr.New(chiterr.InvalidArgument, "code is longer than %d bytes", tokens.MaxTokenLength)
	case len(redirectURI) > MaxRedirectURILength:
		return tokens.Grant{}, chiterr.New(chiterr.InvalidArgument, "redirect_uri is longer than %d characters", MaxRedirectURILength)
	case verifier != "" && !verifierPattern.MatchString(verifier):
		return tokens.Grant{}, chiterr.New(chiterr.InvalidArgument, "code_verifier must be 43 to 128 letters, digits, '.', '_', '~' or '-' (RFC 7636)")
	}
	familyID, err := s.tokens.NewFamilyID()
	if err != nil {
		return tokens.Grant{}, err
	}
	// An audience the client may not ask for is refused before the code is
	// touched, so a retry with a right one still works.
	if client.ID != "" {
		if _, err := (accounts.Grantee{Principal: accounts.Principal{Role: accounts.RoleUser}, Client: client}).GrantAudience(audience); err != nil {
			return tokens.Grant{}, err
		}
	}
	now := s.now()
	// What the code is bound to is checked before it is used up: a caller
	// without the client, redirect URI or PKCE verifier cannot burn it.
	stored, err := s.store.RedeemAuthorizationCode(ctx, secrets.Digest(code), now, familyID, func(stored storage.AuthorizationCode) error {
		switch {
		case !now.Before(stored.ExpiresAt):
			return chiterr.New(chiterr.Unauthenticated, "authorization code has expired")
		case stored.ClientID != client.ID:
			return chiterr.New(chiterr.Unauthenticated, "authorization code was issued to another client")
		case stored.RedirectURI != redirectURI:
			return chiterr.New(chiterr.Unauthenticated, "authorization code was issued for another redirect_uri")
		}
		return checkVerifier(stored.CodeChallenge, verifier)
	})
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return tokens.Grant{}, errCodeInvalid
	case errors.Is(err, storage.ErrConflict):
		// RFC 6749 §4.1.2: a replayed code may mean it was stolen; revoke
		// what the first exchange issued.
		if revokeErr := s.tokens.RevokeFamily(ctx, tokens.Family{ID: stored.FamilyID, Subject: stored.Subject, ClientID: stored.ClientID}, "authorization code replayed"); revokeErr != nil {
			return tokens.Grant{}, fmt.Errorf("revoke tokens of a replayed code: %w", revokeErr)
		}
		return tokens.Grant{}, chiterr.New(chiterr.Unauthenticated, "authorization code has already been used; the tokens issued for it are revoked")
	case chiterr.KindOf(err) == chiterr.Unauthenticated:
		return tokens.Grant{}, err
	case err != nil:
		return tokens.Grant{}, fmt.Errorf("redeem authorization code: %w", err)
	}
	// The person as they are now: a deleted user's code is void, and so is
	// one issued to an earlier user of the same name; a new role applies.
	principal, err := s.directory.LookupUser(ctx, stored.Subject)
	switch {
	case errors.Is(err, storage.ErrNotFound) || (err == nil && principal.CreatedAt.After(stored.AuthTime)):
		return tokens.Grant{}, chiterr.New(chiterr.Unauthenticated, "authorization code is invalid: its user no longer exists")
	case err != nil:
		return tokens.Grant{}, fmt.Errorf("read the code's user: %w", err)
	}
	if !client.FirstParty {
		if client, err = s.directory.LookupClient(ctx, client.ID); err != nil {
			return tokens.Grant{}, err
		}
		if client.CreatedAt.After(stored.AuthTime) {
			return tokens.Grant{}, chiterr.New(chiterr.Unauthenticated, "authorization code was issued to another client")
		}
	}
	grantee := accounts.Grantee{Principal: principal, Client: client}
	if audience, err = grantee.GrantAudience(audience); err != nil {
		return tokens.Grant{}, err
	}
	scopes := grantee.StillAllowed(strings.Fields(stored.Scope))
	login := tokens.Login{
		Grantee:          grantee,
		Scopes:           scopes,
		Audience:         audience,
		FamilyID:         familyID,
		WithRefreshToken: slices.Contains(scopes, ScopeOfflineAccess),
		Kind:             "authorization_code",
		AuthTime:         stored.AuthTime,
	}
	if slices.Contains(scopes, ScopeOpenID) {
		login.IDToken = &tokens.IDTokenRequest{ClientID: stored.ClientID, Nonce: stored.Nonce, AuthTime: stored.AuthTime, Scopes: scopes}
	}
	return s.tokens.IssueForLogin(ctx, login)
}

func checkVerifier(challenge, verifier string) error {
	switch {
	case challenge == "" && verifier == "":
		return nil
	case challenge == "":
		return chiterr.New(chiterr.Unauthenticated, "code_verifier sent for a code issued without code_challenge")
	case verifier == "":
		return chiterr.New(chiterr.Unauthenticated, "code_verifier is required for this code")
	case !verifierPattern.MatchString(verifier):
		return chiterr.New(chiterr.Unauthenticated, "code_verifier is malformed")
	}
	if subtle.ConstantTimeCompare([]byte(ChallengeFor(verifier)), []byte(challenge)) != 1 {
		return chiterr.New(chiterr.Unauthenticated, "code_verifier does not match the code_challenge")
	}
	return nil
}

// ChallengeFor returns the S256 challenge of a verifier, for clients.
func ChallengeFor(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
