package oauth2http_test

import (
	"net/http"
	"net/url"
	"testing"

	"google.golang.org/grpc/codes"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// What a revocation answers, introspection agrees with afterwards, on
// /oauth2/revoke and on AuthService.Revoke (gRPC and REST): a login's access
// token is revoked (200, then inactive); a client-credentials token, which
// has no login to end, is unsupported_token_type (INVALID_ARGUMENT) and
// stays active.
func TestRevocationAndIntrospectionAgree(t *testing.T) {
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		active := func(token string) bool {
			t.Helper()
			resp, body := postForm(t, e, "/oauth2/introspect", url.Values{"token": {token}}, servertest.ServiceName, e.ServiceSecret)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("introspect: %d %v", resp.StatusCode, body)
			}
			return body["active"] == true
		}
		serviceToken := func() string {
			t.Helper()
			grant, c := tr.Token(t, servertest.ClientRequest(servertest.ServiceName, e.ServiceSecret))
			servertest.WantCode(t, "client credentials", c, codes.OK)
			return grant.GetAccessToken()
		}
		userToken := func() string {
			t.Helper()
			grant, c := tr.Token(t, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
			servertest.WantCode(t, "password", c, codes.OK)
			return grant.GetAccessToken()
		}

		// /oauth2/revoke.
		token := serviceToken()
		resp, body := postForm(t, e, "/oauth2/revoke", url.Values{"token": {token}}, servertest.ServiceName, e.ServiceSecret)
		if resp.StatusCode != http.StatusBadRequest || body["error"] != "unsupported_token_type" || !active(token) {
			t.Fatalf("/oauth2/revoke of a client-credentials token: %d %v, active %t; want unsupported_token_type and still active", resp.StatusCode, body, active(token))
		}
		token = userToken()
		if resp, body := postForm(t, e, "/oauth2/revoke", url.Values{"token": {token}}, "", ""); resp.StatusCode != http.StatusOK || active(token) {
			t.Fatalf("/oauth2/revoke of a login's access token: %d %v, active %t; want 200 and inactive", resp.StatusCode, body, active(token))
		}

		// AuthService.Revoke.
		token = serviceToken()
		if c := servertest.Revoke(t, tr, "", &authv1.RevokeRequest{Token: token}); c != codes.InvalidArgument || !active(token) {
			t.Fatalf("Revoke of a client-credentials token: %v, active %t; want InvalidArgument and still active", c, active(token))
		}
		token = userToken()
		if c := servertest.Revoke(t, tr, "", &authv1.RevokeRequest{Token: token}); c != codes.OK || active(token) {
			t.Fatalf("Revoke of a login's access token: %v, active %t; want OK and inactive", c, active(token))
		}
	})
}

// RFC 7662 §2.1: token is required. Without it the request is
// invalid_request (400), once the caller has authenticated (401 before).
func TestIntrospectionWithoutATokenIsInvalidRequest(t *testing.T) {
	onEachBackend(t, func(t *testing.T, e *servertest.Env) {
		for name, form := range map[string]url.Values{"no token": {}, "an empty token": {"token": {""}}} {
			resp, body := postForm(t, e, "/oauth2/introspect", form, servertest.ServiceName, e.ServiceSecret)
			if resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_request" {
				t.Fatalf("%s: %d %v, want 400 invalid_request", name, resp.StatusCode, body)
			}
			if resp, body := postForm(t, e, "/oauth2/introspect", form, "", ""); resp.StatusCode != http.StatusUnauthorized || body["error"] != "invalid_client" {
				t.Fatalf("%s, unauthenticated: %d %v, want 401 invalid_client", name, resp.StatusCode, body)
			}
		}
	})
}
