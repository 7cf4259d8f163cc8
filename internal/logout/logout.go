package logout

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/storage"
)

// Session is a browser's sign-in session as logout needs it: who it is of
// and the clients the person signed in to through it.
type Session struct {
	ID, Subject string
	ClientIDs   []string
}

// Sessions are the browser sign-in sessions.
type Sessions interface {
	// Resume returns the live session a cookie value names;
	// chiterr.Unauthenticated when none.
	Resume(ctx context.Context, cookie string) (Session, error)
	// End ends session id and returns it as it was.
	End(ctx context.Context, id string) (Session, error)
}

// NoSessions is Sessions for a server without sign-in sessions: no cookie names a
// live session, so a logout ends nothing and only sends the browser on.
type NoSessions struct{}

func (NoSessions) Resume(context.Context, string) (Session, error) {
	return Session{}, chiterr.New(chiterr.Unauthenticated, "no sign-in session")
}

func (NoSessions) End(context.Context, string) (Session, error) {
	return Session{}, chiterr.New(chiterr.NotFound, "no sign-in session")
}

// Clients is what logout reads of the registered clients.
type Clients interface {
	LookupClient(ctx context.Context, id string) (accounts.Client, error)
	ClientLogout(ctx context.Context, id string) (storage.ClientLogout, error)
}

// Logins ends the person's logins (refresh token families) through one
// client; tokens.Service has it.
type Logins interface {
	RevokeClientLogins(ctx context.Context, subject, clientID, reason string) (int, error)
}

// Config is the logout policy.
type Config struct {
	// Issuer is Chit's issuer: the iss an id_token_hint must have, and the
	// iss of logout tokens.
	Issuer string
	// LogoutTokenTTL is how long a logout token is valid (its exp); the
	// receiver should answer at once, so it is short.
	LogoutTokenTTL time.Duration
	// DeliveryTimeout bounds one back-channel delivery: connecting, sending
	// and reading the answer.
	DeliveryTimeout time.Duration
	// DeliveryWait is how long a logout waits for its back-channel
	// deliveries before answering the browser; the deliveries still under
	// way go on in the background, within DeliveryTimeout.
	DeliveryWait time.Duration
}

// Defaults.
const (
	DefaultLogoutTokenTTL  = 2 * time.Minute
	DefaultDeliveryTimeout = 5 * time.Second
	DefaultDeliveryWait    = 2 * time.Second
)

// Dependencies are the live collaborators.
type Dependencies struct {
	// Keys verify id_token_hints and sign logout tokens.
	Keys     *keys.Set
	Sessions Sessions
	Clients  Clients
	Logins   Logins
	// Deliverer POSTs logout tokens to the clients' back-channel logout
	// URIs (backchannel.Client); nil sends none.
	Deliverer Deliverer
	Now       func() time.Time
	Random    io.Reader
	Logger    *slog.Logger
}

// Deliverer sends a logout token to a back-channel logout URI, within
// ctx's deadline (OpenID Connect Back-Channel Logout 1.0 §2.5).
type Deliverer interface {
	Deliver(ctx context.Context, uri, logoutToken string) error
}

// Service carries out logouts.
type Service struct {
	cfg Config
	Dependencies
	// deliveries are the back-channel deliveries under way.
	deliveries sync.WaitGroup
}

// NewService wires the service; zero durations take the defaults.
func NewService(cfg Config, deps Dependencies) *Service {
	if cfg.LogoutTokenTTL <= 0 {
		cfg.LogoutTokenTTL = DefaultLogoutTokenTTL
	}
	if cfg.DeliveryTimeout <= 0 {
		cfg.DeliveryTimeout = DefaultDeliveryTimeout
	}
	if cfg.DeliveryWait <= 0 {
		cfg.DeliveryWait = DefaultDeliveryWait
	}
	if deps.Sessions == nil {
		deps.Sessions = NoSessions{}
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, Dependencies: deps}
}

// Request is a logout request (RP-Initiated Logout 1.0 §2), with the
// browser's session cookie.
type Request struct {
	IDTokenHint           string
	ClientID              string
	PostLogoutRedirectURI string
	State                 string
	// LogoutHint is the RP's hint of who is logging out; Chit ends the
	// browser's own session only, so it is not needed (§2 makes it
	// optional to honour).
	LogoutHint string
	// UILocales is accepted and ignored: the page has one language.
	UILocales     string
	SessionCookie string
	// Confirmed says the person confirmed the logout on Chit's own page (a
	// form with the sign-in page's CSRF protection).
	Confirmed bool
}

// Outcome is what to do with the browser.
type Outcome struct {
	// RedirectURI is where to send the browser: the registered
	// post_logout_redirect_uri with state; "" for Chit's "you are signed
	// out" page.
	RedirectURI string
	// NeedsConfirmation says nothing was ended: the person must confirm on
	// Chit's page first (the request had no id_token_hint, or one that is
	// not of the browser's session). Confirm carries the request's checked
	// parameters for the form.
	NeedsConfirmation bool
	Confirm           url.Values
	// Ended says a session was ended (and the cookie should be cleared).
	Ended bool
	// ClearCookie says the browser's session cookie names no live session
	// now: it should be cleared.
	ClearCookie bool
	// ClientID is the client the logout is for, if known.
	ClientID string
}

