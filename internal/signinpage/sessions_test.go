package signinpage_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/grpc/codes"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/sessions"
	"github.com/chit-auth/chit/internal/signinpage"
	"github.com/chit-auth/chit/internal/storage"
)

const (
	secureSessionCookie = "__Host-chit_session"
	reportsRedirect     = "https://reports.example.com/callback"
)

// ssoBrowser is one browser profile: its cookies carry the session from
// one client's sign-in to the next.
type ssoBrowser struct {
	*servertest.Browser
	e *servertest.Env
}

func newSSOBrowser(t *testing.T, e *servertest.Env) ssoBrowser {
	return ssoBrowser{Browser: servertest.NoRedirects(t, e), e: e}
}

// authorize fetches the authorization endpoint for client with extra
// parameters, returning the page and the redirect (nil when the page
// answered itself).
func (b ssoBrowser) authorize(t *testing.T, client, redirect string, extra url.Values) (servertest.Page, *url.URL, string) {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	query := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect}, "scope": {"openid"},
		"state": {"st"}, "code_challenge": {authorize.ChallengeFor(verifier)}, "code_challenge_method": {"S256"}}
	if client == authorize.CLIClientID {
		query.Set("scope", "openid offline_access")
	}
	for name, values := range extra {
		query[name] = values
	}
	page := b.Open(t, b.e.HTTPBase()+authorize.PagePath+"?"+query.Encode())
	location, _ := url.Parse(page.Header.Get("Location"))
	if page.Header.Get("Location") == "" {
		location = nil
	}
	return page, location, verifier
}

// signIn submits the form page shows and returns the redirect and the
// session cookie it set.
func (b ssoBrowser) signIn(t *testing.T, page servertest.Page) (*url.URL, *http.Cookie) {
	t.Helper()
	if page.Status != http.StatusOK || page.Fields.Get("csrf_token") == "" {
		t.Fatalf("want the form, got HTTP %d: %s", page.Status, page.Body)
	}
	resp := b.Submit(t, page, url.Values{"username": {servertest.UserName}, "password": {servertest.UserPassword}, "action": {"sign-in"}})
	resp.Body.Close()
	location, err := resp.Location()
	if err != nil {
		t.Fatalf("sign-in answered %d without a redirect", resp.StatusCode)
	}
	var session *http.Cookie
	for _, cookie := range resp.Cookies() {
		if strings.HasSuffix(cookie.Name, "chit_session") {
			session = cookie
		}
	}
	return location, session
}

func exchange(t *testing.T, e *servertest.Env, cfg *oauth2.Config, code, verifier string) *oauth2.Token {
	t.Helper()
	token, err := cfg.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return token
}

// wantCode checks a redirect to redirect carrying a code, and returns it.
func wantCode(t *testing.T, page servertest.Page, location *url.URL, redirect string) string {
	t.Helper()
	if page.Status != http.StatusSeeOther || location == nil || !strings.HasPrefix(location.String(), redirect+"?") || location.Query().Get("code") == "" {
		t.Fatalf("want a code at %s: HTTP %d, Location %v: %s", redirect, page.Status, location, page.Body)
	}
	if location.Query().Get("iss") != servertest.Issuer || location.Query().Get("state") != "st" {
		t.Fatalf("the code's response %v lacks iss or state", location)
	}
	return location.Query().Get("code")
}

func wantForm(t *testing.T, what string, page servertest.Page, location *url.URL) {
	t.Helper()
	if page.Status != http.StatusOK || location != nil || page.Fields.Get("csrf_token") == "" {
		t.Fatalf("%s: want the form, got HTTP %d, Location %v", what, page.Status, location)
	}
}

func wantError(t *testing.T, what string, page servertest.Page, location *url.URL, redirect, code string) {
	t.Helper()
	if page.Status != http.StatusSeeOther || location == nil || !strings.HasPrefix(location.String(), redirect+"?") ||
		location.Query().Get("error") != code || location.Query().Has("code") {
		t.Fatalf("%s: want %s at %s, got HTTP %d, Location %v", what, code, redirect, page.Status, location)
	}
}

