package authorize

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/chit-auth/chit/internal/chiterr"
)

// refusal is an error found once the client and its redirect URI were known
// good: the client hears it at its redirect URI (RFC 6749 §4.1.2.1). It
// wraps the error, so callers that do not redirect (GetAuthorizeUrl) see
// its kind and message.
type refusal struct {
	err                error
	code               string
	redirectURI, state string
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// with returns a copy of r for err, with code, or the code err names.
func (r *refusal) with(code string, err error) error {
	copied := *r
	copied.err = err
	if copied.code = code; code == "" {
		copied.code = errorCode(err)
	}
	return &copied
}

// errorCode is the RFC 6749 §4.1.2.1 code for err: its reason when it has
// one, else one for its kind.
func errorCode(err error) string {
	if reason := chiterr.ReasonOf(err); reason != "" {
		return reason
	}
	switch chiterr.KindOf(err) {
	case chiterr.InvalidArgument:
		return errInvalidRequest
	case chiterr.PermissionDenied:
		return errUnauthorizedClient
	case chiterr.Unavailable, chiterr.ResourceExhausted:
		return errTemporarilyUnavailable
	}
	return errServerError
}

// ErrorRedirect returns where to send the browser for an error of Validate
// (or of what calls it), when the client should hear it: the redirect URI
// with error, error_description, the state when it was one clean value, and
// iss. It answers false for the errors found before the client and its
// redirect URI were known good, which belong on the page.
func (s *Service) ErrorRedirect(err error) (string, bool) {
	var refused *refusal
	if !errors.As(err, &refused) {
		return "", false
	}
	return s.errorResponse(refused.redirectURI, refused.state, refused.code, refused.err), true
}

// LoginRequired returns where to send the browser for a validated request
// that asked not to be shown the page (prompt=none) when no sign-in session
// could answer it (OpenID Connect Core §3.1.2.6).
func (s *Service) LoginRequired(req Request) string {
	return s.response(req.RedirectURI, url.Values{"error": {errLoginRequired}, "state": {req.State}})
}

// Deny returns where to send the browser when the person cancels.
func (s *Service) Deny(ctx context.Context, req Request) (string, error) {
	req, err := s.Validate(ctx, req)
	if err != nil {
		return "", err
	}
	return s.response(req.RedirectURI, url.Values{"error": {errAccessDenied}, "state": {req.State}}), nil
}

func (s *Service) errorResponse(redirectURI, state, code string, err error) string {
	return s.response(redirectURI, url.Values{"error": {code}, "error_description": {errorDescription(chiterr.PublicMessage(err))}, "state": {state}})
}

// response is an authorization response at a validated redirect URI: the
// parameters given (an empty state left out) beside the URI's own query,
// and the issuer, so that a client talking to several servers knows which
// one answered (RFC 9207 §2, against mix-up attacks).
func (s *Service) response(redirectURI string, params url.Values) string {
	u, _ := url.Parse(redirectURI) // validated before
	query := u.Query()
	for name, values := range params {
		if len(values) == 1 && values[0] == "" {
			continue
		}
		query[name] = values
	}
	if s.cfg.Issuer != "" {
		query.Set("iss", s.cfg.Issuer)
	}
	u.RawQuery = query.Encode()
	return u.String()
}

// errorDescription keeps to the characters RFC 6749 §4.1.2.1 allows in
// error_description (printable ASCII without '"' and '\'): quotes become
// apostrophes, anything else outside them a '?'.
func errorDescription(message string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r == '\\' || r < 0x20 || r > 0x7e:
			return '?'
		}
		return r
	}, message)
}

// responseParameters are the parameters an authorization response adds to
// the redirect URI (RFC 6749 §4.1.2, §4.1.2.1, RFC 9207).
var responseParameters = []string{"code", "state", "iss", "error", "error_description"}

// FormPost splits an authorization response (the redirect URI with the
// response's parameters in its query, as SignIn, Deny, LoginRequired and
// ErrorRedirect answer it) into what response_mode=form_post sends (OAuth
// 2.0 Form Post Response Mode §2): the redirect URI with its own query, and
// the response's parameters as the fields of the form posted to it.
func FormPost(target string) (action string, fields url.Values) {
	u, err := url.Parse(target)
	if err != nil {
		return "", nil
	}
	query := u.Query()
	fields = url.Values{}
	for _, name := range responseParameters {
		if values, ok := query[name]; ok {
			fields[name] = values
			delete(query, name)
		}
	}
	u.RawQuery = query.Encode()
	return u.String(), fields
}
