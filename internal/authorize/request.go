package authorize

import (
	"context"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
)

// Request is an authorization request (RFC 6749 §4.1.1, OpenID Connect
// Core §3.1.2.1), as the page and GetAuthorizeUrl get it.
type Request struct {
	ClientID            string
	RedirectURI         string
	State               string
	Scope               string
	CodeChallenge       string
	CodeChallengeMethod string
	Nonce               string
	// ResponseType must be "code"; AuthorizeURL fills it in.
	ResponseType string
	// ResponseMode, when set, must be "query" or "form_post".
	ResponseMode string
	// Prompt is OpenID Connect's space-separated prompt list.
	Prompt string
	// MaxAge is OpenID Connect's max_age as sent: the most seconds since
	// the person last typed their password for a sign-in session to answer
	// without the form ("" when not sent).
	MaxAge string
	// Repeated names the parameters the request carried more than once,
	// which RFC 6749 §3.1 forbids (ParseRequest fills it).
	Repeated []string
	// Unsupported names the parameters Chit does not support and must
	// refuse rather than ignore (request, request_uri).
	Unsupported []string
}

// Parameter values with a meaning to the flow.
const (
	ResponseTypeCode  = "code"
	ResponseModeQuery = "query"
	// ResponseModeFormPost returns the response as a form the browser
	// posts to the redirect URI (OAuth 2.0 Form Post Response Mode), so
	// the code appears in no URL, history or Referer.
	ResponseModeFormPost = "form_post"
	PromptNone           = "none"
	PromptLogin          = "login"
	PromptConsent        = "consent"
	PromptSelect         = "select_account"
)

// prompts are the prompt values of OpenID Connect Core §3.1.2.1. A live
// sign-in session answers without the form unless one of login, consent or
// select_account is asked: login wants the password typed again; Chit has
// no consent screen of its own, the form names the client and scopes the
// person approves by signing in (consent); and the form lets them type any
// account (select_account). none never shows the form: without a session
// it is answered login_required.
var prompts = []string{PromptNone, PromptLogin, PromptConsent, PromptSelect}

// Parameters are the authorization request's parameters Chit reads, in the
// order they are written: ParseRequest reads them, Values writes them, and
// the page carries them through its form.
var Parameters = []string{"response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
	"code_challenge", "code_challenge_method", "response_mode", "prompt", "max_age"}

// singleValued are the parameters that may appear once (RFC 6749 §3.1):
// those Chit reads and the other single-valued ones of OpenID Connect Core
// §3.1.2.1, which it ignores but does not let be ambiguous.
var singleValued = append(slices.Clone(Parameters), "display", "ui_locales", "id_token_hint", "login_hint",
	"acr_values", "claims", "request", "request_uri", "registration")

// Authorization error codes of RFC 6749 §4.1.2.1 and OpenID Connect Core
// §3.1.2.6 that the core answers (invalid_scope is chiterr's).
const (
	errInvalidRequest           = "invalid_request"
	errUnauthorizedClient       = "unauthorized_client"
	errAccessDenied             = "access_denied"
	errUnsupportedResponseType  = "unsupported_response_type"
	errServerError              = "server_error"
	errTemporarilyUnavailable   = "temporarily_unavailable"
	errLoginRequired            = "login_required"
	errRequestNotSupported      = "request_not_supported"
	errRequestURINotSupported   = "request_uri_not_supported"
	errRegistrationNotSupported = "registration_not_supported"
)

// ParseRequest reads an authorization request from its parameters (the
// query of a GET, the form of a POST), noting the ones repeated.
func ParseRequest(values url.Values) Request {
	req := Request{
		ClientID:            values.Get("client_id"),
		RedirectURI:         values.Get("redirect_uri"),
		State:               values.Get("state"),
		Scope:               values.Get("scope"),
		CodeChallenge:       values.Get("code_challenge"),
		CodeChallengeMethod: values.Get("code_challenge_method"),
		Nonce:               values.Get("nonce"),
		ResponseType:        values.Get("response_type"),
		ResponseMode:        values.Get("response_mode"),
		Prompt:              values.Get("prompt"),
		MaxAge:              values.Get("max_age"),
	}
	for _, name := range singleValued {
		if len(values[name]) > 1 {
			req.Repeated = append(req.Repeated, name)
		}
	}
	// OpenID Connect Core §6.1, §6.2 and Dynamic Client Registration §2.1:
	// a provider that does not support them says so instead of ignoring
	// them (a request object may carry the very parameters that matter).
	for _, name := range []string{"request", "request_uri", "registration"} {
		if _, sent := values[name]; sent {
			req.Unsupported = append(req.Unsupported, name)
		}
	}
	return req
}

