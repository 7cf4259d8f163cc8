package signinpage_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

// The clients of these tests: a public one (a single-page app, openid-client
// with its defaults), a confidential one with PKCE required (the default)
// and one registered with PKCE optional (oauth2-proxy with its defaults).
const (
	spaRedirect   = "https://spa.example/cb"
	webRedirect   = "https://web.example/cb"
	proxyRedirect = "https://proxy.example/oauth2/callback"
)

type relyingParties struct{ webSecret, proxySecret string }

func registerRelyingParties(t *testing.T, e *servertest.Env) relyingParties {
	t.Helper()
	grants := storage.Grants{AllowedScopes: []string{"openid", "offline_access"}}
	e.RegisterClient(t, accounts.ClientRegistration{ID: "spa", RedirectURIs: []string{spaRedirect}, Grants: grants})
	return relyingParties{
		webSecret: e.RegisterClient(t, accounts.ClientRegistration{ID: "web", RedirectURIs: []string{webRedirect}, Confidential: true, Grants: grants}),
		proxySecret: e.RegisterClient(t, accounts.ClientRegistration{ID: "proxy", RedirectURIs: []string{proxyRedirect}, Confidential: true,
			PKCEOptional: true, Grants: grants}),
	}
}

// open fetches the page for query without following a redirect.
func open(t *testing.T, e *servertest.Env, query url.Values) (servertest.Page, *url.URL) {
	t.Helper()
	resp, err := servertest.NoRedirects(t, e).Client.Get(e.HTTPBase() + authorize.PagePath + "?" + query.Encode())
	if err != nil {
		t.Fatal(err)
	}
	location, _ := resp.Location()
	return servertest.ReadPage(t, resp), location
}