// A second client in the same browser signs in without the form: the code
// is the session's person's, its ID token carries the first sign-in's
// auth_time and the session's sid; prompt, max_age and Chit's CLI decide
// when the form is shown again.
func TestSecondClientSignsInWithoutTheForm(t *testing.T) {
	t.Parallel()
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := servertest.StartOn(t, backend)
			parties := registerRelyingParties(t, e)
			web := &oauth2.Config{ClientID: "web", ClientSecret: parties.webSecret, Endpoint: xoauth2Endpoint(e), RedirectURL: webRedirect}
			spa := &oauth2.Config{ClientID: "spa", Endpoint: xoauth2Endpoint(e), RedirectURL: spaRedirect}
			spa.Endpoint.AuthStyle = oauth2.AuthStyleInParams
			b := newSSOBrowser(t, e)

			page, _, verifier := b.authorize(t, "web", webRedirect, nil)
			location, cookie := b.signIn(t, page)
			if cookie == nil || cookie.Name != secureSessionCookie || !cookie.Secure || !cookie.HttpOnly || cookie.Path != "/" ||
				cookie.SameSite != http.SameSiteLaxMode || cookie.Domain != "" || cookie.Expires.IsZero() {
				t.Fatalf("session cookie %+v; want __Host-chit_session, Secure, HttpOnly, Path=/, SameSite=Lax, no Domain", cookie)
			}
			signedInAt := e.Clock.Now()
			first := verifyIDToken(t, e, exchange(t, e, web, location.Query().Get("code"), verifier).Extra("id_token").(string))
			sid, _ := first.Get("sid")
			if sid == nil || sid == "" || !strings.HasPrefix(cookie.Value, sid.(string)+".") {
				t.Fatalf("the first ID token's sid %v is not the session's", sid)
			}
			if amr, _ := first.Get("amr"); !slices.Equal(toStrings(amr), []string{"pwd"}) {
				t.Fatalf("amr %v", amr)
			}

			e.Clock.Advance(10 * time.Minute)
			page, location, verifier = b.authorize(t, "spa", spaRedirect, nil)
			second := verifyIDToken(t, e, exchange(t, e, spa, wantCode(t, page, location, spaRedirect), verifier).Extra("id_token").(string))
			authTime, _ := second.Get("auth_time")
			if second.Subject() != servertest.UserName || second.Audience()[0] != "spa" {
				t.Fatalf("the second ID token: sub %q aud %v", second.Subject(), second.Audience())
			}
			if at, ok := authTime.(float64); !ok || int64(at) != signedInAt.Unix() {
				t.Fatalf("auth_time %v; want the first sign-in's %d", authTime, signedInAt.Unix())
			}
			if secondSID, _ := second.Get("sid"); secondSID != sid {
				t.Fatalf("the second ID token's sid %v, want %v", secondSID, sid)
			}

			// prompt=none answers with the session too.
			page, location, _ = b.authorize(t, "spa", spaRedirect, url.Values{"prompt": {"none"}})
			wantCode(t, page, location, spaRedirect)
			// A max_age the sign-in is within answers; a shorter one shows
			// the form, or answers login_required to prompt=none.
			page, location, _ = b.authorize(t, "spa", spaRedirect, url.Values{"max_age": {"3600"}})
			wantCode(t, page, location, spaRedirect)
			page, location, _ = b.authorize(t, "spa", spaRedirect, url.Values{"max_age": {"0"}})
			wantForm(t, "max_age=0", page, location)
			page, location, _ = b.authorize(t, "spa", spaRedirect, url.Values{"max_age": {"60"}, "prompt": {"none"}})
			wantError(t, "max_age=60 prompt=none", page, location, spaRedirect, "login_required")
			for _, prompt := range []string{"login", "consent", "select_account"} {
				page, location, _ = b.authorize(t, "spa", spaRedirect, url.Values{"prompt": {prompt}})
				wantForm(t, "prompt="+prompt, page, location)
			}
			// Chit's CLI always types the password: commands that need a
			// recent sign-in refuse an old auth_time.
			page, location, _ = b.authorize(t, authorize.CLIClientID, servertest.Loopback, nil)
			wantForm(t, "the CLI", page, location)
			page, location, _ = b.authorize(t, authorize.CLIClientID, servertest.Loopback, url.Values{"prompt": {"none"}})
			wantError(t, "the CLI with prompt=none", page, location, servertest.Loopback, "login_required")

			// The session lists both clients.
			listed, err := e.Store.ListSessions(context.Background(), servertest.UserName, e.Clock.Now(), storage.Page{})
			if err != nil || len(listed) != 1 || !slices.Equal(listed[0].ClientIDs, []string{"web", "spa"}) {
				t.Fatalf("sessions %+v, %v", listed, err)
			}

			// prompt=login signs in again and replaces the session: the old
			// cookie resumes nothing.
			page, _, verifier = b.authorize(t, "spa", spaRedirect, url.Values{"prompt": {"login"}})
			location, renewed := b.signIn(t, page)
			if renewed == nil || renewed.Value == cookie.Value {
				t.Fatalf("prompt=login kept the session cookie %+v", renewed)
			}
			fresh := verifyIDToken(t, e, exchange(t, e, spa, location.Query().Get("code"), verifier).Extra("id_token").(string))
			if at, _ := fresh.Get("auth_time"); int64(at.(float64)) != e.Clock.Now().Unix() {
				t.Fatalf("after prompt=login auth_time %v, want now", at)
			}
			old := cookieBrowser(t, e, secureSessionCookie, cookie.Value)
			page, location, _ = old.authorize(t, "spa", spaRedirect, nil)
			wantForm(t, "the replaced session's cookie", page, location)
			page, location, _ = b.authorize(t, "web", webRedirect, nil)
			wantCode(t, page, location, webRedirect)
		})
	}
}

