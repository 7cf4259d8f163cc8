package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

// corsRequest sends method to path with an Origin and, for a preflight, the
// method and headers the browser would ask for.
func corsRequest(t *testing.T, e *servertest.Env, method, path, origin, preflightMethod string, body url.Values) *http.Response {
	t.Helper()
	var reader *strings.Reader
	if body != nil {
		reader = strings.NewReader(body.Encode())
	} else {
		reader = strings.NewReader("")
	}
	req, err := http.NewRequest(method, e.HTTPBase()+path, reader)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", origin)
	if preflightMethod != "" {
		req.Header.Set("Access-Control-Request-Method", preflightMethod)
		// Browsers send the names lower-case and sorted (Fetch standard,
		// CORS-unsafe request-header names).
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func wantAllowed(t *testing.T, what string, resp *http.Response, origin string) {
	t.Helper()
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
		t.Fatalf("%s: Access-Control-Allow-Origin %q, want %q (status %d, headers %v)", what, got, origin, resp.StatusCode, resp.Header)
	}
	if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
		t.Fatalf("%s: Vary %v, want Origin", what, resp.Header.Values("Vary"))
	}
	if resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("%s: credentials allowed; no endpoint needs cookies", what)
	}
}

func wantRefused(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Fatalf("%s: Access-Control-Allow-Origin %q, want none", what, got)
	}
}

