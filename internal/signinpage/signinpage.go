package signinpage

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/clientaddr"
	"github.com/chit-auth/chit/internal/secrets"
)

//go:embed assets
var assets embed.FS

var (
	page     = template.Must(template.ParseFS(assets, "assets/page.html"))
	formPost = template.Must(template.ParseFS(assets, "assets/formpost.html"))
)

// The CSRF cookie. Where the page's public URL is https, it is
// __Host-prefixed (RFC 6265bis): Secure, for the whole host, and no other
// site or subdomain can set it; that holds behind a TLS-terminating proxy
// too, where the request reaching chitd is plain HTTP.
const (
	csrfCookie       = "chit_csrf"
	secureCSRFCookie = "__Host-chit_csrf"
)

// The sign-in session cookie. Behind an https issuer it is
// __Host-prefixed, Secure and for the whole host; SameSite=Lax, not Strict,
// because an authorization request arrives as a top-level navigation from
// the client's site, which must carry it. On an http issuer (make run's) it
// cannot be __Host-: it is then chit_session, for /oauth2/ only.
const (
	sessionCookie       = "chit_session"
	secureSessionCookie = "__Host-chit_session"
	sessionCookiePath   = "/oauth2/"
)

// SessionCookieValue returns the value of r's sign-in session cookie ("" when
// it has none), for a page whose public URL is https (httpsOnly) or not. It
// is only a value to look up (sessions.Service.Resume): nothing in it is
// trusted.
func SessionCookieValue(r *http.Request, httpsOnly bool) string {
	name := sessionCookie
	if httpsOnly {
		name = secureSessionCookie
	}
	cookie, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return cookie.Value
}

// ClearSessionCookie makes the browser forget its sign-in session cookie
// (an expired one with the same name, path and attributes), as logout does.
func ClearSessionCookie(w http.ResponseWriter, httpsOnly bool) {
	cookie := sessionCookieFor(httpsOnly, false, "")
	cookie.MaxAge = -1
	http.SetCookie(w, cookie)
}

func sessionCookieFor(httpsOnly, overTLS bool, value string) *http.Cookie {
	cookie := &http.Cookie{Name: sessionCookie, Value: value, Path: sessionCookiePath, HttpOnly: true, Secure: overTLS, SameSite: http.SameSiteLaxMode}
	if httpsOnly {
		cookie.Name, cookie.Path, cookie.Secure = secureSessionCookie, "/", true
	}
	return cookie
}

// setSessionCookie sets the session cookie to value until the session's
// absolute end; the server ends it sooner when it idles.
func (h *Handler) setSessionCookie(w http.ResponseWriter, overTLS bool, value string, expiresAt time.Time) {
	cookie := sessionCookieFor(h.httpsOnly, overTLS, value)
	cookie.Expires = expiresAt
	http.SetCookie(w, cookie)
}

// maxFormBytes bounds a sign-in form submission.
const maxFormBytes = 16 << 10

// Handler serves the sign-in page and its assets.
type Handler struct {
	authorize *authorize.Service
	logger    *slog.Logger
	// httpsOnly is set when the page's public URL is https: its cookie is
	// then always Secure and __Host-prefixed.
	httpsOnly bool
}

// Config is the page's own setting.
type Config struct {
	// HTTPSOnly says the page's public URL (the issuer) is https: its CSRF
	// cookie is then always Secure and __Host-prefixed.
	HTTPSOnly bool
}

// Dependencies are what the page calls and logs to.
type Dependencies struct {
	Authorize *authorize.Service
	Logger    *slog.Logger
}

// New returns the handler; mount it at /oauth2/.
func New(cfg Config, deps Dependencies) *Handler {
	return &Handler{authorize: deps.Authorize, logger: deps.Logger, httpsOnly: cfg.HTTPSOnly}
}

// Register adds the page's routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	static, _ := fs.Sub(assets, "assets")
	mux.Handle("GET /oauth2/assets/style.css", http.StripPrefix("/oauth2/assets/", http.FileServerFS(static)))
	mux.HandleFunc("GET "+authorize.PagePath, h.show)
	mux.HandleFunc("POST "+authorize.PagePath, h.submit)
}

type hiddenField struct{ Name, Value string }

type view struct {
	Problem    string
	Error      string
	ClientName string
	CSRFToken  string
	Hidden     []hiddenField
	Username   string
	Scopes     []string
	// Unavailable says the problem passes: the store cannot be reached now.
	Unavailable bool
}