func toStrings(value any) []string {
	var out []string
	items, _ := value.([]any)
	for _, item := range items {
		s, _ := item.(string)
		out = append(out, s)
	}
	return out
}

// cookieBrowser is a browser that holds only the session cookie name=value.
func cookieBrowser(t *testing.T, e *servertest.Env, name, value string) ssoBrowser {
	t.Helper()
	b := newSSOBrowser(t, e)
	base, _ := url.Parse(e.HTTPBase() + "/")
	b.Client.Jar.SetCookies(base, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
	return b
}

// A session cookie that is not exactly a live session's signs nobody in:
// the form is shown (prompt=none hears login_required), never a code,
// never a 5xx.
func TestSessionCookieAttacks(t *testing.T) {
	t.Parallel()
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := servertest.StartOn(t, backend)
			registerRelyingParties(t, e)
			admins := servertest.NewAdminCallers(t, e, servertest.Transports(e)["gRPC"])
			start := func(t *testing.T) string {
				t.Helper()
				b := newSSOBrowser(t, e)
				page, _, _ := b.authorize(t, "web", webRedirect, nil)
				_, cookie := b.signIn(t, page)
				if cookie == nil {
					t.Fatal("no session cookie")
				}
				return cookie.Value
			}
			refused := func(t *testing.T, what, value string) {
				t.Helper()
				b := cookieBrowser(t, e, secureSessionCookie, value)
				page, location, _ := b.authorize(t, "spa", spaRedirect, nil)
				wantForm(t, what, page, location)
				page, location, _ = b.authorize(t, "spa", spaRedirect, url.Values{"prompt": {"none"}})
				wantError(t, what+", prompt=none", page, location, spaRedirect, "login_required")
			}
			value := start(t)
			id, secret, _ := strings.Cut(value, ".")
			wrong := "A" + secret[1:]
			if wrong == secret {
				wrong = "B" + secret[1:]
			}
			for name, tampered := range map[string]string{
				"a wrong secret":    id + "." + wrong,
				"garbage":           "garbage",
				"oversize":          value + strings.Repeat("A", 3000),
				"the id alone":      id,
				"another id":        strings.Repeat("A", 22) + "." + secret,
				"quotes and commas": `"` + id + `,` + secret + `"`,
			} {
				t.Run(name, func(t *testing.T) { refused(t, name, tampered) })
			}
			// The real cookie still works after the attempts.
			b := cookieBrowser(t, e, secureSessionCookie, value)
			page, location, _ := b.authorize(t, "spa", spaRedirect, nil)
			wantCode(t, page, location, spaRedirect)
			// Only the https cookie's name counts on an https issuer.
			refusedName := cookieBrowser(t, e, "chit_session", value)
			page, location, _ = refusedName.authorize(t, "spa", spaRedirect, nil)
			wantForm(t, "the http fallback's name on an https issuer", page, location)

			t.Run("replayed after it ended", func(t *testing.T) {
				value := start(t)
				id, _, _ := strings.Cut(value, ".")
				var ended adminv1.EndSessionsResponse
				c := servertest.Transports(e)["REST"].Invoke(t, adminv1.AdminService_EndSessions_FullMethodName, admins.Admin,
					&adminv1.EndSessionsRequest{Name: servertest.UserName, SessionId: id}, &ended)
				servertest.WantCode(t, "EndSessions", c, codes.OK)
				if ended.GetEnded() != 1 {
					t.Fatalf("ended %d", ended.GetEnded())
				}
				refused(t, "an ended session", value)
			})
			t.Run("after the person's logins were ended (as a password change does)", func(t *testing.T) {
				value := start(t)
				e.Clock.Advance(time.Second)
				c := servertest.Transports(e)["gRPC"].Invoke(t, adminv1.AdminService_RevokeLogins_FullMethodName, admins.Admin,
					&adminv1.RevokeLoginsRequest{Subject: servertest.UserName}, &adminv1.RevokeLoginsResponse{})
				servertest.WantCode(t, "RevokeLogins", c, codes.OK)
				refused(t, "a session cut off by a subject revocation", value)
				// Signing in again starts a session that works.
				e.Clock.Advance(time.Second)
				fresh := cookieBrowser(t, e, secureSessionCookie, start(t))
				page, location, _ := fresh.authorize(t, "spa", spaRedirect, nil)
				wantCode(t, page, location, spaRedirect)
			})
			t.Run("from a deleted user", func(t *testing.T) {
				value := start(t)
				c := servertest.Transports(e)["gRPC"].Invoke(t, adminv1.AdminService_DeleteUser_FullMethodName, admins.Admin,
					&adminv1.DeleteUserRequest{Name: servertest.UserName}, &adminv1.DeleteUserResponse{})
				servertest.WantCode(t, "DeleteUser", c, codes.OK)
				refused(t, "a deleted user's session", value)
			})
		})
	}
}

