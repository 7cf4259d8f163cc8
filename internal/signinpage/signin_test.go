package signinpage_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"google.golang.org/grpc/codes"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

func TestCLILoginFlow(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		authorizeURL, c := servertest.GetAuthorizeURL(t, tr, servertest.AuthorizeRequest(servertest.NewVerifier(t), "openid offline_access"))
		servertest.WantCode(t, "GetAuthorizeUrl", c, codes.OK)
		u, _ := url.Parse(authorizeURL)
		q := u.Query()
		if u.Path != "/oauth2/authorize" || q.Get("client_id") != authorize.CLIClientID || q.Get("state") != "state-123" ||
			q.Get("redirect_uri") != servertest.Loopback || q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256" || q.Get("scope") != "openid offline_access" {
			t.Fatalf("authorize URL %s lacks a parameter", authorizeURL)
		}

		verifier := servertest.NewVerifier(t)
		token, c := servertest.LoginCli(t, tr, servertest.CodeFor(t, e, tr, verifier, "openid offline_access"), servertest.Loopback, verifier)
		servertest.WantCode(t, "LoginCli", c, codes.OK)
		if token.GetAccessToken() == "" || token.GetRefreshToken() == "" || token.GetIdToken() == "" ||
			token.GetExpiresIn() != 900 || token.GetScope() != "openid offline_access" || token.GetTokenType() != "Bearer" {
			t.Fatalf("AccessToken = %v", token)
		}
		idToken := verifyIDToken(t, e, token.GetIdToken())
		if idToken.Subject() != servertest.UserName || idToken.Audience()[0] != authorize.CLIClientID {
			t.Fatalf("ID token sub=%q aud=%v", idToken.Subject(), idToken.Audience())
		}
		if nonce, _ := idToken.Get("nonce"); nonce != "nonce-456" {
			t.Fatalf("ID token nonce %v", nonce)
		}

		refreshed, c := servertest.RefreshCli(t, tr, token.GetRefreshToken())
		servertest.WantCode(t, "RefreshCli", c, codes.OK)
		if refreshed.GetRefreshToken() == "" || refreshed.GetRefreshToken() == token.GetRefreshToken() || refreshed.GetTokenType() != "Bearer" {
			t.Fatalf("RefreshCli = %v", refreshed)
		}
		e.Clock.Advance(servertest.GracePeriod + time.Second)
		_, c = servertest.RefreshCli(t, tr, token.GetRefreshToken())
		servertest.WantCode(t, "RefreshCli with the rotated token after the grace period", c, codes.Unauthenticated)

		// Without offline_access there is a refresh token still (relying
		// parties such as kubelogin ask for openid alone and refresh);
		// without openid there is no ID token.
		verifier = servertest.NewVerifier(t)
		plain, c := servertest.LoginCli(t, tr, servertest.CodeFor(t, e, tr, verifier, "read"), servertest.Loopback, verifier)
		servertest.WantCode(t, "LoginCli without offline_access", c, codes.OK)
		if plain.GetRefreshToken() == "" || plain.IdToken != nil || plain.GetAccessToken() == "" {
			t.Fatalf("AccessToken = %v, want an access and a refresh token, no ID token", plain)
		}
	})
}

func verifyIDToken(t *testing.T, e *servertest.Env, raw string) jwt.Token {
	t.Helper()
	resp, err := http.Get(e.HTTPBase() + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	set, err := jwk.ParseReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwt.ParseString(raw, jwt.WithKeySet(set), jwt.WithValidate(true), jwt.WithIssuer(servertest.Issuer),
		jwt.WithClock(jwt.ClockFunc(e.Clock.Now)))
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	return token
}

func TestAuthorizationCodeRules(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		t.Run("reused code fails and revokes the first exchange's tokens", func(t *testing.T) {
			verifier := servertest.NewVerifier(t)
			code := servertest.CodeFor(t, e, tr, verifier, "offline_access")
			first, c := servertest.LoginCli(t, tr, code, servertest.Loopback, verifier)
			servertest.WantCode(t, "first LoginCli", c, codes.OK)
			_, c = servertest.LoginCli(t, tr, code, servertest.Loopback, verifier)
			servertest.WantCode(t, "second LoginCli", c, codes.Unauthenticated)
			_, c = servertest.RefreshCli(t, tr, first.GetRefreshToken())
			servertest.WantCode(t, "refresh token of a replayed code", c, codes.Unauthenticated)
			_, c = tr.Check(t, first.GetAccessToken())
			servertest.WantCode(t, "access token of a replayed code", c, codes.Unauthenticated)
		})
		t.Run("expired code", func(t *testing.T) {
			verifier := servertest.NewVerifier(t)
			code := servertest.CodeFor(t, e, tr, verifier, "")
			e.Clock.Advance(61 * time.Second)
			defer e.Clock.Advance(-61 * time.Second)
			_, c := servertest.LoginCli(t, tr, code, servertest.Loopback, verifier)
			servertest.WantCode(t, "LoginCli after 61s", c, codes.Unauthenticated)
		})
		for _, tc := range []struct {
			name, verifier, redirect string
			want                     codes.Code
		}{
			{"wrong verifier", "", servertest.Loopback, codes.Unauthenticated},
			{"missing verifier", "-", servertest.Loopback, codes.Unauthenticated},
			{"other redirect uri", "=", "http://127.0.0.1:43111/callback", codes.Unauthenticated},
			{"missing redirect uri", "=", "", codes.InvalidArgument},
		} {
			t.Run(tc.name, func(t *testing.T) {
				verifier := servertest.NewVerifier(t)
				code := servertest.CodeFor(t, e, tr, verifier, "")
				switch tc.verifier {
				case "":
					verifier = servertest.NewVerifier(t)
				case "-":
					verifier = ""
				}
				_, c := servertest.LoginCli(t, tr, code, tc.redirect, verifier)
				servertest.WantCode(t, "LoginCli", c, tc.want)
			})
		}
		t.Run("unknown code", func(t *testing.T) {
			_, c := servertest.LoginCli(t, tr, "made-up", servertest.Loopback, servertest.NewVerifier(t))
			servertest.WantCode(t, "LoginCli", c, codes.Unauthenticated)
		})
	})
}

