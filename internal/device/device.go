package device

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/secrets"
	"github.com/chit-auth/chit/internal/sessions"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/tokens"
)

// VerificationPath is the verification page, on the HTTP port.
const VerificationPath = "/oauth2/device"

// Defaults of Config.
const (
	// DefaultCodeTTL is how long a device has to be approved: RFC 8628
	// §6.1 leaves it to the server; 10 minutes lets a person find a
	// browser and sign in, and bounds the guessing window.
	DefaultCodeTTL = 10 * time.Minute
	// DefaultInterval is the least time between polls (RFC 8628 §3.2).
	DefaultInterval = 5 * time.Second
	// SlowDownStep is what a too-early poll adds to the interval (§3.5).
	SlowDownStep = 5 * time.Second
)

// UserCodeAlphabet are the user codes' letters: consonants only, no
// vowels (no words) and none easily confused (RFC 8628 §6.1).
const UserCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// UserCodeLength is the user code's length: 20^8 ≈ 2^34.6 codes, against
// a handful of guesses per address per window (the throttle).
const UserCodeLength = 8

// Reasons of a poll that issues nothing yet (RFC 8628 §3.5), answered as
// the OAuth error code.
const (
	ReasonAuthorizationPending = "authorization_pending"
	ReasonSlowDown             = "slow_down"
	ReasonAccessDenied         = "access_denied"
	ReasonExpiredToken         = "expired_token"
)

// Config is the device flow's policy.
type Config struct {
	// BaseURL is the public URL of the HTTP port: the verification URI's.
	BaseURL string
	// CodeTTL is how long a request may be approved and polled; zero is
	// DefaultCodeTTL.
	CodeTTL time.Duration
	// Interval is the least time between polls; zero is DefaultInterval.
	Interval time.Duration
	// Throttle slows down guesses of user codes by address; zero is
	// accounts.DefaultThrottle.
	Throttle accounts.ThrottlePolicy
}

// Store is what the device flow keeps: its requests, and the sign-in
// throttle's counts for guesses of user codes.
type Store interface {
	storage.DeviceCodes
	storage.Throttle
}

// Issuer issues a person's approved sign-in: authorize.Service, the one
// issuing path of the hosted pages.
type Issuer interface {
	IssueForSignIn(ctx context.Context, client accounts.Client, in authorize.Redemption) (tokens.Grant, error)
}

// Service runs device authorizations.
type Service struct {
	cfg       Config
	store     Store
	authorize Issuer
	directory *accounts.Directory
	sessions  *sessions.Service
	now       func() time.Time
	random    io.Reader
	logger    *slog.Logger
}

// Dependencies are what the device flow works with. Directory signs people
// in on the verification page; Sessions (nil or disabled: none) lets a
// live sign-in session approve without the password.
type Dependencies struct {
	Store     Store
	Authorize Issuer
	Directory *accounts.Directory
	Sessions  *sessions.Service
	Now       func() time.Time
	Random    io.Reader
	// Logger takes the audit lines: wrong user codes, decisions, and the
	// polls that end a request (tokens issued, denied, expired). nil
	// discards them.
	Logger *slog.Logger
}

