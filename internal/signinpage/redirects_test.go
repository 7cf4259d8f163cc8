package signinpage_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

// A redirect URI with a port no listener can have, or with a fragment (an
// empty one too, RFC 6749 §3.1.2), is refused naming redirect_uri by
// GetAuthorizeUrl over gRPC and REST and by the sign-in page: the CLI's
// loopback redirects, and a registered client's URI registered before the
// rule was enforced.
func TestRedirectURIsNeedAValidPortAndNoFragment(t *testing.T) {
	t.Parallel()
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			e := servertest.StartOn(t, backend)
			const legacyURI = "https://app.example/cb#"
			e.CreateClient(t, "legacy", []string{legacyURI}, false, storage.Grants{AllowedScopes: []string{"openid"}})
			challenge := authorize.ChallengeFor(servertest.NewVerifier(t))
			for _, tc := range []struct {
				name                  string
				clientID, redirectURI string
				accepted              bool
			}{
				{"the highest port", "chit-cli", "http://127.0.0.1:65535/cb", true},
				{"port 0", "chit-cli", "http://127.0.0.1:0/cb", false},
				{"a port past 65535", "chit-cli", "http://127.0.0.1:99999/cb", false},
				{"an IPv6 loopback port past 65535", "chit-cli", "http://[::1]:65536/cb", false},
				{"a port with a leading zero", "chit-cli", "http://127.0.0.1:08080/cb", false},
				{"an empty fragment", "chit-cli", "http://127.0.0.1:9/cb#", false},
				{"a fragment", "chit-cli", "http://127.0.0.1:9/cb#x", false},
				{"a registered URI with an empty fragment", "legacy", legacyURI, false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					query := url.Values{"client_id": {tc.clientID}, "redirect_uri": {tc.redirectURI}, "state": {"s"},
						"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
					request := tc.clientID + " " + tc.redirectURI

					_, err := authv1.NewAuthServiceClient(e.Conn).GetAuthorizeUrl(context.Background(), &authv1.GetAuthorizeUrlRequest{
						ClientId: tc.clientID, RedirectUri: tc.redirectURI, State: "s", CodeChallenge: challenge, CodeChallengeMethod: "S256"})
					if tc.accepted != (err == nil) || (!tc.accepted && (status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "redirect_uri"))) {
						t.Errorf("gRPC GetAuthorizeUrl, %s: %v", request, err)
					}

					req, _ := http.NewRequest(http.MethodGet, e.HTTPBase()+"/v1/auth/authorize-url?"+query.Encode(), nil)
					got, body := servertest.Do(t, req)
					if tc.accepted != (got == http.StatusOK) || (!tc.accepted && (got != http.StatusBadRequest || !strings.Contains(body, "redirect_uri"))) {
						t.Errorf("REST GetAuthorizeUrl, %s: %d %s", request, got, body)
					}

					query.Set("response_type", "code")
					page := e.NewBrowser(t).Open(t, e.HTTPBase()+authorize.PagePath+"?"+query.Encode())
					if tc.accepted != (page.Status == http.StatusOK) || (!tc.accepted && (page.Status != http.StatusBadRequest || !page.Contains("redirect_uri"))) {
						t.Errorf("the sign-in page, %s: %d %s", request, page.Status, page.Body)
					}
				})
			}
		})
	}
}
