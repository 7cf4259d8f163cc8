package oauth2http_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/lestrrat-go/jwx/v2/jws"
	"golang.org/x/oauth2"
	"google.golang.org/grpc/codes"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/logout"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
	signinsessions "github.com/chit-auth/chit/internal/sessions"
	"github.com/chit-auth/chit/internal/storage"
)

// testSessions stands for the sign-in sessions: one live session, named
// by the cookie test_session=live.
type testSessions struct {
	mu    sync.Mutex
	live  map[string]logout.Session
	ended []string
}

func (s *testSessions) Resume(_ context.Context, cookie string) (logout.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if session, ok := s.live[cookie]; ok {
		return session, nil
	}
	return logout.Session{}, chiterr.New(chiterr.Unauthenticated, "no session")
}

func (s *testSessions) End(_ context.Context, id string) (logout.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for cookie, session := range s.live {
		if session.ID == id {
			delete(s.live, cookie)
			s.ended = append(s.ended, id)
			return session, nil
		}
	}
	return logout.Session{}, chiterr.New(chiterr.NotFound, "no session")
}

const testSessionCookie = "test_session"

func withTestSessions(sessions *testSessions) func(*server.Config) {
	return func(cfg *server.Config) {
		// The sign-in page keeps no sessions of its own: the ID tokens
		// carry no sid, and the fake's session is the browser's.
		cfg.Sessions = signinsessions.Config{}
		cfg.Logout = server.LogoutSessions{
			Sessions: sessions,
			Cookie: func(r *http.Request) string {
				cookie, err := r.Cookie(testSessionCookie)
				if err != nil {
					return ""
				}
				return cookie.Value
			},
			Clear: func(w http.ResponseWriter) {
				http.SetCookie(w, &http.Cookie{Name: testSessionCookie, Value: "", Path: "/", MaxAge: -1})
			},
		}
	}
}