// max_age that is not a non-negative integer, or is repeated, is
// invalid_request at a registered redirect URI, and stays on the page
// otherwise; never a 5xx.
func TestMaxAgeIsValidated(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	registerRelyingParties(t, e)
	b := newSSOBrowser(t, e)
	for _, tc := range []struct {
		name  string
		extra url.Values
	}{
		{"max_age=-1", url.Values{"max_age": {"-1"}}},
		{"max_age=abc", url.Values{"max_age": {"abc"}}},
		{"max_age=1e3", url.Values{"max_age": {"1e3"}}},
		{"max_age repeated", url.Values{"max_age": {"1", "1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, location, _ := b.authorize(t, "spa", spaRedirect, tc.extra)
			wantError(t, tc.name, page, location, spaRedirect, "invalid_request")
			if location.Query().Get("state") != "st" || location.Query().Get("iss") != servertest.Issuer {
				t.Fatalf("the refusal %v lacks state or iss", location)
			}
			unregistered := url.Values{"redirect_uri": {"https://evil.example/cb"}}
			for name, values := range tc.extra {
				unregistered[name] = values
			}
			page, location, _ = b.authorize(t, "spa", spaRedirect, unregistered)
			if page.Status != http.StatusBadRequest || location != nil {
				t.Fatalf("with an unregistered redirect: HTTP %d, Location %v", page.Status, location)
			}
		})
	}
}

// --session-lifetime 0: nothing is stored, no cookie is set, the form is
// always shown and prompt=none is login_required.
func TestDisabledSessionsAlwaysShowTheForm(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t, func(cfg *server.Config) { cfg.Sessions = sessions.Config{} })
	registerRelyingParties(t, e)
	b := newSSOBrowser(t, e)
	page, _, _ := b.authorize(t, "web", webRedirect, nil)
	if _, cookie := b.signIn(t, page); cookie != nil {
		t.Fatalf("a session cookie with sessions disabled: %+v", cookie)
	}
	page, location, _ := b.authorize(t, "spa", spaRedirect, nil)
	wantForm(t, "the second client", page, location)
	page, location, _ = b.authorize(t, "spa", spaRedirect, url.Values{"prompt": {"none"}})
	wantError(t, "prompt=none", page, location, spaRedirect, "login_required")
	if listed, err := e.Store.ListSessions(context.Background(), servertest.UserName, e.Clock.Now(), storage.Page{}); err != nil || len(listed) != 0 {
		t.Fatalf("stored sessions %+v, %v", listed, err)
	}
}

