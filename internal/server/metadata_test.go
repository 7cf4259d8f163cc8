package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// RFC 8414: the authorization server metadata is the openid-configuration
// document, byte for byte, at /.well-known/oauth-authorization-server; for
// an issuer with a path, also with that path after it (§3.1, the path's
// final "/" removed), and at no other path.
func TestAuthorizationServerMetadata(t *testing.T) {
	t.Parallel()
	get := func(t *testing.T, e *servertest.Env, path string) (int, string) {
		t.Helper()
		resp, err := http.Get(e.HTTPBase() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusOK && resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: Content-Type %q", path, resp.Header.Get("Content-Type"))
		}
		return resp.StatusCode, string(body)
	}
	for _, tc := range []struct {
		name, issuer string
		served       []string
		notServed    []string
	}{
		{"an issuer at the root", servertest.Issuer, []string{"/.well-known/oauth-authorization-server"},
			[]string{"/.well-known/oauth-authorization-server/tenant"}},
		{"an issuer with a path", servertest.Issuer + "/tenant/", []string{"/.well-known/oauth-authorization-server/tenant", "/.well-known/oauth-authorization-server"},
			[]string{"/.well-known/oauth-authorization-server/tenant/", "/.well-known/oauth-authorization-server/other", "/.well-known/oauth-authorization-server/tenant/x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, backend := range servertest.Backends {
				e := servertest.StartOn(t, backend, func(cfg *server.Config) { cfg.Tokens.Issuer = tc.issuer })
				status, openid := get(t, e, "/.well-known/openid-configuration")
				if status != http.StatusOK || !json.Valid([]byte(openid)) {
					t.Fatalf("%s: openid-configuration: %d %s", backend, status, openid)
				}
				var doc struct{ Issuer string }
				if err := json.Unmarshal([]byte(openid), &doc); err != nil || doc.Issuer != tc.issuer {
					t.Fatalf("%s: issuer %q (%v), want %q", backend, doc.Issuer, err, tc.issuer)
				}
				for _, path := range tc.served {
					if status, body := get(t, e, path); status != http.StatusOK || body != openid {
						t.Fatalf("%s: %s answered %d %s,\nwant the openid-configuration %s", backend, path, status, body, openid)
					}
				}
				for _, path := range tc.notServed {
					if status, _ := get(t, e, path); status != http.StatusNotFound {
						t.Fatalf("%s: %s answered %d, want 404", backend, path, status)
					}
				}
			}
		})
	}
}