func TestAuthorizeRequestRules(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		verifier := servertest.NewVerifier(t)
		for _, tc := range []struct {
			name   string
			mutate func(*authv1.GetAuthorizeUrlRequest)
			// redirected says the page sends the error to the (valid)
			// redirect URI rather than showing it (RFC 6749 §4.1.2.1).
			redirected bool
		}{
			{"plain PKCE method", func(r *authv1.GetAuthorizeUrlRequest) { r.CodeChallengeMethod = "plain"; r.CodeChallenge = verifier }, true},
			{"no PKCE while mandatory", func(r *authv1.GetAuthorizeUrlRequest) { r.CodeChallenge, r.CodeChallengeMethod = "", "" }, true},
			{"no PKCE and no state", func(r *authv1.GetAuthorizeUrlRequest) { r.CodeChallenge, r.CodeChallengeMethod, r.State = "", "", "" }, true},
			{"another host", func(r *authv1.GetAuthorizeUrlRequest) { r.RedirectUri = "http://evil.example/callback" }, false},
			{"userinfo trick", func(r *authv1.GetAuthorizeUrlRequest) { r.RedirectUri = "http://127.0.0.1@evil.example/" }, false},
			{"userinfo on loopback", func(r *authv1.GetAuthorizeUrlRequest) { r.RedirectUri = "http://evil.example@127.0.0.1:5000/" }, false},
			{"loopback-looking host", func(r *authv1.GetAuthorizeUrlRequest) { r.RedirectUri = "http://127.0.0.1.evil.example/cb" }, false},
			{"localhost name", func(r *authv1.GetAuthorizeUrlRequest) { r.RedirectUri = "http://localhost:5000/cb" }, false},
			{"https loopback", func(r *authv1.GetAuthorizeUrlRequest) { r.RedirectUri = "https://127.0.0.1:5000/cb" }, false},
			{"fragment", func(r *authv1.GetAuthorizeUrlRequest) { r.RedirectUri = servertest.Loopback + "#x" }, false},
			{"unregistered client", func(r *authv1.GetAuthorizeUrlRequest) { r.ClientId = "dashboard" }, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req := servertest.AuthorizeRequest(verifier, "")
				tc.mutate(req)
				_, c := servertest.GetAuthorizeURL(t, tr, req)
				servertest.WantCode(t, "GetAuthorizeUrl", c, codes.InvalidArgument)
				// The page refuses the same request: on the page when the
				// client or redirect URI is what is wrong, never redirecting.
				query := servertest.QueryOf(t, req)
				query.Set("response_type", "code")
				resp, err := servertest.NoRedirects(t, e).Client.Get(e.HTTPBase() + "/oauth2/authorize?" + query.Encode())
				if err != nil {
					t.Fatal(err)
				}
				page := servertest.ReadPage(t, resp)
				if !tc.redirected {
					if page.Status != http.StatusBadRequest || page.Header.Get("Location") != "" || !page.Contains("cannot be used") {
						t.Fatalf("page answered %d, Location %q", page.Status, page.Header.Get("Location"))
					}
					return
				}
				location, _ := resp.Location()
				if page.Status != http.StatusSeeOther || location == nil || !strings.HasPrefix(location.String(), servertest.Loopback+"?") ||
					location.Query().Get("error") != "invalid_request" || location.Query().Get("state") != req.GetState() ||
					location.Query().Get("iss") != servertest.Issuer || location.Query().Has("code") {
					t.Fatalf("page answered %d, Location %v", page.Status, location)
				}
			})
		}
		req := servertest.AuthorizeRequest(verifier, "")
		req.RedirectUri = "http://[::1]:5000/cb"
		_, c := servertest.GetAuthorizeURL(t, tr, req)
		servertest.WantCode(t, "IPv6 loopback redirect", c, codes.OK)
		// PKCE stands in for state (RFC 9700 §2.1.1).
		req = servertest.AuthorizeRequest(verifier, "")
		req.State = ""
		authorizeURL, c := servertest.GetAuthorizeURL(t, tr, req)
		servertest.WantCode(t, "PKCE without state", c, codes.OK)
		if u, _ := url.Parse(authorizeURL); u.Query().Has("state") {
			t.Fatalf("authorize URL %s has a state", authorizeURL)
		}
	})
}

