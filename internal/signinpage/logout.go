package signinpage

import (
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/logout"
)

// LogoutPath is the end_session_endpoint (OpenID Connect RP-Initiated
// Logout 1.0 §2).
const LogoutPath = "/oauth2/logout"

var logoutPage = template.Must(template.ParseFS(assets, "assets/logout.html"))

// LogoutHandler serves the logout endpoint: GET and POST (§2), the
// confirmation form it shows when the request cannot say whose session it
// ends, and the "you are signed out" page.
type LogoutHandler struct {
	logout *logout.Service
	logger *slog.Logger
	// page is the sign-in page's handler, for its CSRF cookie and headers.
	page               *Handler
	sessionCookie      func(*http.Request) string
	clearSessionCookie func(http.ResponseWriter)
}

// LogoutDependencies are what the endpoint calls. SessionCookie reads the
// browser's sign-in session cookie ("" when none), ClearSessionCookie
// clears it; either may be nil while there are no sign-in sessions.
type LogoutDependencies struct {
	Logout             *logout.Service
	Logger             *slog.Logger
	SessionCookie      func(*http.Request) string
	ClearSessionCookie func(http.ResponseWriter)
}

// NewLogout returns the logout endpoint's handler; cfg is the sign-in
// page's (its CSRF cookie is the same).
func NewLogout(cfg Config, deps LogoutDependencies) *LogoutHandler {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.SessionCookie == nil {
		deps.SessionCookie = func(*http.Request) string { return "" }
	}
	if deps.ClearSessionCookie == nil {
		deps.ClearSessionCookie = func(http.ResponseWriter) {}
	}
	return &LogoutHandler{logout: deps.Logout, logger: deps.Logger, page: &Handler{logger: deps.Logger, httpsOnly: cfg.HTTPSOnly},
		sessionCookie: deps.SessionCookie, clearSessionCookie: deps.ClearSessionCookie}
}

// Register adds the endpoint to mux.
func (h *LogoutHandler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+LogoutPath, h.serve)
	mux.HandleFunc("POST "+LogoutPath, h.serve)
}

// logoutParameters are the request's parameters (§2); the confirmation
// form carries them again.
var logoutParameters = []string{"id_token_hint", "client_id", "post_logout_redirect_uri", "state", "logout_hint", "ui_locales"}

type logoutView struct {
	Problem   string
	Confirm   bool
	ClientID  string
	CSRFToken string
	Hidden    []hiddenField
}

func (h *LogoutHandler) serve(w http.ResponseWriter, r *http.Request) {
	values := r.URL.Query()
	confirmed := false
	if r.Method == http.MethodPost {
		// §2: a POST is form-encoded; its parameters are the body's.
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			message := "the form could not be read"
			if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
				message = fmt.Sprintf("the form is larger than %d KiB", maxFormBytes>>10)
			}
			h.problem(w, chiterr.New(chiterr.InvalidArgument, "%s", message))
			return
		}
		values = r.PostForm
		if values.Get("confirm") != "" {
			// The person's own answer on Chit's page, never a relying
			// party's: another site can neither read nor set the cookie.
			if !h.page.validCSRF(r) {
				h.problem(w, chiterr.New(chiterr.PermissionDenied, "the form has expired or did not come from this page; sign out again from the application"))
				return
			}
			confirmed = true
		}
	}
	for _, name := range logoutParameters {
		if len(values[name]) > 1 {
			h.problem(w, chiterr.New(chiterr.InvalidArgument, "%s is given more than once", name))
			return
		}
	}
	outcome, err := h.logout.Logout(r.Context(), logout.Request{
		IDTokenHint: values.Get("id_token_hint"), ClientID: values.Get("client_id"), PostLogoutRedirectURI: values.Get("post_logout_redirect_uri"),
		State: values.Get("state"), LogoutHint: values.Get("logout_hint"), UILocales: values.Get("ui_locales"),
		SessionCookie: h.sessionCookie(r), Confirmed: confirmed,
	})
	if err != nil {
		h.problem(w, err)
		return
	}
	if outcome.ClearCookie {
		h.clearSessionCookie(w)
	}
	if outcome.NeedsConfirmation {
		token, err := h.page.newCSRFToken(w, r.TLS != nil)
		if err != nil {
			h.problem(w, err)
			return
		}
		view := logoutView{Confirm: true, ClientID: outcome.ClientID, CSRFToken: token}
		for _, name := range logoutParameters {
			if value := outcome.Confirm.Get(name); value != "" {
				view.Hidden = append(view.Hidden, hiddenField{Name: name, Value: value})
			}
		}
		// The form's answer redirects to the checked post-logout URI, which
		// form-action must allow.
		h.render(w, http.StatusOK, values.Get("post_logout_redirect_uri"), view)
		return
	}
	if outcome.RedirectURI != "" {
		h.page.securityHeaders(w, outcome.RedirectURI)
		http.Redirect(w, r, outcome.RedirectURI, http.StatusSeeOther)
		return
	}
	h.render(w, http.StatusOK, "", logoutView{})
}

// problem shows an error page: a refused logout is never redirected, since
// the redirect URI may be what is wrong.
func (h *LogoutHandler) problem(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	message := chiterr.PublicMessage(err)
	switch chiterr.KindOf(err) {
	case chiterr.InvalidArgument:
	case chiterr.PermissionDenied:
		status = http.StatusForbidden
	case chiterr.Unavailable:
		h.logger.Error("logout", "error", err)
		status, message = http.StatusServiceUnavailable, "Signing out is unavailable for a moment. Try again shortly."
		retryAfter(w, err)
	default:
		h.logger.Error("logout", "error", err)
		status, message = http.StatusInternalServerError, "Signing out failed. Try again shortly."
	}
	h.render(w, status, "", logoutView{Problem: message})
}

func (h *LogoutHandler) render(w http.ResponseWriter, status int, redirectURI string, v logoutView) {
	h.page.securityHeaders(w, redirectURI)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := logoutPage.Execute(w, v); err != nil {
		h.logger.Error("render logout page", "error", err)
	}
}