// Values returns the request's parameters, those set, for a URL or a form.
func (r Request) Values() url.Values {
	values := url.Values{}
	for name, value := range map[string]string{
		"response_type": r.ResponseType, "client_id": r.ClientID, "redirect_uri": r.RedirectURI, "scope": r.Scope,
		"state": r.State, "nonce": r.Nonce, "code_challenge": r.CodeChallenge, "code_challenge_method": r.CodeChallengeMethod,
		"response_mode": r.ResponseMode, "prompt": r.Prompt, "max_age": r.MaxAge,
	} {
		if value != "" {
			values.Set(name, value)
		}
	}
	return values
}

// SilentOnly reports whether a validated request asked not to be shown
// the page (prompt=none, OpenID Connect Core §3.1.2.1).
func (r Request) SilentOnly() bool { return r.Prompt == PromptNone }

// wantsForm reports whether a validated request asks for the form even
// when a sign-in session is live: prompt login, consent or select_account,
// or Chit's own command line, whose commands that need a recent sign-in
// (chit apikey create) would refuse a session's old auth_time.
func (r Request) wantsForm() bool {
	if r.ClientID == CLIClientID {
		return true
	}
	for _, prompt := range strings.Fields(r.Prompt) {
		if prompt != PromptNone {
			return true
		}
	}
	return false
}

// maxAge is the validated request's max_age; ok is false when none was
// sent.
func (r Request) maxAge() (age time.Duration, ok bool) {
	if r.MaxAge == "" {
		return 0, false
	}
	seconds, _ := strconv.ParseInt(r.MaxAge, 10, 64) // checked by Validate
	return time.Duration(min(seconds, maxMaxAge)) * time.Second, true
}

// maxMaxAge caps max_age where a time.Duration of it still fits: a larger
// one means the same, any sign-in.
const maxMaxAge = 100 * 365 * 24 * 3600

// maxAgePattern is a non-negative integer in plain decimal (OpenID Connect
// Core §3.1.2.1), at most 18 digits so that it parses.
var maxAgePattern = regexp.MustCompile(`^[0-9]{1,18}$`)

// challengePattern is base64url of a SHA-256: 43 characters, no padding.
var challengePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// verifierPattern is RFC 7636 §4.1: 43 to 128 unreserved characters.
var verifierPattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// MaxStateLength bounds state and nonce, in characters.
const MaxStateLength = 512

// Validate checks a request and returns it with defaults filled in.
//
// It checks in two steps. Until the client and its redirect URI are known
// good, an error is for the person (the page): the redirect URI itself may
// be what is wrong, and a browser is never sent to a place the client did
// not register (RFC 6749 §4.1.2.1, §10.15). After that, an error is for the
// client: ErrorRedirect returns where it goes, with the state when there
// is one and the issuer.
func (s *Service) Validate(ctx context.Context, req Request) (Request, error) {
	// A repeated client_id or redirect_uri leaves no single client or
	// address to answer: whichever one was picked, the other may be the
	// one an attacker added.
	for _, name := range []string{"client_id", "redirect_uri"} {
		if slices.Contains(req.Repeated, name) {
			return Request{}, chiterr.New(chiterr.InvalidArgument, "%s is repeated: each parameter may be sent once", name)
		}
	}
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
	refused := &refusal{redirectURI: req.RedirectURI}
	// The state goes back with an error only when it is one clean value.
	if err := checkState(req); err != nil {
		return Request{}, refused.with(errInvalidRequest, err)
	}
	refused.state = req.State
	if err := s.checkRequest(client, &req); err != nil {
		return Request{}, refused.with("", err)
	}
	return req, nil
}

func checkState(req Request) error {
	switch {
	case slices.Contains(req.Repeated, "state"):
		return chiterr.New(chiterr.InvalidArgument, "state is repeated: each parameter may be sent once")
	case !utf8.ValidString(req.State):
		return chiterr.New(chiterr.InvalidArgument, "state must be UTF-8 text")
	case utf8.RuneCountInString(req.State) > MaxStateLength:
		return chiterr.New(chiterr.InvalidArgument, "state must be at most %d characters", MaxStateLength)
	}
	return nil
}