// Errors go to the client's redirect URI once the client and the redirect
// URI are known good (RFC 6749 §4.1.2.1), with state and iss; before that
// they stay on the page, and an unregistered or ambiguous redirect URI never
// receives a redirect. PKCE follows the client's registration.
func TestAuthorizeErrorsRedirectOnlyToRegisteredURIs(t *testing.T) {
	t.Parallel()
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := servertest.StartOn(t, backend)
			registerRelyingParties(t, e)
			challenge := authorize.ChallengeFor(servertest.NewVerifier(t))
			request := func(client, redirect string, change func(url.Values)) url.Values {
				query := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect}, "scope": {"openid"},
					"state": {"st"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
				if change != nil {
					change(query)
				}
				return query
			}
			noPKCE := func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }
			for _, tc := range []struct {
				name  string
				query url.Values
				// want: "form" (the page shows the form), "page" (an error
				// page, no redirect) or the error code of a redirect.
				want string
				// state is the state the redirect carries ("" for none).
				state string
			}{
				{"a public client with PKCE", request("spa", spaRedirect, nil), "form", ""},
				{"a public client with PKCE and no state", request("spa", spaRedirect, func(q url.Values) { q.Del("state") }), "form", ""},
				{"a public client without PKCE", request("spa", spaRedirect, noPKCE), "invalid_request", "st"},
				{"a confidential client without PKCE", request("web", webRedirect, noPKCE), "invalid_request", "st"},
				{"a confidential client with PKCE", request("web", webRedirect, nil), "form", ""},
				{"PKCE optional, without PKCE", request("proxy", proxyRedirect, noPKCE), "form", ""},
				{"PKCE optional, without PKCE or state", request("proxy", proxyRedirect, func(q url.Values) { noPKCE(q); q.Del("state") }), "invalid_request", ""},
				{"a scope the client may not ask for", request("spa", spaRedirect, func(q url.Values) { q.Set("scope", "openid write") }), "invalid_scope", "st"},
				{"response_type token", request("spa", spaRedirect, func(q url.Values) { q.Set("response_type", "token") }), "unsupported_response_type", "st"},
				{"an unknown prompt", request("spa", spaRedirect, func(q url.Values) { q.Set("prompt", "later") }), "invalid_request", "st"},
				{"an unknown response_mode", request("spa", spaRedirect, func(q url.Values) { q.Set("response_mode", "smoke") }), "invalid_request", "st"},
				{"a repeated state", request("spa", spaRedirect, func(q url.Values) { q.Add("state", "other") }), "invalid_request", ""},
				{"a repeated scope", request("spa", spaRedirect, func(q url.Values) { q.Add("scope", "offline_access") }), "invalid_request", "st"},
				{"a repeated code_challenge", request("spa", spaRedirect, func(q url.Values) { q.Add("code_challenge", challenge) }), "invalid_request", "st"},
				{"prompt none", request("spa", spaRedirect, func(q url.Values) { q.Set("prompt", "none") }), "login_required", "st"},
				// Never a redirect to a place the client did not register.
				{"an unregistered redirect", request("spa", "https://evil.example/cb", nil), "page", ""},
				{"another client's redirect", request("spa", webRedirect, nil), "page", ""},
				{"an unregistered redirect and a bad request", request("spa", "https://evil.example/cb", noPKCE), "page", ""},
				{"a registered redirect with another path", request("spa", spaRedirect+"/x", nil), "page", ""},
				{"a registered redirect with a query added", request("spa", spaRedirect+"?next=evil", nil), "page", ""},
				{"a repeated redirect_uri", request("spa", spaRedirect, func(q url.Values) { q.Add("redirect_uri", "https://evil.example/cb") }), "page", ""},
				{"the registered redirect_uri twice", request("spa", spaRedirect, func(q url.Values) { q.Add("redirect_uri", spaRedirect) }), "page", ""},
				{"a repeated client_id", request("spa", spaRedirect, func(q url.Values) { q.Add("client_id", "web") }), "page", ""},
				{"an unregistered client", request("nobody", spaRedirect, nil), "page", ""},
				{"no redirect_uri", request("spa", "", nil), "page", ""},
			} {
				t.Run(tc.name, func(t *testing.T) {
					page, location := open(t, e, tc.query)
					switch tc.want {
					case "form":
						if page.Status != http.StatusOK || location != nil || page.Fields.Get("csrf_token") == "" {
							t.Fatalf("HTTP %d, Location %v: %s", page.Status, location, page.Body)
						}
					case "page":
						if page.Status != http.StatusBadRequest || location != nil || page.Header.Get("Location") != "" {
							t.Fatalf("HTTP %d, Location %v", page.Status, location)
						}
					default:
						redirect := tc.query.Get("redirect_uri")
						query := location.Query()
						if page.Status != http.StatusSeeOther || location == nil || !strings.HasPrefix(location.String(), redirect+"?") ||
							query.Get("error") != tc.want || query.Get("iss") != servertest.Issuer || query.Has("code") ||
							query.Get("state") != tc.state || query.Has("state") != (tc.state != "") {
							t.Fatalf("HTTP %d, Location %v, want %s at %s with state %q", page.Status, location, tc.want, redirect, tc.state)
						}
					}
				})
			}

			// The form is checked again when it is sent back: a tampered one
			// is refused the same way.
			for _, tc := range []struct {
				name   string
				change func(url.Values)
				want   string
			}{
				{"a second redirect_uri", func(f url.Values) { f.Add("redirect_uri", "https://evil.example/cb") }, "page"},
				{"another redirect_uri", func(f url.Values) { f.Set("redirect_uri", "https://evil.example/cb") }, "page"},
				{"a second state", func(f url.Values) { f.Add("state", "other") }, "invalid_request"},
				{"the challenge removed", func(f url.Values) { f.Del("code_challenge"); f.Del("code_challenge_method") }, "invalid_request"},
			} {
				t.Run("a form with "+tc.name, func(t *testing.T) {
					b := servertest.NoRedirects(t, e)
					page := b.Open(t, e.HTTPBase()+authorize.PagePath+"?"+request("spa", spaRedirect, nil).Encode())
					form := url.Values{"username": {servertest.UserName}, "password": {servertest.UserPassword}, "action": {"sign-in"}}
					for name, values := range page.Fields {
						form[name] = values
					}
					tc.change(form)
					resp, err := b.Client.PostForm(e.HTTPBase()+authorize.PagePath, form)
					if err != nil {
						t.Fatal(err)
					}
					location, _ := resp.Location()
					result := servertest.ReadPage(t, resp)
					if tc.want == "page" {
						if result.Status != http.StatusBadRequest || location != nil {
							t.Fatalf("HTTP %d, Location %v", result.Status, location)
						}
						return
					}
					if result.Status != http.StatusSeeOther || location == nil || !strings.HasPrefix(location.String(), spaRedirect+"?") ||
						location.Query().Get("error") != tc.want || location.Query().Has("code") {
						t.Fatalf("HTTP %d, Location %v", result.Status, location)
					}
				})
			}
		})
	}
}