func (h *Handler) show(w http.ResponseWriter, r *http.Request) {
	req, err := h.authorize.Validate(r.Context(), authorize.ParseRequest(r.URL.Query()))
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	// A live sign-in session answers without the form when the request
	// lets it (authorize.Service.SignInWithSession says when).
	target, resumed, err := h.authorize.SignInWithSession(r.Context(), req, SessionCookieValue(r, h.httpsOnly))
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	if resumed {
		h.redirect(w, r, target)
		return
	}
	if req.SilentOnly() {
		h.redirect(w, r, h.authorize.LoginRequired(req))
		return
	}
	token, err := h.newCSRFToken(w, r.TLS != nil)
	if err != nil {
		h.problem(w, err)
		return
	}
	h.render(w, http.StatusOK, req, view{CSRFToken: token})
}

func (h *Handler) submit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		message := "the form could not be read"
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			message = fmt.Sprintf("the form is larger than %d KiB", maxFormBytes>>10)
		}
		h.problem(w, chiterr.New(chiterr.InvalidArgument, "%s", message))
		return
	}
	if !h.validCSRF(r) {
		h.problem(w, chiterr.New(chiterr.PermissionDenied, "the form has expired or did not come from this page; reload the sign-in link"))
		return
	}
	req, err := h.authorize.Validate(r.Context(), authorize.ParseRequest(r.PostForm))
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	if r.PostForm.Get("action") == "cancel" {
		target, err := h.authorize.Deny(r.Context(), req)
		if err != nil {
			h.refuse(w, r, err)
			return
		}
		h.redirect(w, r, target)
		return
	}
	username := r.PostForm.Get("username")
	// The client's address for throttling is in the context
	// (clientaddr.Middleware).
	signedIn, err := h.authorize.SignIn(r.Context(), req, authorize.PasswordSignIn{
		Address: clientaddr.From(r.Context()), Username: username, Password: r.PostForm.Get("password"),
		Replaces: SessionCookieValue(r, h.httpsOnly),
	})
	if target, ok := h.authorize.ErrorRedirect(err); ok {
		// The client changed since the form was shown.
		h.redirect(w, r, target)
		return
	}
	if err != nil {
		status := http.StatusBadRequest
		message := chiterr.PublicMessage(err)
		switch chiterr.KindOf(err) {
		case chiterr.Unauthenticated:
			status, message = http.StatusUnauthorized, "Wrong username or password."
		case chiterr.ResourceExhausted:
			status = http.StatusTooManyRequests
			// As on the API's 429s (RFC 9110 §10.2.3): when to try again.
			retryAfter(w, err)
		case chiterr.Unavailable:
			h.logger.ErrorContext(r.Context(), "sign-in failed", "error", err)
			status, message = http.StatusServiceUnavailable, unavailableMessage
			retryAfter(w, err)
		case chiterr.InvalidArgument:
		default:
			h.logger.ErrorContext(r.Context(), "sign-in failed", "error", err)
			status = http.StatusInternalServerError
		}
		// The CSRF cookie stays valid: the person simply tries again.
		h.render(w, status, req, view{Error: message, Username: username, CSRFToken: r.PostForm.Get("csrf_token")})
		return
	}
	if signedIn.SessionCookie != "" {
		h.setSessionCookie(w, r.TLS != nil, signedIn.SessionCookie, signedIn.Session.ExpiresAt)
	}
	h.redirect(w, r, signedIn.Target)
}

// redirect sends the browser an authorization response: a 303 to target,
// or, when the request asked for response_mode=form_post, a page that posts
// target's parameters to the redirect URI. Only validated responses come
// here: target is a registered redirect URI.
func (h *Handler) redirect(w http.ResponseWriter, r *http.Request, target string) {
	if responseMode(r) != authorize.ResponseModeFormPost {
		h.securityHeaders(w, target)
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	action, fields := authorize.FormPost(target)
	nonce, err := randomToken()
	if err != nil {
		h.problem(w, err)
		return
	}
	v := formPostView{Action: action, Nonce: nonce}
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		v.Fields = append(v.Fields, hiddenField{Name: name, Value: fields.Get(name)})
	}
	h.securityHeaders(w, target)
	// The page's one script submits the form: it runs by its nonce, and
	// nothing else may.
	formAction := "'self'"
	if origin := authorize.Origin(target); origin != "" {
		formAction = origin
	}
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'nonce-"+nonce+"'; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if err := formPost.Execute(w, v); err != nil {
		h.logger.Error("render form_post response", "error", err)
	}
}

type formPostView struct {
	Action string
	Fields []hiddenField
	Nonce  string
}

// responseMode is the response_mode the authorization request asked for:
// in the query of the page's GET, in the form of its POST.
func responseMode(r *http.Request) string {
	if r.Method == http.MethodPost {
		return r.PostForm.Get("response_mode")
	}
	return r.URL.Query().Get("response_mode")
}