// On an http issuer (make run's) the cookie cannot be __Host-: it is
// chit_session, for /oauth2/ only, and still carries the session.
func TestSessionCookieOnAnHTTPIssuer(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t, func(cfg *server.Config) { cfg.SignIn.BaseURL = "http://chit.test" })
	registerRelyingParties(t, e)
	b := newSSOBrowser(t, e)
	page, _, _ := b.authorize(t, "web", webRedirect, nil)
	_, cookie := b.signIn(t, page)
	if cookie == nil || cookie.Name != "chit_session" || cookie.Secure || !cookie.HttpOnly || cookie.Path != "/oauth2/" || cookie.SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie %+v; want chit_session, HttpOnly, Path=/oauth2/, SameSite=Lax", cookie)
	}
	page, location, _ := b.authorize(t, "spa", spaRedirect, nil)
	wantCode(t, page, location, spaRedirect)
}

// The helpers logout uses read and clear the cookie of the issuer's kind.
func TestSessionCookieHelpers(t *testing.T) {
	for _, httpsOnly := range []bool{true, false} {
		name := map[bool]string{true: secureSessionCookie, false: "chit_session"}[httpsOnly]
		r, _ := http.NewRequest(http.MethodGet, "/oauth2/logout", nil)
		r.AddCookie(&http.Cookie{Name: name, Value: "v"})
		if got := signinpage.SessionCookieValue(r, httpsOnly); got != "v" {
			t.Errorf("httpsOnly %v: SessionCookieValue = %q", httpsOnly, got)
		}
		if got := signinpage.SessionCookieValue(r, !httpsOnly); got != "" {
			t.Errorf("httpsOnly %v: the other kind's cookie was read: %q", !httpsOnly, got)
		}
		w := &headerRecorder{header: http.Header{}}
		signinpage.ClearSessionCookie(w, httpsOnly)
		cleared, err := http.ParseSetCookie(w.header.Get("Set-Cookie"))
		if err != nil || cleared.Name != name || cleared.MaxAge >= 0 || cleared.Value != "" || cleared.Secure != httpsOnly {
			t.Errorf("httpsOnly %v: ClearSessionCookie wrote %q (%v)", httpsOnly, w.header.Get("Set-Cookie"), err)
		}
	}
}

type headerRecorder struct{ header http.Header }

func (h *headerRecorder) Header() http.Header         { return h.header }
func (h *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerRecorder) WriteHeader(int)             {}

// A session started through one replica answers another, and ends on every
// replica as soon as it is ended through one: by EndSessions, by a
// revocation of the person's tokens (RevokeLogins, as a role change or a
// narrower grant records), or by deleting the person. On PostgreSQL.
func TestSessionsEndOnEveryReplica(t *testing.T) {
	t.Parallel()
	for name, end := range map[string]func(t *testing.T, tr servertest.Transport, admin string) codes.Code{
		"EndSessions": func(t *testing.T, tr servertest.Transport, admin string) codes.Code {
			return tr.Invoke(t, adminv1.AdminService_EndSessions_FullMethodName, admin, &adminv1.EndSessionsRequest{Name: servertest.UserName}, &adminv1.EndSessionsResponse{})
		},
		"RevokeLogins": func(t *testing.T, tr servertest.Transport, admin string) codes.Code {
			return tr.Invoke(t, adminv1.AdminService_RevokeLogins_FullMethodName, admin, &adminv1.RevokeLoginsRequest{Subject: servertest.UserName}, &adminv1.RevokeLoginsResponse{})
		},
		"DeleteUser": func(t *testing.T, tr servertest.Transport, admin string) codes.Code {
			return tr.Invoke(t, adminv1.AdminService_DeleteUser_FullMethodName, admin, &adminv1.DeleteUserRequest{Name: servertest.UserName}, &adminv1.DeleteUserResponse{})
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			primary := servertest.StartOn(t, servertest.Postgres)
			replica := primary.StartReplica(t)
			registerRelyingParties(t, primary)
			onPrimary, onReplica := newSSOBrowser(t, primary), newSSOBrowser(t, replica)
			page, _, _ := onPrimary.authorize(t, "web", webRedirect, nil)
			_, cookie := onPrimary.signIn(t, page)
			if cookie == nil {
				t.Fatal("no session cookie")
			}
			replicaURL, _ := url.Parse(replica.HTTPBase() + "/")
			onReplica.Client.Jar.SetCookies(replicaURL, []*http.Cookie{{Name: cookie.Name, Value: cookie.Value, Path: "/"}})
			page, location, _ := onReplica.authorize(t, "spa", spaRedirect, nil)
			wantCode(t, page, location, spaRedirect)

			tr := servertest.Transports(primary)["gRPC"]
			admin := servertest.NewAdminCallers(t, primary, tr).Admin
			servertest.WantCode(t, name, end(t, tr, admin), codes.OK)
			page, location, _ = onReplica.authorize(t, "spa", spaRedirect, url.Values{"prompt": {"none"}})
			wantError(t, "prompt=none on the replica after "+name, page, location, spaRedirect, "login_required")
			page, location, _ = onReplica.authorize(t, "spa", spaRedirect, nil)
			wantForm(t, "the replica after "+name, page, location)
		})
	}
}