// The metadata and the JWKS are readable from any origin; the token, revoke
// and userinfo endpoints answer the origins registered on a client or given
// by --allowed-origin, with correct preflights; introspection and the API's
// REST routes answer none. On both stores.
func TestCORS(t *testing.T) {
	t.Parallel()
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			const spa, configured, stranger = "https://spa.example", "http://localhost:5173", "https://evil.example"
			e := servertest.StartOn(t, backend, func(cfg *server.Config) { cfg.AllowedOrigins = []string{configured} })
			rest := servertest.Transports(e)["REST"]
			callers := servertest.NewAdminCallers(t, e, rest)
			e.CreateClient(t, "spa", []string{spa + "/callback"}, false, storage.Grants{AllowedScopes: []string{"openid"}})

			for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/.well-known/jwks.json"} {
				for _, origin := range []string{stranger, "null"} {
					resp := corsRequest(t, e, http.MethodGet, path, origin, "", nil)
					if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
						t.Fatalf("GET %s from %s: %d, Access-Control-Allow-Origin %q; want 200 and *", path, origin, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
					}
					preflight := corsRequest(t, e, http.MethodOptions, path, origin, http.MethodGet, nil)
					if preflight.StatusCode != http.StatusNoContent || preflight.Header.Get("Access-Control-Allow-Origin") != "*" ||
						preflight.Header.Get("Access-Control-Max-Age") != "86400" {
						t.Fatalf("preflight of %s: %d %v", path, preflight.StatusCode, preflight.Header)
					}
				}
			}

			browserPaths := map[string]string{"/oauth2/token": http.MethodPost, "/oauth2/revoke": http.MethodPost, "/userinfo": http.MethodGet}
			for path, method := range browserPaths {
				wantRefused(t, "preflight of "+path+" from an origin registered nowhere", corsRequest(t, e, http.MethodOptions, path, spa, method, nil))
				resp := corsRequest(t, e, http.MethodOptions, path, configured, method, nil)
				wantAllowed(t, "preflight of "+path+" from --allowed-origin", resp, configured)
			}

			// Registered through the Admin API, the origin is allowed at once
			// on this replica.
			answer := &adminv1.SetClientOriginsResponse{}
			servertest.WantCode(t, "SetClientOrigins", rest.Invoke(t, adminv1.AdminService_SetClientOrigins_FullMethodName, callers.Admin,
				&adminv1.SetClientOriginsRequest{ClientId: "spa", AllowedOrigins: []string{spa}}, answer), codes.OK)
			if got := answer.GetClient().GetAllowedOrigins(); len(got) != 1 || got[0] != spa {
				t.Fatalf("SetClientOrigins answered the client's origins as %v", got)
			}
			for path, method := range browserPaths {
				preflight := corsRequest(t, e, http.MethodOptions, path, spa, method, nil)
				wantAllowed(t, "preflight of "+path, preflight, spa)
				if preflight.StatusCode != http.StatusNoContent || preflight.Header.Get("Access-Control-Allow-Methods") != method ||
					preflight.Header.Get("Access-Control-Allow-Headers") != "authorization,content-type" ||
					preflight.Header.Get("Access-Control-Max-Age") != "600" {
					t.Fatalf("preflight of %s: %d %v", path, preflight.StatusCode, preflight.Header)
				}
				wantRefused(t, "preflight of "+path+" from a stranger", corsRequest(t, e, http.MethodOptions, path, stranger, method, nil))
				wantRefused(t, "preflight of "+path+" asking for DELETE", corsRequest(t, e, http.MethodOptions, path, spa, http.MethodDelete, nil))
			}
			// The actual requests: the answer (an error here) is readable by
			// the registered origin only, and names what a browser app may read.
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"chit_rt_madeup"}, "client_id": {"spa"}}
			token := corsRequest(t, e, http.MethodPost, "/oauth2/token", spa, "", form)
			wantAllowed(t, "POST /oauth2/token", token, spa)
			if token.StatusCode != http.StatusBadRequest {
				t.Fatalf("a made-up refresh token answered %d", token.StatusCode)
			}
			wantRefused(t, "POST /oauth2/token from a stranger", corsRequest(t, e, http.MethodPost, "/oauth2/token", stranger, "", form))
			userinfo := corsRequest(t, e, http.MethodGet, "/userinfo", spa, "", nil)
			wantAllowed(t, "GET /userinfo", userinfo, spa)
			if userinfo.StatusCode != http.StatusUnauthorized || !strings.Contains(userinfo.Header.Get("Access-Control-Expose-Headers"), "Www-Authenticate") {
				t.Fatalf("GET /userinfo without a token: %d, exposes %q; want 401 exposing WWW-Authenticate", userinfo.StatusCode, userinfo.Header.Get("Access-Control-Expose-Headers"))
			}
			// Introspection and the API's REST routes are not for browsers.
			wantRefused(t, "preflight of /oauth2/introspect", corsRequest(t, e, http.MethodOptions, "/oauth2/introspect", spa, http.MethodPost, nil))
			wantRefused(t, "preflight of /v1/auth/token", corsRequest(t, e, http.MethodOptions, "/v1/auth/token", spa, http.MethodPost, nil))

			// Removing the origin, then deleting the client, refuses it at once.
			servertest.WantCode(t, "SetClientOrigins to none", rest.Invoke(t, adminv1.AdminService_SetClientOrigins_FullMethodName, callers.Admin,
				&adminv1.SetClientOriginsRequest{ClientId: "spa"}, &adminv1.SetClientOriginsResponse{}), codes.OK)
			wantRefused(t, "preflight after the origin is removed", corsRequest(t, e, http.MethodOptions, "/oauth2/token", spa, http.MethodPost, nil))
			servertest.WantCode(t, "SetClientOrigins again", rest.Invoke(t, adminv1.AdminService_SetClientOrigins_FullMethodName, callers.Admin,
				&adminv1.SetClientOriginsRequest{ClientId: "spa", AllowedOrigins: []string{spa}}, &adminv1.SetClientOriginsResponse{}), codes.OK)
			servertest.WantCode(t, "DeleteClient", rest.Invoke(t, adminv1.AdminService_DeleteClient_FullMethodName, callers.Admin,
				&adminv1.DeleteClientRequest{ClientId: "spa"}, &adminv1.DeleteClientResponse{}), codes.OK)
			wantRefused(t, "preflight after the client is deleted", corsRequest(t, e, http.MethodOptions, "/oauth2/token", spa, http.MethodPost, nil))
		})
	}
}

// An origin registered through another replica is honoured within
// accounts.OriginsRefresh, read from the store, not per request.
func TestCORSOriginsOfAnotherReplica(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	e.CreateClient(t, "spa", []string{"https://spa.example/callback"}, false, storage.Grants{AllowedScopes: []string{"openid"}})
	preflight := func() *http.Response {
		return corsRequest(t, e, http.MethodOptions, "/oauth2/token", "https://spa.example", http.MethodPost, nil)
	}
	wantRefused(t, "before the origin is registered", preflight())
	// e.Directory() is another directory on the same store, as another
	// replica's is.
	if err := e.Directory().SetClientOrigins(t.Context(), "spa", []string{"https://spa.example"}); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, "within the refresh time of the set read before", preflight())
	e.Clock.Advance(accounts.OriginsRefresh)
	wantAllowed(t, "after the refresh time", preflight(), "https://spa.example")
}