// RP-initiated logout end to end: the ID token of a code flow as hint, the
// registered post_logout_redirect_uri with state, the session ended, the
// refresh tokens of the client that asks for it refused after (over
// /oauth2/token, and its access token over gRPC and REST CheckToken), the
// other client's kept, and a back-channel logout token that go-oidc
// verifies against Chit's JWKS.
func TestRPInitiatedLogout(t *testing.T) {
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			sessions := &testSessions{live: map[string]logout.Session{
				"live": {ID: "sid-1", Subject: servertest.UserName, ClientIDs: []string{"web", "other"}},
			}}
			e := servertest.StartOn(t, backend, withTestSessions(sessions))
			var receivedMu sync.Mutex
			var received []string
			receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if err := r.ParseForm(); err == nil {
					receivedMu.Lock()
					received = append(received, r.PostForm.Get("logout_token"))
					receivedMu.Unlock()
				}
				w.WriteHeader(http.StatusOK)
			}))
			t.Cleanup(receiver.Close)

			ctx := context.Background()
			const redirect = "http://127.0.0.1:43120/callback"
			grants := storage.Grants{AllowedScopes: []string{"openid", "offline_access"}}
			e.CreateClient(t, "web", []string{redirect}, false, grants)
			e.CreateClient(t, "other", []string{redirect}, false, grants)
			if err := e.Directory().SetClientLogout(ctx, "web", storage.ClientLogout{PostLogoutRedirectURIs: []string{"https://web.example/bye"},
				BackchannelLogoutURI: receiver.URL + "/backchannel", RevokesRefreshTokens: true}); err != nil {
				t.Fatal(err)
			}
			if err := e.Directory().SetClientLogout(ctx, "other", storage.ClientLogout{PostLogoutRedirectURIs: []string{"https://other.example/bye"}}); err != nil {
				t.Fatal(err)
			}
			oidcCtx, provider := discover(t, e)
			var endSession struct {
				EndSession     string `json:"end_session_endpoint"`
				Backchannel    bool   `json:"backchannel_logout_supported"`
				BackchannelSID bool   `json:"backchannel_logout_session_supported"`
			}
			if err := provider.Claims(&endSession); err != nil || endSession.EndSession != servertest.Issuer+"/oauth2/logout" || !endSession.Backchannel || !endSession.BackchannelSID {
				t.Fatalf("discovery: %+v, %v", endSession, err)
			}
			signIn := func(clientID string) *oauth2.Token {
				cfg := &oauth2.Config{ClientID: clientID, Endpoint: provider.Endpoint(), RedirectURL: redirect, Scopes: []string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess}}
				verifier := oauth2.GenerateVerifier()
				token, err := cfg.Exchange(oidcCtx, signInCode(t, e, cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier))), oauth2.VerifierOption(verifier))
				if err != nil {
					t.Fatal(err)
				}
				return token
			}
			web, other := signIn("web"), signIn("other")
			hint, _ := web.Extra("id_token").(string)

			browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			logoutRequest := func(query url.Values) *http.Response {
				req, _ := http.NewRequest(http.MethodGet, e.HTTPBase()+"/oauth2/logout?"+query.Encode(), nil)
				req.AddCookie(&http.Cookie{Name: testSessionCookie, Value: "live"})
				resp, err := browser.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp
			}
			// Refused, never redirected, and nothing ended: an unregistered
			// URI, another client's URI, a client_id that is not the hint's.
			for name, query := range map[string]url.Values{
				"unregistered":      {"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://evil.example/"}},
				"another client's":  {"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://other.example/bye"}},
				"client_id differs": {"id_token_hint": {hint}, "client_id": {"other"}, "post_logout_redirect_uri": {"https://other.example/bye"}},
				"no hint or client": {"post_logout_redirect_uri": {"https://web.example/bye"}},
				"forged hint":       {"id_token_hint": {hint[:len(hint)-4] + "AAAA"}, "post_logout_redirect_uri": {"https://web.example/bye"}},
			} {
				resp := logoutRequest(query)
				if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
					t.Fatalf("%s: %d, Location %q; want a 400 page", name, resp.StatusCode, resp.Header.Get("Location"))
				}
			}
			if len(sessions.ended) != 0 {
				t.Fatalf("refused logouts ended %v", sessions.ended)
			}

			resp := logoutRequest(url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://web.example/bye"}, "state": {"xyz"}})
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "https://web.example/bye?state=xyz" {
				t.Fatalf("logout: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			if cleared := resp.Header.Get("Set-Cookie"); !strings.HasPrefix(cleared, testSessionCookie+"=;") {
				t.Fatalf("the session cookie was not cleared: %q", cleared)
			}
			if strings.Join(sessions.ended, ",") != "sid-1" {
				t.Fatalf("ended %v, want sid-1", sessions.ended)
			}

			// web asked for its refresh tokens to go with the session.
			if resp, body := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {web.RefreshToken}, "client_id": {"web"}}, "", ""); resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_grant" {
				t.Fatalf("web's refresh after logout: %d %v, want invalid_grant", resp.StatusCode, body)
			}
			for name, tr := range servertest.Transports(e) {
				if _, code := tr.Check(t, web.AccessToken); code != codes.Unauthenticated {
					t.Fatalf("%s CheckToken of web's access token after logout: %v", name, code)
				}
				if _, code := tr.Check(t, other.AccessToken); code != codes.OK {
					t.Fatalf("%s CheckToken of other's access token after logout: %v", name, code)
				}
			}
			if resp, body := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {other.RefreshToken}, "client_id": {"other"}}, "", ""); resp.StatusCode != http.StatusOK {
				t.Fatalf("other's refresh after logout: %d %v; its client keeps its tokens", resp.StatusCode, body)
			}

			// The back-channel logout token reached web, and verifies.
			receivedMu.Lock()
			tokens := append([]string(nil), received...)
			receivedMu.Unlock()
			if len(tokens) != 1 {
				t.Fatalf("the receiver got %d logout tokens, want 1", len(tokens))
			}
			verified, err := provider.Verifier(&oidc.Config{ClientID: "web", Now: e.Clock.Now}).Verify(oidcCtx, tokens[0])
			if err != nil {
				t.Fatalf("go-oidc refuses the logout token: %v", err)
			}
			var claims struct {
				SID    string                    `json:"sid"`
				Events map[string]map[string]any `json:"events"`
				Nonce  *string                   `json:"nonce"`
			}
			if err := verified.Claims(&claims); err != nil || verified.Subject != servertest.UserName || claims.SID != "sid-1" || claims.Nonce != nil {
				t.Fatalf("logout token claims: sub %q %+v %v", verified.Subject, claims, err)
			}
			if _, ok := claims.Events[logout.BackchannelLogoutEvent]; !ok {
				t.Fatalf("events = %v", claims.Events)
			}
			message, err := jws.Parse([]byte(tokens[0]))
			if err != nil || message.Signatures()[0].ProtectedHeaders().Type() != "logout+jwt" {
				t.Fatalf("typ of the logout token: %v", err)
			}
		})
	}
}