func TestRegisteredClientRedirects(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	if err := e.Store.CreateClient(context.Background(), storage.Client{ID: "dashboard", RedirectURIs: []string{"https://dash.example/cb"}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	tr := servertest.Transports(e)["gRPC"]
	verifier := servertest.NewVerifier(t)
	req := servertest.AuthorizeRequest(verifier, "")
	req.ClientId, req.RedirectUri = "dashboard", "https://dash.example/cb"
	authorizeURL, c := servertest.GetAuthorizeURL(t, tr, req)
	servertest.WantCode(t, "registered redirect", c, codes.OK)
	resp, query := servertest.SignIn(t, e, authorizeURL, servertest.UserPassword, "sign-in")
	if location, _ := resp.Location(); location == nil || location.Host != "dash.example" || query.Get("code") == "" {
		t.Fatalf("redirect %v", resp.Header.Get("Location"))
	}
	// The code is bound to the dashboard: the CLI cannot redeem it.
	_, c = servertest.LoginCli(t, tr, query.Get("code"), "https://dash.example/cb", verifier)
	servertest.WantCode(t, "LoginCli with another client's code", c, codes.Unauthenticated)
	req.RedirectUri = "https://dash.example/other"
	_, c = servertest.GetAuthorizeURL(t, tr, req)
	servertest.WantCode(t, "unregistered redirect of a registered client", c, codes.InvalidArgument)
	req.RedirectUri = servertest.Loopback
	_, c = servertest.GetAuthorizeURL(t, tr, req)
	servertest.WantCode(t, "loopback redirect for a registered client", c, codes.InvalidArgument)
}

func TestSignInPage(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	tr := servertest.Transports(e)["gRPC"]
	authorizeURL, c := servertest.GetAuthorizeURL(t, tr, servertest.AuthorizeRequest(servertest.NewVerifier(t), "openid"))
	servertest.WantCode(t, "GetAuthorizeUrl", c, codes.OK)

	t.Run("form is accessible and locked down", func(t *testing.T) {
		page := servertest.NoRedirects(t, e).Open(t, authorizeURL)
		for _, want := range []string{`<label for="username">`, `<label for="password">`, `autocomplete="current-password"`, `lang="en"`, `name="csrf_token"`} {
			if !strings.Contains(page.Body, want) {
				t.Errorf("page lacks %s", want)
			}
		}
		if strings.Contains(page.Body, "<script") || strings.Contains(page.Body, "https://") {
			t.Error("page loads scripts or external resources")
		}
		csp := page.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") || page.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("security headers: CSP %q, XFO %q", csp, page.Header.Get("X-Frame-Options"))
		}
	})
	t.Run("wrong password shows an error, no redirect", func(t *testing.T) {
		resp, query := servertest.SignIn(t, e, authorizeURL, "not-the-password", "sign-in")
		if resp.StatusCode != http.StatusUnauthorized || query != nil {
			t.Fatalf("HTTP %d, redirect %v", resp.StatusCode, query)
		}
	})
	t.Run("cancel redirects with access_denied", func(t *testing.T) {
		resp, query := servertest.SignIn(t, e, authorizeURL, "", "cancel")
		if resp.StatusCode != http.StatusSeeOther || query.Get("error") != "access_denied" || query.Get("state") != "state-123" || query.Get("code") != "" {
			t.Fatalf("HTTP %d, redirect %v", resp.StatusCode, query)
		}
	})
	for _, tc := range []struct {
		name  string
		token func(string) string
	}{
		{"CSRF token missing", func(string) string { return "" }},
		{"CSRF token from another page", func(string) string { return "forged-token" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := servertest.NoRedirects(t, e)
			page := b.Open(t, authorizeURL)
			page.Fields.Set("csrf_token", tc.token(page.Fields.Get("csrf_token")))
			resp := b.Submit(t, page, url.Values{"username": {servertest.UserName}, "password": {servertest.UserPassword}, "action": {"sign-in"}})
			result := servertest.ReadPage(t, resp)
			if result.Status != http.StatusForbidden || result.Header.Get("Location") != "" {
				t.Fatalf("HTTP %d, Location %q", result.Status, result.Header.Get("Location"))
			}
		})
	}
	t.Run("CSRF cookie missing", func(t *testing.T) {
		page := servertest.NoRedirects(t, e).Open(t, authorizeURL)
		// A fresh browser has the form's token but not the cookie.
		resp := servertest.NoRedirects(t, e).Submit(t, page, url.Values{"username": {servertest.UserName}, "password": {servertest.UserPassword}})
		if result := servertest.ReadPage(t, resp); result.Status != http.StatusForbidden {
			t.Fatalf("HTTP %d", result.Status)
		}
	})
}