// checkRequest checks what is left once the client and its redirect URI
// are known good; its errors go to the client. Each error names its OAuth
// code as its reason, or is an invalid_request.
func (s *Service) checkRequest(client accounts.Client, req *Request) error {
	if len(req.Repeated) > 0 {
		return chiterr.New(chiterr.InvalidArgument, "%s is repeated: each parameter may be sent once", strings.Join(req.Repeated, ", "))
	}
	for _, name := range req.Unsupported {
		reason := map[string]string{"request": errRequestNotSupported, "request_uri": errRequestURINotSupported,
			"registration": errRegistrationNotSupported}[name]
		return chiterr.New(chiterr.InvalidArgument, "the %s parameter is not supported", name).WithReason(reason)
	}
	switch req.ResponseType {
	case ResponseTypeCode:
	case "":
		return chiterr.New(chiterr.InvalidArgument, "response_type is required; use code")
	default:
		return chiterr.New(chiterr.InvalidArgument, "response_type %s is not supported; use code", chiterr.Quote(req.ResponseType)).
			WithReason(errUnsupportedResponseType)
	}
	if req.ResponseMode != "" && req.ResponseMode != ResponseModeQuery && req.ResponseMode != ResponseModeFormPost {
		// The error goes back in the query, the one mode every client reads.
		return chiterr.New(chiterr.InvalidArgument, "response_mode %s is not supported; use query or form_post", chiterr.Quote(req.ResponseMode))
	}
	if err := checkPrompt(req.Prompt); err != nil {
		return err
	}
	if req.MaxAge != "" && !maxAgePattern.MatchString(req.MaxAge) {
		return chiterr.New(chiterr.InvalidArgument, "max_age must be a number of seconds, 0 or more")
	}
	if !utf8.ValidString(req.Nonce) {
		return chiterr.New(chiterr.InvalidArgument, "nonce must be UTF-8 text")
	}
	if utf8.RuneCountInString(req.Nonce) > MaxStateLength {
		return chiterr.New(chiterr.InvalidArgument, "nonce must be at most %d characters", MaxStateLength)
	}
	requested, err := accounts.ParseScope(req.Scope)
	if err != nil {
		return err
	}
	// What the person may obtain is known after sign-in (SignIn); what the
	// client may ask for is known now.
	if !client.FirstParty {
		for _, scope := range requested {
			if !client.Allows(scope) {
				return chiterr.New(chiterr.InvalidArgument, "scope %q is not allowed for client %q", scope, client.ID).WithReason(chiterr.ReasonInvalidScope)
			}
		}
	}
	return s.checkPKCE(client, req)
}

func checkPrompt(prompt string) error {
	values := strings.Fields(prompt)
	for _, value := range values {
		if !slices.Contains(prompts, value) {
			return chiterr.New(chiterr.InvalidArgument, "prompt %s is not supported; use none, login, consent or select_account", chiterr.Quote(value))
		}
	}
	if slices.Contains(values, PromptNone) && len(values) > 1 {
		// OpenID Connect Core §3.1.2.1: none with any other value is an error.
		return chiterr.New(chiterr.InvalidArgument, "prompt none cannot be combined with other values")
	}
	return nil
}

// PKCERequired reports whether a client must send a code challenge:
// a public client always (it has no secret, so the challenge is what binds
// the code to it: RFC 9700 §2.1.1), a confidential one unless it was
// registered with PKCE optional or the server lets every confidential client
// go without (Config.RequirePKCE false).
func (s *Service) PKCERequired(client accounts.Client) bool {
	if !client.Confidential {
		return true
	}
	return s.cfg.RequirePKCE && !client.PKCEOptional
}

// checkPKCE applies RFC 7636 (S256 only) and the state rule: a request
// with PKCE may leave state out, because the challenge already stops a
// forged redirect (RFC 9700 §2.1.1, §4.7.1); one without PKCE needs a state.
func (s *Service) checkPKCE(client accounts.Client, req *Request) error {
	switch {
	case req.CodeChallengeMethod == "plain":
		return chiterr.New(chiterr.InvalidArgument, "code_challenge_method plain is not allowed; use S256")
	case req.CodeChallenge == "" && req.CodeChallengeMethod != "":
		return chiterr.New(chiterr.InvalidArgument, "code_challenge_method without code_challenge")
	case req.CodeChallenge == "" && s.PKCERequired(client):
		return chiterr.New(chiterr.InvalidArgument, "code_challenge is required (PKCE with S256)")
	case req.CodeChallenge == "" && req.State == "":
		return chiterr.New(chiterr.InvalidArgument, "state is required without PKCE")
	case req.CodeChallenge != "":
		if req.CodeChallengeMethod == "" {
			req.CodeChallengeMethod = "S256"
		}
		if req.CodeChallengeMethod != "S256" {
			return chiterr.New(chiterr.InvalidArgument, "code_challenge_method %s is not supported; use S256", chiterr.Quote(req.CodeChallengeMethod))
		}
		if !challengePattern.MatchString(req.CodeChallenge) {
			return chiterr.New(chiterr.InvalidArgument, "code_challenge must be the base64url SHA-256 of the verifier (43 characters)")
		}
	}
	return nil
}