// NewService wires the device flow.
func NewService(cfg Config, deps Dependencies) *Service {
	if cfg.CodeTTL <= 0 {
		cfg.CodeTTL = DefaultCodeTTL
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Throttle == (accounts.ThrottlePolicy{}) {
		cfg.Throttle = accounts.DefaultThrottle
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Random == nil {
		deps.Random = rand.Reader
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, store: deps.Store, authorize: deps.Authorize, directory: deps.Directory, sessions: deps.Sessions, now: deps.Now,
		random: deps.Random, logger: deps.Logger}
}

// StartRequest is a device's request for a code (RFC 8628 §3.1).
type StartRequest struct {
	Client  accounts.Client
	Scope   string
	Address string
}

// Authorization is the answer to a StartRequest (RFC 8628 §3.2).
type Authorization struct {
	DeviceCode              string
	UserCode                string
	VerificationURI         string
	VerificationURIComplete string
	ExpiresIn               time.Duration
	Interval                time.Duration
}

var errNotAllowed = chiterr.New(chiterr.PermissionDenied, "the client is not allowed the device authorization grant").WithReason(chiterr.ReasonUnauthorizedClient)

// allowed reports whether client may use the device grant: Chit's CLI,
// and registered clients the administrator allowed it.
func allowed(client accounts.Client) bool {
	if client.Service {
		return false
	}
	if client.FirstParty {
		return client.ID == accounts.CLIClientID
	}
	return client.DeviceAuthorization
}

// Start records a new request and answers its codes.
func (s *Service) Start(ctx context.Context, req StartRequest) (Authorization, error) {
	if !allowed(req.Client) {
		return Authorization{}, errNotAllowed
	}
	requested, err := accounts.ParseScope(req.Scope)
	if err != nil {
		return Authorization{}, err
	}
	for _, scope := range requested {
		if !req.Client.Allows(scope) {
			return Authorization{}, chiterr.New(chiterr.InvalidArgument, "scope %q is not allowed for client %q", scope, req.Client.ID).WithReason(chiterr.ReasonInvalidScope)
		}
	}
	now := s.now()
	deviceCode, err := secrets.Random(s.random, 32)
	if err != nil {
		return Authorization{}, err
	}
	// A user code taken by a live request is drawn again: 20^8 codes make
	// a second clash vanishingly rare.
	for attempt := 0; ; attempt++ {
		userCode, err := s.newUserCode()
		if err != nil {
			return Authorization{}, err
		}
		err = s.store.CreateDeviceCode(ctx, storage.DeviceCode{
			DeviceCodeHash: secrets.Digest(deviceCode), UserCodeHash: secrets.Digest(userCode),
			ClientID: req.Client.ID, Scope: strings.Join(requested, " "), RequestedFrom: req.Address, RequestedAt: now,
			ExpiresAt: now.Add(s.cfg.CodeTTL), Interval: s.cfg.Interval, Status: storage.DevicePending,
		})
		if errors.Is(err, storage.ErrAlreadyExists) && attempt < 3 {
			continue
		}
		if err != nil {
			return Authorization{}, fmt.Errorf("store device code: %w", err)
		}
		display := FormatUserCode(userCode)
		uri := strings.TrimRight(s.cfg.BaseURL, "/") + VerificationPath
		return Authorization{DeviceCode: deviceCode, UserCode: display, VerificationURI: uri,
			VerificationURIComplete: uri + "?user_code=" + display, ExpiresIn: s.cfg.CodeTTL, Interval: s.cfg.Interval}, nil
	}
}

func (s *Service) newUserCode() (string, error) {
	// Rejection sampling keeps every letter equally likely: 240 is the
	// largest multiple of 20 below 256.
	code := make([]byte, 0, UserCodeLength)
	buf := make([]byte, 1)
	for len(code) < UserCodeLength {
		if _, err := io.ReadFull(s.random, buf); err != nil {
			return "", err
		}
		if buf[0] < 240 {
			code = append(code, UserCodeAlphabet[int(buf[0])%len(UserCodeAlphabet)])
		}
	}
	return string(code), nil
}

// FormatUserCode shows a user code as people read it: XXXX-XXXX.
func FormatUserCode(code string) string {
	if len(code) != UserCodeLength {
		return code
	}
	return code[:4] + "-" + code[4:]
}

// NormalizeUserCode reads a user code as people type it: any case, with
// dashes and spaces anywhere. It answers false for what cannot be a code.
func NormalizeUserCode(typed string) (string, bool) {
	var b strings.Builder
	for _, r := range strings.ToUpper(typed) {
		switch {
		case r == '-' || r == ' ':
		case r < 128 && strings.IndexByte(UserCodeAlphabet, byte(r)) >= 0:
			b.WriteRune(r)
		default:
			return "", false
		}
		if b.Len() > UserCodeLength {
			return "", false
		}
	}
	return b.String(), b.Len() == UserCodeLength
}

// Request is a pending request as the verification page shows it: what to
// confirm before approving.
type Request struct {
	UserCode      string
	ClientID      string
	Scopes        []string
	RequestedFrom string
	RequestedAt   time.Time
	ExpiresAt     time.Time
}

var errUserCodeInvalid = chiterr.New(chiterr.NotFound, "that code is not valid: check it and try again")

// throttleKey counts wrong user codes by the address that types them, as
// the sign-in throttle counts wrong passwords.
func throttleKey(address string) string { return "device-user-code:" + address }

// Lookup reads the pending request of a typed user code, for the person
// at address. Wrong, used and expired codes stay counted as failed guesses
// (every guess is reserved first, the right ones taken back):
// past the throttle's free ones, further lookups from the address wait.
func (s *Service) Lookup(ctx context.Context, typed, address string) (Request, error) {
	if err := s.admit(ctx, address); err != nil {
		return Request{}, err
	}
	code, ok := NormalizeUserCode(typed)
	if !ok {
		return Request{}, s.refusedUserCode(ctx, address, "malformed")
	}
	stored, err := s.store.GetDeviceCodeByUserCode(ctx, secrets.Digest(code))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return Request{}, s.refusedUserCode(ctx, address, "unknown")
	case err != nil:
		s.found(ctx, address) // no guess was checked
		return Request{}, fmt.Errorf("read device code: %w", err)
	case stored.Status != storage.DevicePending:
		return Request{}, s.refusedUserCode(ctx, address, "answered")
	case !s.now().Before(stored.ExpiresAt):
		return Request{}, s.refusedUserCode(ctx, address, "expired")
	}
	s.found(ctx, address)
	return Request{UserCode: FormatUserCode(code), ClientID: stored.ClientID, Scopes: strings.Fields(stored.Scope),
		RequestedFrom: stored.RequestedFrom, RequestedAt: stored.RequestedAt, ExpiresAt: stored.ExpiresAt}, nil
}

// refusedUserCode writes the audit line of a wrong, used or expired user
// code (never the code: a near miss would help the next guess) and answers
// the one error every such code gets, so the page tells nothing apart.
func (s *Service) refusedUserCode(ctx context.Context, address, why string) error {
	s.logger.InfoContext(ctx, "device user code refused", "audit", true, "event", "device_user_code_refused", "why", why, "address", address)
	return errUserCodeInvalid
}

// admit reserves the guess before the code is looked up, atomically with
// reading the count (storage.Throttle), as a password's try is reserved
// before the hash is checked: a burst of parallel guesses gets no more
// lookups than the same guesses one after the other.
func (s *Service) admit(ctx context.Context, address string) error {
	now := s.now()
	var wait time.Duration
	_, allowed, err := s.store.ReserveLoginAttempt(ctx, throttleKey(address), now, s.cfg.Throttle.Forget, func(before storage.LoginFailures) bool {
		wait = s.cfg.Throttle.Wait(before, now)
		return wait <= 0
	})
	if err != nil {
		return fmt.Errorf("reserve a user code guess: %w", err)
	}
	if !allowed {
		seconds := int(math.Ceil(wait.Seconds()))
		return &chiterr.Error{Kind: chiterr.ResourceExhausted, Message: fmt.Sprintf("too many wrong codes; try again in %d seconds", seconds),
			RetryAfter: time.Duration(seconds) * time.Second}
	}
	return nil
}

// found takes the reserved guess back: a right code is no failure. Best
// effort, as the sign-in throttle's success: a store error must not change
// the answer.
func (s *Service) found(ctx context.Context, address string) {
	_ = s.store.ReleaseLoginAttempts(context.WithoutCancel(ctx), throttleKey(address), 1)
}

// Decision is a signed-in person's answer to a request.
type Decision struct {
	UserCode string
	Approve  bool
	// Principal is the person who signed in, at AuthTime, through the
	// sign-in session SessionID ("" for none).
	Principal accounts.Principal
	AuthTime  time.Time
	SessionID string
	Address   string
}

// Decide records a person's approval or denial of a request, once. What
// the person is not allowed of the scopes is left out when the tokens are
// issued (Grantee.StillAllowed).
func (s *Service) Decide(ctx context.Context, d Decision) error {
	if _, err := s.Lookup(ctx, d.UserCode, d.Address); err != nil {
		return err
	}
	decision := storage.DeviceDecision{Status: storage.DeviceDenied, At: s.now()}
	if d.Approve {
		if d.Principal.Role == accounts.RoleService {
			return chiterr.New(chiterr.PermissionDenied, "a service account cannot approve a device")
		}
		decision = storage.DeviceDecision{Status: storage.DeviceApproved, Subject: d.Principal.Subject, AuthTime: d.AuthTime,
			SessionID: d.SessionID, At: decision.At}
	}
	code, _ := NormalizeUserCode(d.UserCode)
	err := s.store.DecideDeviceCode(ctx, secrets.Digest(code), decision)
	switch {
	case errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrConflict):
		return chiterr.New(chiterr.FailedPrecondition, "this request has already been answered or has expired")
	case err != nil:
		return fmt.Errorf("record the device decision: %w", err)
	}
	event, subject := "device_denied", ""
	if d.Approve {
		event, subject = "device_approved", d.Principal.Subject
	}
	s.logger.InfoContext(ctx, "device request answered", "audit", true, "event", event, "subject", subject, "address", d.Address)
	return nil
}