// Origins that a browser never sends, or that would let an http page on the
// network read tokens, are refused with the field named, over gRPC and REST.
func TestClientOriginsAreValidated(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	e.CreateClient(t, "spa", []string{"https://spa.example/callback"}, false, storage.Grants{AllowedScopes: []string{"openid"}})
	admin := servertest.NewAdminCallers(t, e, servertest.Transports(e)["gRPC"]).Admin
	admins := map[string]string{"gRPC": admin, "REST": admin}
	for name, tr := range servertest.Transports(e) {
		t.Run(name, func(t *testing.T) {
			admin := admins[name]
			for _, origin := range []string{"https://spa.example/", "https://spa.example/app", "http://spa.example", "https://SPA.example",
				"https://spa.example:443", "https://user@spa.example", "spa.example", "*", "null", "https://spa.example?x", "ftp://spa.example"} {
				var answer adminv1.SetClientOriginsResponse
				servertest.WantCode(t, origin, tr.Invoke(t, adminv1.AdminService_SetClientOrigins_FullMethodName, admin,
					&adminv1.SetClientOriginsRequest{ClientId: "spa", AllowedOrigins: []string{origin}}, &answer), codes.InvalidArgument)
			}
			servertest.WantCode(t, "an unknown client", tr.Invoke(t, adminv1.AdminService_SetClientOrigins_FullMethodName, admin,
				&adminv1.SetClientOriginsRequest{ClientId: "nobody", AllowedOrigins: []string{"https://spa.example"}}, &adminv1.SetClientOriginsResponse{}), codes.NotFound)
		})
	}
	for _, origin := range []string{"https://spa.example", "https://spa.example:8443", "http://localhost:3000", "http://127.0.0.1:8080", "http://[::1]:5173",
		"https://xn--exmple-cua.example", "https://my_app.example", "https://192.0.2.1", "https://[2001:db8::1]:8443"} {
		if err := accounts.ValidateOrigins([]string{origin}); err != nil {
			t.Errorf("%s refused: %v", origin, err)
		}
	}
	err := accounts.ValidateOrigins([]string{"https://spa.example/"})
	if err == nil || !strings.Contains(err.Error(), "allowed_origins") {
		t.Fatalf("the error does not name the field: %v", err)
	}
}

// Hosts a browser never puts in an Origin header as written are refused:
// it sends internationalized names as punycode, IPv4 addresses in dotted
// decimal, IPv6 addresses compressed, and no trailing dot. Registering one
// would either never match or match a spelling the browser rewrites.
func TestValidateOriginsRefusesHostsNoBrowserSends(t *testing.T) {
	t.Parallel()
	for _, origin := range []string{"https://exämple.example", "https://spa.example.", "https://-spa.example", "https://spa-.example",
		"https://spa..example", "http://127.1", "http://0x7f.0.0.1", "http://2130706433", "https://[0:0::1]", "http://[::ffff:127.0.0.1]",
		"https://[2001:DB8::1]", "https://[fe80::1%25eth0]", "https://spa%2eexample", "https://spa.example%00", "https://sp a.example",
		"https://" + strings.Repeat("a", 64) + ".example"} {
		if err := accounts.ValidateOrigins([]string{origin}); err == nil {
			t.Errorf("%s accepted", origin)
		}
	}
}

// Only the registered origin itself is answered: an origin that differs in
// case, port spelling, a trailing dot, a suffix, a scheme or a userinfo gets
// no CORS headers, on a preflight or a call, whatever it looks like.
func TestCORSRefusesOriginsThatOnlyLookRegistered(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	const spa = "https://spa.example"
	e.CreateClient(t, "spa", []string{spa + "/callback"}, false, storage.Grants{AllowedScopes: []string{"openid"}})
	if err := e.Directory().SetClientOrigins(t.Context(), "spa", []string{spa}); err != nil {
		t.Fatal(err)
	}
	wantAllowed(t, "the registered origin", corsRequest(t, e, http.MethodOptions, "/oauth2/token", spa, http.MethodPost, nil), spa)
	for _, lookalike := range []string{"https://SPA.example", "https://spa.example:443", "https://spa.example.", "https://spa.example.evil.example",
		"https://evilspa.example", "http://spa.example", "https://spa.example/", "https://user@spa.example", "https://spa.example, https://evil.example",
		"null"} {
		wantRefused(t, "preflight from "+lookalike, corsRequest(t, e, http.MethodOptions, "/oauth2/token", lookalike, http.MethodPost, nil))
		wantRefused(t, "userinfo from "+lookalike, corsRequest(t, e, http.MethodGet, "/userinfo", lookalike, "", nil))
	}
}