// signInAt signs in on the page at authURL and returns the query the
// redirect carries.
func signInAt(t *testing.T, e *servertest.Env, authURL, redirect string) url.Values {
	t.Helper()
	b := servertest.NoRedirects(t, e)
	page := b.Open(t, authURL)
	if page.Status != http.StatusOK {
		t.Fatalf("sign-in page: HTTP %d: %s", page.Status, page.Body)
	}
	resp := b.Submit(t, page, url.Values{"username": {servertest.UserName}, "password": {servertest.UserPassword}, "action": {"sign-in"}})
	resp.Body.Close()
	location, err := resp.Location()
	if err != nil || !strings.HasPrefix(location.String(), redirect+"?") {
		t.Fatalf("sign-in answered %d, Location %v", resp.StatusCode, location)
	}
	return location.Query()
}

func xoauth2Endpoint(e *servertest.Env) oauth2.Endpoint {
	return oauth2.Endpoint{AuthURL: e.HTTPBase() + authorize.PagePath, TokenURL: e.HTTPBase() + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}
}

// oauth2-proxy's default: a confidential client sending no PKCE, with a
// state, through golang.org/x/oauth2. It completes when the client is
// registered with PKCE optional, and is answered invalid_request at its
// redirect URI otherwise; openid-client's default (a public client, PKCE
// and no state) completes without a state.
func TestRelyingPartyDefaultFlows(t *testing.T) {
	t.Parallel()
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := servertest.StartOn(t, backend)
			parties := registerRelyingParties(t, e)
			ctx := context.Background()

			t.Run("oauth2-proxy: confidential, no PKCE, PKCE optional", func(t *testing.T) {
				cfg := &oauth2.Config{ClientID: "proxy", ClientSecret: parties.proxySecret, Endpoint: xoauth2Endpoint(e), RedirectURL: proxyRedirect,
					Scopes: []string{"openid"}}
				query := signInAt(t, e, cfg.AuthCodeURL("proxy-state"), proxyRedirect)
				if query.Get("state") != "proxy-state" || query.Get("iss") != servertest.Issuer || query.Get("code") == "" {
					t.Fatalf("redirect query %v", query)
				}
				token, err := cfg.Exchange(ctx, query.Get("code"))
				if err != nil {
					t.Fatalf("exchange without a verifier: %v", err)
				}
				if token.AccessToken == "" || token.Extra("id_token") == nil {
					t.Fatalf("token %+v", token)
				}
				// A verifier for a code issued without a challenge is refused
				// (RFC 9700 §2.1.1: no PKCE downgrade).
				query = signInAt(t, e, cfg.AuthCodeURL("proxy-state"), proxyRedirect)
				if _, err := cfg.Exchange(ctx, query.Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
					t.Fatal("a verifier for a code without a challenge was accepted")
				}
			})
			t.Run("oauth2-proxy's default against a client with PKCE required", func(t *testing.T) {
				cfg := &oauth2.Config{ClientID: "web", ClientSecret: parties.webSecret, Endpoint: xoauth2Endpoint(e), RedirectURL: webRedirect,
					Scopes: []string{"openid"}}
				page, location := open(t, e, mustQuery(t, cfg.AuthCodeURL("web-state")))
				if page.Status != http.StatusSeeOther || location == nil || location.Query().Get("error") != "invalid_request" ||
					location.Query().Get("state") != "web-state" || location.Query().Get("iss") != servertest.Issuer {
					t.Fatalf("HTTP %d, Location %v", page.Status, location)
				}
			})
			t.Run("openid-client: public, PKCE, no state", func(t *testing.T) {
				cfg := &oauth2.Config{ClientID: "spa", Endpoint: xoauth2Endpoint(e), RedirectURL: spaRedirect, Scopes: []string{"openid"}}
				cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
				verifier := oauth2.GenerateVerifier()
				query := signInAt(t, e, cfg.AuthCodeURL("", oauth2.S256ChallengeOption(verifier)), spaRedirect)
				if query.Has("state") || query.Get("iss") != servertest.Issuer || query.Get("code") == "" {
					t.Fatalf("redirect query %v", query)
				}
				if _, err := cfg.Exchange(ctx, query.Get("code")); err == nil {
					t.Fatal("a PKCE code was exchanged without its verifier")
				}
				query = signInAt(t, e, cfg.AuthCodeURL("", oauth2.S256ChallengeOption(verifier)), spaRedirect)
				if token, err := cfg.Exchange(ctx, query.Get("code"), oauth2.VerifierOption(verifier)); err != nil || token.AccessToken == "" {
					t.Fatalf("exchange: %+v, %v", token, err)
				}
			})
		})
	}
}

