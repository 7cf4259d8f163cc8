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
	"slices"
	"strings"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/secrets"
	"github.com/chit-auth/chit/internal/sessions"
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
	// Issuer is the issuer identifier (the tokens' iss), sent as the iss
	// parameter of every authorization response (RFC 9207).
	Issuer string
	// RequirePKCE refuses requests without an S256 code challenge from
	// confidential clients registered with PKCE required (the default).
	// Public clients always need one: false lets every confidential client
	// go without.
	RequirePKCE bool
	// CodeTTL is how long an authorization code may be exchanged.
	CodeTTL time.Duration
}

// DefaultCodeTTL is the lifetime of authorization codes.
const DefaultCodeTTL = 60 * time.Second

// Service runs sign-ins and code exchanges.
type Service struct {
	cfg       Config
	store     Store
	directory *accounts.Directory
	tokens    *tokens.Service
	sessions  *sessions.Service
	now       func() time.Time
	random    io.Reader
}

// Dependencies are what the sign-in core works with. Sessions may be nil
// or disabled: every sign-in then shows the form.
type Dependencies struct {
	Store     Store
	Directory *accounts.Directory
	Tokens    *tokens.Service
	Sessions  *sessions.Service
	Now       func() time.Time
	Random    io.Reader
}

// NewService wires the sign-in core, as tokens.NewService and
// providers.NewService do: its configuration, then what it works with.
func NewService(cfg Config, deps Dependencies) *Service {
	return &Service{cfg: cfg, store: deps.Store, directory: deps.Directory, tokens: deps.Tokens, sessions: deps.Sessions, now: deps.Now, random: deps.Random}
}

// AuthorizeURL validates req and returns the sign-in page URL carrying it.
func (s *Service) AuthorizeURL(ctx context.Context, req Request) (string, error) {
	if req.ResponseType == "" {
		req.ResponseType = ResponseTypeCode
	}
	req, err := s.Validate(ctx, req)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(s.cfg.BaseURL, "/") + PagePath + "?" + req.Values().Encode(), nil
}

// PasswordSignIn is what the person typed on the form, and where from.
type PasswordSignIn struct {
	// Address is the client's network address, for throttling.
	Address  string
	Username string
	Password string
	// Replaces is the value of the browser's session cookie, if any: the new
	// sign-in's session replaces it (prompt=login, or another account).
	Replaces string
}

// SignedIn is what a sign-in on the form answers.
type SignedIn struct {
	// Target is where to send the browser: the redirect URI with a fresh
	// code (or the client's error), the state when there is one and the
	// issuer.
	Target string
	// SessionCookie, when set, is the value of the session cookie to set:
	// the sign-in started a session.
	SessionCookie string
	// Session is that session.
	Session sessions.Session
}

// SignIn authenticates a person for req and returns where to send the
// browser, starting a sign-in session when sessions are enabled.
func (s *Service) SignIn(ctx context.Context, req Request, signIn PasswordSignIn) (SignedIn, error) {
	req, err := s.Validate(ctx, req)
	if err != nil {
		return SignedIn{}, err
	}
	principal, err := s.directory.AuthenticateUser(ctx, signIn.Address, signIn.Username, signIn.Password)
	if err != nil {
		return SignedIn{}, err
	}
	scopes, refused, err := s.grantScopes(ctx, req, principal)
	if err != nil || refused != "" {
		return SignedIn{Target: refused}, err
	}
	var signedIn SignedIn
	if s.sessions.Enabled() {
		if signedIn.SessionCookie, signedIn.Session, err = s.sessions.Start(ctx, principal, []string{sessions.AMRPassword}, req.ClientID); err != nil {
			return SignedIn{}, err
		}
		if signIn.Replaces != "" {
			// Only a session this browser proves it holds is ended.
			if previous, err := s.sessions.Resume(ctx, signIn.Replaces); err == nil {
				if _, err := s.sessions.End(ctx, previous.ID); err != nil && chiterr.KindOf(err) != chiterr.NotFound {
					return SignedIn{}, fmt.Errorf("end the replaced sign-in session: %w", err)
				}
			}
		}
	}
	if signedIn.Target, err = s.issueCode(ctx, req, principal, scopes, principal.ReadAt, signedIn.Session.ID); err != nil {
		return SignedIn{}, err
	}
	return signedIn, nil
}