// randomToken is a fresh CSRF token or CSP nonce: 32 random bytes.
func randomToken() (string, error) { return secrets.Random(rand.Reader, 32) }

func (h *Handler) render(w http.ResponseWriter, status int, req authorize.Request, v view) {
	v.ClientName = req.ClientID
	if req.ClientID == authorize.CLIClientID {
		v.ClientName = "the Chit command line"
	}
	v.Scopes = strings.Fields(req.Scope)
	// The form carries the validated request, which the submission is
	// validated as again.
	values := req.Values()
	for _, name := range authorize.Parameters {
		if value := values.Get(name); value != "" {
			v.Hidden = append(v.Hidden, hiddenField{Name: name, Value: value})
		}
	}
	h.securityHeaders(w, req.RedirectURI)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := page.Execute(w, v); err != nil {
		h.logger.Error("render sign-in page", "error", err)
	}
}

// refuse answers a request Validate refused: to the client, by redirect,
// when its client and redirect URI were known good (RFC 6749 §4.1.2.1);
// otherwise on the page.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if target, ok := h.authorize.ErrorRedirect(err); ok {
		h.redirect(w, r, target)
		return
	}
	h.problem(w, err)
}

// problem shows an error page: a bad request is never redirected, because
// the redirect URI may be what is wrong.
func (h *Handler) problem(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	v := view{Problem: chiterr.PublicMessage(err)}
	switch chiterr.KindOf(err) {
	case chiterr.PermissionDenied:
		status = http.StatusForbidden
	case chiterr.Unavailable:
		h.logger.Error("sign-in page", "error", err)
		status, v = http.StatusServiceUnavailable, view{Problem: unavailableMessage, Unavailable: true}
		retryAfter(w, err)
	case chiterr.Internal:
		h.logger.Error("sign-in page", "error", err)
		status = http.StatusInternalServerError
	}
	h.securityHeaders(w, "")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := page.Execute(w, v); err != nil {
		h.logger.Error("render sign-in problem page", "error", err)
	}
}

// unavailableMessage is what a person is shown while the store cannot be
// reached: nothing is wrong with the link or the password.
const unavailableMessage = "Signing in is unavailable for a moment. Try again shortly."

// retryAfter sets the Retry-After header (RFC 9110 §10.2.3) of a 503 from
// err's retry hint, in whole seconds, at least one.
func retryAfter(w http.ResponseWriter, err error) {
	seconds := math.Ceil(chiterr.RetryAfter(err).Seconds())
	w.Header().Set("Retry-After", strconv.Itoa(int(max(seconds, 1))))
}

// securityHeaders forbid framing (clickjacking), scripts and foreign
// resources; form-action also names where the form's redirect may go.
func (h *Handler) securityHeaders(w http.ResponseWriter, redirectURI string) {
	formAction := "'self'"
	if origin := authorize.Origin(redirectURI); origin != "" {
		formAction += " " + origin
	}
	header := w.Header()
	header.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	header.Set("X-Frame-Options", "DENY")
	header.Set("X-Content-Type-Options", "nosniff")
	header.Set("Referrer-Policy", "no-referrer")
	header.Set("Cache-Control", "no-store")
}

// newCSRFToken sets the CSRF cookie and returns the token the form must
// echo. The cookie is Secure when the page's public URL is https or the
// request came over TLS.
func (h *Handler) newCSRFToken(w http.ResponseWriter, overTLS bool) (string, error) {
	token, err := randomToken()
	if err != nil {
		return "", err
	}
	cookie := &http.Cookie{
		Name:     csrfCookie,
		Value:    token,
		Path:     "/oauth2/",
		HttpOnly: true,
		Secure:   overTLS,
		SameSite: http.SameSiteStrictMode,
		MaxAge:   15 * 60,
	}
	if h.httpsOnly {
		cookie.Name, cookie.Path, cookie.Secure = secureCSRFCookie, "/", true
	}
	http.SetCookie(w, cookie)
	return token, nil
}

// validCSRF is the double-submit check: the form's token must equal the
// cookie's, which another site can neither read nor set.
func (h *Handler) validCSRF(r *http.Request) bool {
	name := csrfCookie
	if h.httpsOnly {
		name = secureCSRFCookie
	}
	cookie, err := r.Cookie(name)
	form := r.PostForm.Get("csrf_token")
	return err == nil && cookie.Value != "" && form != "" && subtle.ConstantTimeCompare([]byte(cookie.Value), []byte(form)) == 1
}
