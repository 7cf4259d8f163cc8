package server_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// TestNoSecretInDebugLogs runs logins, refreshes (including a reuse), a
// browser sign-in and the provider flow with the server logging at debug
// level, then looks for every secret it handed out or received in the logs.
func TestNoSecretInDebugLogs(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	var secrets []string
	for name, tr := range servertest.Transports(e) {
		t.Run(name, func(t *testing.T) {
			wrong := "wrong-password-" + name
			_, code := tr.Token(t, servertest.PasswordRequest("alice", wrong))
			servertest.WantCode(t, "wrong password", code, codes.Unauthenticated)
			user, code := tr.Token(t, servertest.PasswordRequest("alice", "wonderland"))
			servertest.WantCode(t, "Token", code, codes.OK)
			refreshed, code := tr.Refresh(t, user.GetRefreshToken())
			servertest.WantCode(t, "RefreshToken", code, codes.OK)
			e.Clock.Advance(servertest.GracePeriod + time.Second)
			_, code = tr.Refresh(t, user.GetRefreshToken()) // reuse: audited, must not log the token
			servertest.WantCode(t, "reuse", code, codes.Unauthenticated)
			service, code := tr.Token(t, servertest.ClientRequest("billing", e.ServiceSecret))
			servertest.WantCode(t, "client credentials", code, codes.OK)

			id := "logged-" + servertest.TransportName(tr)
			creds, code := servertest.Claim(t, tr, service.GetAccessToken(), servertest.Register(t, tr, service.GetAccessToken(), id)[0])
			servertest.WantCode(t, "claim", code, codes.OK)
			providerTokens, code := servertest.ProviderRefresh(t, tr, creds[0].GetRefreshToken())
			servertest.WantCode(t, "provider refresh", code, codes.OK)
			generated := &authv1.AuthProvidersGenerateKeyPairResponse{}
			servertest.WantCode(t, "generateKeyPair", tr.Invoke(t, authv1.AuthProviders_GenerateKeyPair_FullMethodName, service.GetAccessToken(),
				&authv1.AuthProvidersGenerateKeyPairRequest{}, generated), codes.OK)

			verifier := servertest.NewVerifier(t)
			code2 := servertest.CodeFor(t, e, tr, verifier, "openid offline_access")
			login, c := servertest.LoginCli(t, tr, code2, servertest.Loopback, verifier)
			servertest.WantCode(t, "LoginCli", c, codes.OK)

			secrets = append(secrets, wrong, "wonderland", e.ServiceSecret, user.GetAccessToken(), user.GetRefreshToken(),
				refreshed.GetAccessToken(), refreshed.GetRefreshToken(), service.GetAccessToken(), creds[0].GetRefreshToken(),
				providerTokens[0], generated.GetPrivateKey(), verifier, code2, login.GetAccessToken(), login.GetRefreshToken(), login.GetIdToken())
		})
	}
	// A browser sign-in with a wrong password, too.
	authorizeURL, _ := servertest.GetAuthorizeURL(t, servertest.Transports(e)["gRPC"], servertest.AuthorizeRequest(servertest.NewVerifier(t), ""))
	b := servertest.NoRedirects(t, e)
	page := b.Open(t, authorizeURL)
	b.Submit(t, page, url.Values{"username": {"alice"}, "password": {"page-password-typo"}}).Body.Close()
	secrets = append(secrets, "page-password-typo", page.Fields.Get("csrf_token"))

	logs := e.Logs.String()
	if !strings.Contains(logs, `"level":"DEBUG"`) && !strings.Contains(logs, "refresh_reuse") {
		t.Fatalf("the server logged nothing useful; the test would prove nothing:\n%s", logs)
	}
	for _, secret := range secrets {
		if secret == "" {
			t.Fatal("a secret of the flow is empty; the test would prove nothing")
		}
		// Any 16-character piece of a secret is enough to count as a leak.
		probe := secret
		if len(probe) > 16 {
			probe = probe[len(probe)-16:]
		}
		if strings.Contains(logs, probe) {
			t.Errorf("the logs contain a secret (…%s)", probe)
		}
	}
}