// SignInWithSession answers req without the form for the person of the
// browser's live session (cookie is its cookie's value), when req lets a
// session answer: not Chit's command line, no prompt of login, consent or
// select_account, and a sign-in no older than max_age. The code carries the
// session's auth_time and id, and the client is recorded on the session.
// ok is false when the form must be shown (or, for prompt=none,
// login_required answered); the scopes are decided for the client and the
// person exactly as SignIn decides them.
func (s *Service) SignInWithSession(ctx context.Context, req Request, cookie string) (target string, ok bool, err error) {
	if !s.sessions.Enabled() || cookie == "" || req.wantsForm() {
		return "", false, nil
	}
	session, principal, err := s.sessions.ResumeWithPrincipal(ctx, cookie)
	if chiterr.KindOf(err) == chiterr.Unauthenticated {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	// OpenID Connect Core §3.1.2.1: an older sign-in must be made again.
	if maxAge, asked := req.maxAge(); asked && s.now().Sub(session.AuthTime) > maxAge {
		return "", false, nil
	}
	// The scopes are decided first: a refused request signs the person in
	// to nothing, and its client must not be recorded on the session (a
	// logout would send it a logout token naming them).
	scopes, refused, err := s.grantScopes(ctx, req, principal)
	if err != nil || refused != "" {
		return refused, refused != "", err
	}
	// The session must still be live when the client is recorded on it:
	// a logout that ended it meanwhile then lists every client it had.
	if session, err = s.sessions.SignedIn(ctx, session, req.ClientID); chiterr.KindOf(err) == chiterr.Unauthenticated {
		return "", false, nil
	} else if err != nil {
		return "", false, err
	}
	target, err = s.issueCode(ctx, req, principal, scopes, session.AuthTime, session.ID)
	if err != nil {
		return "", false, err
	}
	return target, true, nil
}

// grantScopes decides what the person gets through the request's client:
// the scopes, or (refused) where to send the browser when the person may
// not have what the request asks for.
func (s *Service) grantScopes(ctx context.Context, req Request, principal accounts.Principal) (scopes []string, refused string, err error) {
	client, err := s.directory.LookupClient(ctx, req.ClientID)
	if err != nil {
		return nil, "", err
	}
	requested, _ := accounts.ParseScope(req.Scope) // checked by Validate
	scopes, err = accounts.Grantee{Principal: principal, Client: client}.GrantScopes(requested)
	if err != nil {
		// The request was valid; the person is not allowed what it asks
		// for: the client hears it as RFC 6749 §4.1.2.1 says.
		return nil, s.errorResponse(req.RedirectURI, req.State, chiterr.ReasonInvalidScope, err), nil
	}
	return scopes, "", nil
}

// issueCode stores a fresh code for the person and scopes, signed in at
// authTime (through the session sessionID, when there is one), and returns
// the authorization response that carries it.
func (s *Service) issueCode(ctx context.Context, req Request, principal accounts.Principal, scopes []string, authTime time.Time, sessionID string) (string, error) {
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
		AuthTime:      authTime,
		SessionID:     sessionID,
		ExpiresAt:     now.Add(s.cfg.CodeTTL),
	})
	if err != nil {
		return "", fmt.Errorf("store authorization code: %w", err)
	}
	return s.response(req.RedirectURI, url.Values{"code": {code}, "state": {req.State}}), nil
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
	// Binding is the key the tokens are bound to (tokens.Login.Binding).
	Binding tokens.Binding
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
	return s.IssueForSignIn(ctx, client, Redemption{Credential: "authorization code", Kind: "authorization_code", Subject: stored.Subject,
		ClientID: stored.ClientID, Scope: stored.Scope, Nonce: stored.Nonce, AuthTime: stored.AuthTime, SessionID: stored.SessionID,
		FamilyID: familyID, Audience: audience, Binding: req.Binding})
}