// Without id_token_hint the person confirms on a form with the sign-in
// page's CSRF protection; a confirmation without the CSRF cookie ends
// nothing.
func TestLogoutConfirmation(t *testing.T) {
	sessions := &testSessions{live: map[string]logout.Session{"live": {ID: "sid-1", Subject: servertest.UserName}}}
	e := servertest.Start(t, withTestSessions(sessions))
	browser := servertest.NoRedirects(t, e)
	base, _ := url.Parse(e.HTTPBase())
	browser.Client.Jar.SetCookies(base, []*http.Cookie{{Name: testSessionCookie, Value: "live", Path: "/"}})
	page := browser.Open(t, e.HTTPBase()+"/oauth2/logout")
	if page.Status != http.StatusOK || !page.Contains("Sign out?") || len(sessions.ended) != 0 {
		t.Fatalf("logout without a hint: %d, ended %v: %s", page.Status, sessions.ended, page.Body)
	}
	// Forged: the same form posted without the CSRF cookie (another site's page).
	forged, _ := http.NewRequest(http.MethodPost, e.HTTPBase()+"/oauth2/logout", strings.NewReader(url.Values{"confirm": {"yes"}, "csrf_token": {"guess"}}.Encode()))
	forged.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	forged.AddCookie(&http.Cookie{Name: testSessionCookie, Value: "live"})
	resp, err := http.DefaultClient.Do(forged)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(sessions.ended) != 0 {
		t.Fatalf("a forged confirmation: %d, ended %v", resp.StatusCode, sessions.ended)
	}
	done := browser.Submit(t, page, url.Values{"confirm": {"yes"}})
	body := servertest.ReadPage(t, done)
	if done.StatusCode != http.StatusOK || !body.Contains("You are signed out") || strings.Join(sessions.ended, ",") != "sid-1" {
		t.Fatalf("confirmed: %d, ended %v: %s", done.StatusCode, sessions.ended, body.Body)
	}
}

// Without a session there is nothing to end: the signed-out page, framed
// by nobody and cached by nobody; a repeated parameter is refused.
func TestLogoutWithoutASession(t *testing.T) {
	e := servertest.Start(t)
	status, body := servertest.Get(t, e.HTTPBase()+"/oauth2/logout")
	if status != http.StatusOK || !strings.Contains(body, "You are signed out") {
		t.Fatalf("logout without a session: %d %s", status, body)
	}
	resp, err := http.Get(e.HTTPBase() + "/oauth2/logout?client_id=a&client_id=b")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Cache-Control") != "no-store" ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("a repeated client_id: %d %v", resp.StatusCode, resp.Header)
	}
}