func mustQuery(t *testing.T, rawURL string) url.Values {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// kubelogin's default: a public client registered with
// http://localhost:8000, listening on another port (its fallback, or any
// the system gives it), through golang.org/x/oauth2 with PKCE. RFC 8252
// §7.3: a loopback redirect matches on any port; a browser that follows the
// redirect reaches the listener, and the code is exchanged for the redirect
// URI it was issued for.
func TestLoopbackRedirectOnAnotherPortThanRegistered(t *testing.T) {
	t.Parallel()
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := servertest.StartOn(t, backend)
			for _, registered := range []string{"http://localhost:8000", "http://localhost"} {
				t.Run(registered, func(t *testing.T) {
					id := "kubelogin-" + strconv.Itoa(len(registered))
					e.RegisterClient(t, accounts.ClientRegistration{ID: id, RedirectURIs: []string{registered},
						Grants: storage.Grants{AllowedScopes: []string{"openid", "offline_access"}}})
					listener, err := net.Listen("tcp", "127.0.0.1:0")
					if err != nil {
						t.Fatal(err)
					}
					port := listener.Addr().(*net.TCPAddr).Port
					if port == 8000 {
						t.Skip("the system gave the registered port")
					}
					received := make(chan url.Values, 1)
					listenerServer := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						received <- r.URL.Query()
						_, _ = w.Write([]byte("signed in; you may close this window"))
					})}
					go func() { _ = listenerServer.Serve(listener) }()
					t.Cleanup(func() { _ = listenerServer.Close() })

					redirect := "http://localhost:" + strconv.Itoa(port)
					cfg := &oauth2.Config{ClientID: id, Endpoint: xoauth2Endpoint(e), RedirectURL: redirect, Scopes: []string{"openid", "offline_access"}}
					cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
					verifier := oauth2.GenerateVerifier()
					b := e.NewBrowser(t) // follows the redirect to the listener
					page := b.Open(t, cfg.AuthCodeURL("kube-state", oauth2.S256ChallengeOption(verifier)))
					if page.Status != http.StatusOK {
						t.Fatalf("sign-in page: HTTP %d: %s", page.Status, page.Body)
					}
					resp := b.Submit(t, page, url.Values{"username": {servertest.UserName}, "password": {servertest.UserPassword}, "action": {"sign-in"}})
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || resp.Request.URL.Port() != strconv.Itoa(port) {
						t.Fatalf("the browser ended at %v with %d", resp.Request.URL, resp.StatusCode)
					}
					query := <-received
					if query.Get("state") != "kube-state" || query.Get("iss") != servertest.Issuer || query.Get("code") == "" {
						t.Fatalf("the listener received %v", query)
					}
					token, err := cfg.Exchange(context.Background(), query.Get("code"), oauth2.VerifierOption(verifier))
					if err != nil || token.AccessToken == "" || token.RefreshToken == "" || token.Extra("id_token") == nil {
						t.Fatalf("exchange: %+v, %v", token, err)
					}
					// Only the port is free: another host or path is not the
					// registered URI.
					for _, other := range []string{"http://127.0.0.1:" + strconv.Itoa(port), redirect + "/callback", "http://localhost.evil.example:" + strconv.Itoa(port)} {
						query := url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {other}, "state": {"s"},
							"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
						if page, location := open(t, e, query); page.Status != http.StatusBadRequest || location != nil {
							t.Errorf("%s for %s: HTTP %d, Location %v", other, registered, page.Status, location)
						}
					}
				})
			}
		})
	}
}