// Logout carries out req. A request that cannot be trusted with a
// redirect (a bad id_token_hint, a client_id that contradicts it, a
// post_logout_redirect_uri that is not registered for the client or given
// without a client) is refused with an InvalidArgument error, to be shown
// on a page: it is never redirected.
//
// The session ended is the browser's own (its cookie's), never another. An
// id_token_hint that names a session (sid) or a person (sub) other than
// the cookie's ends nothing by itself: the person is asked to confirm, as
// without a hint (§2: the OP should confirm when the hint does not tell who
// is logging out).
func (s *Service) Logout(ctx context.Context, req Request) (Outcome, error) {
	var hint idTokenHint
	if req.IDTokenHint != "" {
		var err error
		if hint, err = s.verifyHint(ctx, req.IDTokenHint); err != nil {
			return Outcome{}, err
		}
	}
	clientID := hint.clientID
	if req.ClientID != "" {
		if clientID != "" && req.ClientID != clientID {
			return Outcome{}, chiterr.New(chiterr.InvalidArgument, "client_id %s is not the client the id_token_hint was issued to", chiterr.Quote(req.ClientID))
		}
		clientID = req.ClientID
	}
	outcome := Outcome{ClientID: clientID}
	if req.PostLogoutRedirectURI != "" {
		target, err := s.postLogoutRedirect(ctx, clientID, req.PostLogoutRedirectURI, req.State)
		if err != nil {
			return Outcome{}, err
		}
		outcome.RedirectURI = target
	}
	if req.SessionCookie == "" {
		return outcome, nil
	}
	session, err := s.Sessions.Resume(ctx, req.SessionCookie)
	if chiterr.KindOf(err) == chiterr.Unauthenticated {
		// Already signed out (or the cookie was tampered with): nothing to
		// end, and the cookie names nothing.
		outcome.ClearCookie = true
		return outcome, nil
	}
	if err != nil {
		return Outcome{}, fmt.Errorf("resume session: %w", err)
	}
	hintIsOfSession := req.IDTokenHint != "" && hint.subject == session.Subject && (hint.sessionID == "" || hint.sessionID == session.ID)
	if !hintIsOfSession && !req.Confirmed {
		outcome.NeedsConfirmation = true
		outcome.Confirm = confirmValues(req, clientID)
		return outcome, nil
	}
	if err := s.end(ctx, session.ID); err != nil {
		return Outcome{}, err
	}
	outcome.Ended, outcome.ClearCookie = true, true
	return outcome, nil
}

// confirmValues are the parameters the confirmation form carries, checked
// again when it is submitted.
func confirmValues(req Request, clientID string) url.Values {
	values := url.Values{}
	for name, value := range map[string]string{
		"id_token_hint": req.IDTokenHint, "client_id": clientID, "post_logout_redirect_uri": req.PostLogoutRedirectURI,
		"state": req.State, "logout_hint": req.LogoutHint,
	} {
		if value != "" {
			values.Set(name, value)
		}
	}
	return values
}

// postLogoutRedirect is uri with state, when uri is registered for
// clientID exactly (§3: simple string comparison; unlike sign-in redirect
// URIs, a loopback one matches its own port only).
func (s *Service) postLogoutRedirect(ctx context.Context, clientID, uri, state string) (string, error) {
	if clientID == "" {
		return "", chiterr.New(chiterr.InvalidArgument, "post_logout_redirect_uri needs id_token_hint or client_id: it is checked against the client's registered URIs")
	}
	client, err := s.Clients.LookupClient(ctx, clientID)
	if err != nil {
		return "", err
	}
	settings, err := s.Clients.ClientLogout(ctx, client.ID)
	if err != nil {
		return "", fmt.Errorf("read the client's logout settings: %w", err)
	}
	if !slices.Contains(settings.PostLogoutRedirectURIs, uri) {
		return "", chiterr.New(chiterr.InvalidArgument, "post_logout_redirect_uri %s is not registered for client %s", chiterr.Quote(uri), chiterr.Quote(clientID))
	}
	if state == "" {
		return uri, nil
	}
	// state is added to the registered URI as it is written, its own query
	// kept byte for byte (registered URIs have no fragment).
	separator := "?"
	if strings.Contains(uri, "?") {
		separator = "&"
	}
	return uri + separator + url.Values{"state": {state}}.Encode(), nil
}

// end ends session id, then revokes the person's logins through the
// clients that ask for it, then tells the clients that registered a
// back-channel logout URI, waiting for them at most DeliveryWait. A client
// whose settings cannot be read is skipped (and logged): the session is
// already ended, and the person must not be told otherwise.
func (s *Service) end(ctx context.Context, id string) error {
	session, err := s.Sessions.End(ctx, id)
	if chiterr.KindOf(err) == chiterr.NotFound {
		return nil // ended meanwhile, by another request
	}
	if err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	s.Logger.InfoContext(ctx, "session ended by logout", "audit", true, "event", "logout", "subject", session.Subject, "clients", session.ClientIDs)
	var receivers []receiver
	for _, clientID := range session.ClientIDs {
		settings, err := s.Clients.ClientLogout(ctx, clientID)
		if err != nil {
			s.Logger.ErrorContext(ctx, "logout: read the client's logout settings", "client", clientID, "error", err)
			continue
		}
		if settings.RevokesRefreshTokens {
			if _, err := s.Logins.RevokeClientLogins(ctx, session.Subject, clientID, "logout"); err != nil {
				s.Logger.ErrorContext(ctx, "logout: revoke the client's logins", "client", clientID, "subject", session.Subject, "error", err)
			}
		}
		if settings.BackchannelLogoutURI != "" {
			receivers = append(receivers, receiver{clientID: clientID, uri: settings.BackchannelLogoutURI})
		}
	}
	s.notify(ctx, session, receivers)
	return nil
}

// WaitForDeliveries waits for the back-channel deliveries under way (for
// tests and shutdown).
func (s *Service) WaitForDeliveries() { s.deliveries.Wait() }