// A session's answer that refuses the scopes asked (invalid_scope) does not
// record the client on the session: the person signed in to nothing
// through it, so a logout must send that client no logout token naming
// them (their sub and sid).
func TestRefusedSilentSignInRecordsNoClient(t *testing.T) {
	t.Parallel()
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := servertest.StartOn(t, backend)
			registerRelyingParties(t, e)
			// The client may carry reports:read; the person may not.
			e.RegisterClient(t, accounts.ClientRegistration{ID: "reports", RedirectURIs: []string{reportsRedirect},
				Grants: storage.Grants{AllowedScopes: []string{"openid", "reports:read"}}})
			b := newSSOBrowser(t, e)
			page, _, _ := b.authorize(t, "web", webRedirect, nil)
			b.signIn(t, page)

			for _, prompt := range []string{"", "none"} {
				extra := url.Values{"scope": {"openid reports:read"}}
				if prompt != "" {
					extra.Set("prompt", prompt)
				}
				page, location, _ := b.authorize(t, "reports", reportsRedirect, extra)
				wantError(t, "a scope the person may not have, prompt="+prompt, page, location, reportsRedirect, "invalid_scope")
			}
			listed, err := e.Store.ListSessions(context.Background(), servertest.UserName, e.Clock.Now(), storage.Page{})
			if err != nil || len(listed) != 1 || !slices.Equal(listed[0].ClientIDs, []string{"web"}) {
				t.Fatalf("sessions %+v, %v; want one listing only web", listed, err)
			}
		})
	}
}

// A code answered through a session that ends before the code is
// exchanged (a logout, an admin's EndSessions) is refused: the logout
// tokens have already gone out, and the client would otherwise start its
// own session for a sign-in session that no longer exists.
func TestCodeOfAnEndedSessionIsRefused(t *testing.T) {
	t.Parallel()
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := servertest.StartOn(t, backend)
			registerRelyingParties(t, e)
			spa := &oauth2.Config{ClientID: "spa", Endpoint: xoauth2Endpoint(e), RedirectURL: spaRedirect}
			spa.Endpoint.AuthStyle = oauth2.AuthStyleInParams
			b := newSSOBrowser(t, e)
			page, _, _ := b.authorize(t, "web", webRedirect, nil)
			b.signIn(t, page)

			page, location, verifier := b.authorize(t, "spa", spaRedirect, nil)
			code := wantCode(t, page, location, spaRedirect)
			if _, err := e.Store.EndSessions(context.Background(), servertest.UserName, e.Clock.Now()); err != nil {
				t.Fatal(err)
			}
			if token, err := spa.Exchange(context.Background(), code, oauth2.VerifierOption(verifier)); err == nil {
				t.Fatalf("the code of an ended session was exchanged: %+v", token)
			} else if !strings.Contains(err.Error(), "invalid_grant") {
				t.Fatalf("exchange: %v, want invalid_grant", err)
			}
		})
	}
}