// PollRequest is a device's token request (RFC 8628 §3.4).
type PollRequest struct {
	Client     accounts.Client
	DeviceCode string
	Audience   string
	// Binding is the key the tokens are bound to (tokens.Login.Binding).
	Binding tokens.Binding
}

var errDeviceCodeInvalid = chiterr.New(chiterr.Unauthenticated, "device code is invalid")

// Poll answers a device's poll: tokens once the request is approved, or
// why not yet. A poll costs one store round trip until the request is
// approved (PollDeviceCode reads and stamps the row); the poll that issues
// reads the person, session and client again, as a code's exchange does.
func (s *Service) Poll(ctx context.Context, req PollRequest) (tokens.Grant, error) {
	if !allowed(req.Client) {
		return tokens.Grant{}, errNotAllowed
	}
	switch {
	case req.DeviceCode == "":
		return tokens.Grant{}, chiterr.New(chiterr.InvalidArgument, "device_code is required")
	case len(req.DeviceCode) > tokens.MaxTokenLength:
		return tokens.Grant{}, errDeviceCodeInvalid
	}
	// An audience the client may not ask for is refused before the poll
	// is counted, as a code's exchange refuses it before the code is used.
	if req.Audience != "" {
		if _, err := (accounts.Grantee{Principal: accounts.Principal{Role: accounts.RoleUser}, Client: req.Client}).GrantAudience(req.Audience); err != nil {
			return tokens.Grant{}, err
		}
	}
	stored, outcome, err := s.store.PollDeviceCode(ctx, secrets.Digest(req.DeviceCode), req.Client.ID, s.now(), SlowDownStep)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// Unknown, or another client's (RFC 8628 §3.4: the device code is
		// bound to its client), which must not use it up.
		return tokens.Grant{}, errDeviceCodeInvalid
	case err != nil:
		return tokens.Grant{}, fmt.Errorf("poll device code: %w", err)
	}
	switch outcome {
	case storage.DevicePollPending:
		return tokens.Grant{}, chiterr.New(chiterr.FailedPrecondition, "the request has not been approved yet").WithReason(ReasonAuthorizationPending)
	case storage.DevicePollSlowDown:
		return tokens.Grant{}, (&chiterr.Error{Kind: chiterr.ResourceExhausted, RetryAfter: stored.Interval,
			Message: fmt.Sprintf("polling too often: wait %d seconds between polls", int(stored.Interval.Seconds()))}).WithReason(ReasonSlowDown)
	case storage.DevicePollDenied:
		s.logger.InfoContext(ctx, "device poll refused", "audit", true, "event", "device_poll_refused", "client", req.Client.ID, "why", "denied")
		return tokens.Grant{}, chiterr.New(chiterr.PermissionDenied, "the request was denied").WithReason(ReasonAccessDenied)
	case storage.DevicePollExpired:
		s.logger.InfoContext(ctx, "device poll refused", "audit", true, "event", "device_poll_refused", "client", req.Client.ID, "why", "expired")
		return tokens.Grant{}, chiterr.New(chiterr.FailedPrecondition, "the device code has expired; start again").WithReason(ReasonExpiredToken)
	case storage.DevicePollRedeemed:
		s.logger.InfoContext(ctx, "device poll refused", "audit", true, "event", "device_poll_refused", "client", req.Client.ID, "why", "used")
		return tokens.Grant{}, chiterr.New(chiterr.Unauthenticated, "device code has already been used")
	case storage.DevicePollIssue:
	default:
		return tokens.Grant{}, fmt.Errorf("poll device code: unknown outcome %q", outcome)
	}
	grant, err := s.authorize.IssueForSignIn(ctx, req.Client, authorize.Redemption{Credential: "device code", Kind: "device_code",
		Subject: stored.Subject, ClientID: stored.ClientID, Scope: stored.Scope, AuthTime: stored.AuthTime,
		SessionID: stored.SessionID, Audience: req.Audience, Binding: req.Binding})
	if err != nil {
		return tokens.Grant{}, err
	}
	s.logger.InfoContext(ctx, "device signed in", "audit", true, "event", "device_login", "client", req.Client.ID, "subject", stored.Subject, "scope", grant.Scope)
	return grant, nil
}