// Redemption is a person's sign-in on the hosted pages that a client now
// redeems: an authorization code, or an approved device authorization.
type Redemption struct {
	// Credential names what is redeemed, for the messages ("authorization
	// code", "device code"); Kind names the grant for metrics.
	Credential string
	Kind       string
	Subject    string
	ClientID   string
	Scope      string
	Nonce      string
	AuthTime   time.Time
	SessionID  string
	FamilyID   string
	Audience   string
	// Binding is the key the tokens are bound to (tokens.Login.Binding).
	Binding tokens.Binding
}

// IssueForSignIn issues what a person's sign-in through client gets: the
// one issuing path of the hosted pages' logins (access and refresh tokens,
// an ID token with openid), for codes and device authorizations alike. It
// reads the person, the session and the client again, so a sign-in whose
// user, session or client has since gone is void.
func (s *Service) IssueForSignIn(ctx context.Context, client accounts.Client, in Redemption) (tokens.Grant, error) {
	audience := in.Audience
	if in.FamilyID == "" {
		familyID, err := s.tokens.NewFamilyID()
		if err != nil {
			return tokens.Grant{}, err
		}
		in.FamilyID = familyID
	}
	// The person as they are now: a deleted user's code is void, and so is
	// one issued to an earlier user of the same name; a new role applies.
	principal, err := s.directory.LookupUser(ctx, in.Subject)
	switch {
	case errors.Is(err, storage.ErrNotFound) || (err == nil && principal.CreatedAt.After(in.AuthTime)):
		return tokens.Grant{}, chiterr.New(chiterr.Unauthenticated, "%s is invalid: its user no longer exists", in.Credential)
	case err != nil:
		return tokens.Grant{}, fmt.Errorf("read the %s's user: %w", in.Credential, err)
	}
	// A code answered through a sign-in session is void once the session
	// has ended (a logout, EndSessions): its logout tokens have gone out,
	// and the client must not start a session of its own for it now.
	if in.SessionID != "" && s.sessions.Enabled() {
		session, err := s.sessions.Get(ctx, in.SessionID)
		switch {
		case chiterr.KindOf(err) == chiterr.NotFound || (err == nil && !session.EndedAt.IsZero()):
			return tokens.Grant{}, chiterr.New(chiterr.Unauthenticated, "%s is invalid: its sign-in session has ended", in.Credential)
		case err != nil:
			return tokens.Grant{}, fmt.Errorf("read the %s's sign-in session: %w", in.Credential, err)
		}
	}
	if !client.FirstParty {
		if client, err = s.directory.LookupClient(ctx, client.ID); err != nil {
			return tokens.Grant{}, err
		}
		if client.CreatedAt.After(in.AuthTime) {
			return tokens.Grant{}, chiterr.New(chiterr.Unauthenticated, "%s was issued to another client", in.Credential)
		}
	}
	grantee := accounts.Grantee{Principal: principal, Client: client}
	if audience, err = grantee.GrantAudience(audience); err != nil {
		return tokens.Grant{}, err
	}
	scopes := grantee.StillAllowed(strings.Fields(in.Scope))
	login := tokens.Login{
		Grantee:  grantee,
		Scopes:   scopes,
		Audience: audience,
		FamilyID: in.FamilyID,
		// A refresh token whether or not offline_access was asked, as the
		// password grant and the CLI get one: relying parties such as
		// kubelogin ask for openid alone and refresh when the ID token
		// expires, instead of sending the person back to the browser.
		WithRefreshToken: true,
		Kind:             in.Kind,
		AuthTime:         in.AuthTime,
		Binding:          in.Binding,
	}
	if slices.Contains(scopes, ScopeOpenID) {
		// Every code comes from a password sign-in on the page, made then
		// or by the session it carries (sid, for logout).
		login.IDToken = &tokens.IDTokenRequest{ClientID: in.ClientID, Nonce: in.Nonce, AuthTime: in.AuthTime, Scopes: scopes,
			SessionID: in.SessionID, AMR: []string{sessions.AMRPassword}}
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