// SessionPerson is the person of the browser's live sign-in session, when
// there is one (sessions enabled, cookie naming a live session): the page
// then asks for a confirmation without the password.
func (s *Service) SessionPerson(ctx context.Context, cookie string) (accounts.Principal, sessions.Session, bool, error) {
	if !s.sessions.Enabled() || cookie == "" {
		return accounts.Principal{}, sessions.Session{}, false, nil
	}
	session, principal, err := s.sessions.ResumeWithPrincipal(ctx, cookie)
	if chiterr.KindOf(err) == chiterr.Unauthenticated {
		return accounts.Principal{}, sessions.Session{}, false, nil
	}
	if err != nil {
		return accounts.Principal{}, sessions.Session{}, false, err
	}
	return principal, session, true, nil
}

// Approval is a person's approval on the verification page: signed in
// with Username and Password, or, when those are empty, by the live
// session SessionCookie names.
type Approval struct {
	UserCode      string
	Address       string
	Username      string
	Password      string
	SessionCookie string
}

// Approved is what an approval answers: a session cookie to set when the
// password sign-in started a session.
type Approved struct {
	SessionCookie string
	Session       sessions.Session
}

// Approve signs the person in (or resumes their session) and approves the
// request of a.UserCode for them. The code is checked first, throttled, so
// a wrong code never costs a password check.
func (s *Service) Approve(ctx context.Context, a Approval) (Approved, error) {
	request, err := s.Lookup(ctx, a.UserCode, a.Address)
	if err != nil {
		return Approved{}, err
	}
	var approved Approved
	var principal accounts.Principal
	var authTime time.Time
	if a.Username == "" && a.Password == "" {
		person, session, ok, err := s.SessionPerson(ctx, a.SessionCookie)
		if err != nil {
			return Approved{}, err
		}
		if !ok {
			return Approved{}, chiterr.New(chiterr.InvalidArgument, "username and password are required")
		}
		if session, err = s.sessions.SignedIn(ctx, session, request.ClientID); err != nil {
			return Approved{}, err
		}
		principal, authTime, approved.Session = person, session.AuthTime, session
	} else {
		person, err := s.directory.AuthenticateUser(ctx, a.Address, a.Username, a.Password)
		if err != nil {
			return Approved{}, err
		}
		principal, authTime = person, person.ReadAt
		if s.sessions.Enabled() {
			if approved.SessionCookie, approved.Session, err = s.sessions.Start(ctx, person, []string{sessions.AMRPassword}, request.ClientID); err != nil {
				return Approved{}, err
			}
		}
	}
	return approved, s.Decide(ctx, Decision{UserCode: a.UserCode, Approve: true, Principal: principal, AuthTime: authTime,
		SessionID: approved.Session.ID, Address: a.Address})
}

// Deny refuses the request of a user code. It needs no sign-in: whoever
// holds the code (the person at the device) may call the request off, and
// a phished person must be able to do so at once.
func (s *Service) Deny(ctx context.Context, userCode, address string) error {
	return s.Decide(ctx, Decision{UserCode: userCode, Address: address})
}
