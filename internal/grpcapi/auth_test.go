package grpcapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

func TestPasswordTokenAndCheck(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		req := servertest.PasswordRequest("alice", "wonderland")
		req.Scope = "read write"
		resp, code := tr.Token(t, req)
		servertest.WantCode(t, "Token", code, codes.OK)
		if resp.GetAccessToken() == "" || resp.GetRefreshToken() == "" || resp.GetTokenType() != "Bearer" ||
			resp.GetExpiresIn() != 900 || resp.GetScope() != "read write" {
			t.Fatalf("Token answer = %v", resp)
		}
		claims, code := tr.Check(t, resp.GetAccessToken())
		servertest.WantCode(t, "CheckToken", code, codes.OK)
		if claims.GetSubject() != "alice" || claims.GetRole() != "USER" || strings.Join(claims.GetScopes(), " ") != "read write" ||
			claims.GetIssuer() != servertest.Issuer || claims.GetTokenId() == "" ||
			claims.GetExpiresAt().AsTime().Sub(claims.GetIssuedAt().AsTime()) != 15*time.Minute {
			t.Fatalf("CheckToken answer = %v", claims)
		}
	})
}

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		first, code := tr.Token(t, servertest.PasswordRequest("alice", "wonderland"))
		servertest.WantCode(t, "Token", code, codes.OK)
		second, code := tr.Refresh(t, first.GetRefreshToken())
		servertest.WantCode(t, "RefreshToken", code, codes.OK)
		if second.GetRefreshToken() == "" || second.GetRefreshToken() == first.GetRefreshToken() {
			t.Fatalf("refresh did not rotate: %v", second)
		}
		if _, code := tr.Check(t, second.GetAccessToken()); code != codes.OK {
			t.Fatalf("refreshed access token refused: %v", code)
		}
		// Within the grace period a retry gets the same successor.
		retry, code := tr.Refresh(t, first.GetRefreshToken())
		servertest.WantCode(t, "RefreshToken retried within the grace period", code, codes.OK)
		if retry.GetRefreshToken() != second.GetRefreshToken() {
			t.Fatal("a retry within the grace period got another successor")
		}
		// After it, the rotated token is refused and its whole login revoked.
		e.Clock.Advance(servertest.GracePeriod + time.Second)
		_, code = tr.Refresh(t, first.GetRefreshToken())
		servertest.WantCode(t, "RefreshToken with the rotated token", code, codes.Unauthenticated)
		_, code = tr.Refresh(t, second.GetRefreshToken())
		servertest.WantCode(t, "RefreshToken with the successor of a reused token", code, codes.Unauthenticated)
		_, code = tr.Check(t, second.GetAccessToken())
		servertest.WantCode(t, "CheckToken of a revoked login", code, codes.Unauthenticated)
	})
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		grant, _ := tr.Token(t, servertest.PasswordRequest("alice", "wonderland"))
		servertest.WantCode(t, "Revoke by refresh token", servertest.Revoke(t, tr, "", &authv1.RevokeRequest{Token: grant.GetRefreshToken()}), codes.OK)
		_, code := tr.Refresh(t, grant.GetRefreshToken())
		servertest.WantCode(t, "refresh after revoke", code, codes.Unauthenticated)
		_, code = tr.Check(t, grant.GetAccessToken())
		servertest.WantCode(t, "CheckToken after revoke", code, codes.Unauthenticated)
		servertest.WantCode(t, "Revoke again", servertest.Revoke(t, tr, "", &authv1.RevokeRequest{Token: grant.GetRefreshToken()}), codes.OK)
		servertest.WantCode(t, "Revoke an unknown token", servertest.Revoke(t, tr, "", &authv1.RevokeRequest{Token: "chit_rt_unknown"}), codes.OK)
		servertest.WantCode(t, "Revoke nothing anonymously", servertest.Revoke(t, tr, "", &authv1.RevokeRequest{}), codes.Unauthenticated)

		service, _ := tr.Token(t, servertest.ClientRequest("billing", e.ServiceSecret))
		a, _ := tr.Token(t, servertest.PasswordRequest("alice", "wonderland"))
		b, _ := tr.Token(t, servertest.PasswordRequest("alice", "wonderland"))
		servertest.WantCode(t, "a user revoking someone else", servertest.Revoke(t, tr, a.GetAccessToken(), &authv1.RevokeRequest{Subject: "bob"}), codes.PermissionDenied)
		servertest.WantCode(t, "a service revoking alice", servertest.Revoke(t, tr, service.GetAccessToken(), &authv1.RevokeRequest{Subject: "alice"}), codes.PermissionDenied)
		servertest.WantCode(t, "alice revoking her sessions", servertest.Revoke(t, tr, a.GetAccessToken(), &authv1.RevokeRequest{}), codes.OK)
		for _, grant := range []*authv1.TokenResponse{a, b} {
			_, code := tr.Check(t, grant.GetAccessToken())
			servertest.WantCode(t, "CheckToken after revoking all sessions", code, codes.Unauthenticated)
		}
		e.Clock.Advance(time.Second)
	})
}

func TestClientCredentials(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		resp, code := tr.Token(t, servertest.ClientRequest("billing", e.ServiceSecret))
		servertest.WantCode(t, "Token", code, codes.OK)
		if resp.GetRefreshToken() != "" {
			t.Fatal("client credentials got a refresh token")
		}
		claims, code := tr.Check(t, resp.GetAccessToken())
		servertest.WantCode(t, "CheckToken", code, codes.OK)
		if claims.GetSubject() != "service:billing" || claims.GetRole() != "SERVICE" {
			t.Fatalf("claims = %v", claims)
		}
		_, code = tr.Token(t, servertest.ClientRequest("billing", "chit_cs_wrong"))
		servertest.WantCode(t, "Token with a wrong secret", code, codes.Unauthenticated)
	})
}

// A service deleted by an operator (straight in the store, as chitd service
// delete does) keeps signing in only until the server's cached copy of its
// account expires.
func TestDeletedServiceIsRefusedOnceItsCachedAccountExpires(t *testing.T) {
	t.Parallel()
	const cacheTime = 5 * time.Second
	for _, name := range []string{"gRPC", "REST"} {
		t.Run(name, func(t *testing.T) {
			e := servertest.Start(t, func(cfg *server.Config) { cfg.ServiceAccountCacheTTL = cacheTime })
			tr := servertest.Transports(e)[name]
			_, code := tr.Token(t, servertest.ClientRequest("billing", e.ServiceSecret))
			servertest.WantCode(t, "Token", code, codes.OK)
			if err := e.Store.DeleteServiceAccount(context.Background(), "billing", storage.SubjectRevocation{Subject: "service:billing", At: time.Now()}); err != nil {
				t.Fatal(err)
			}
			_, code = tr.Token(t, servertest.ClientRequest("billing", e.ServiceSecret))
			servertest.WantCode(t, "Token within the cache time of the deletion", code, codes.OK)
			e.Clock.Advance(cacheTime)
			_, code = tr.Token(t, servertest.ClientRequest("billing", e.ServiceSecret))
			servertest.WantCode(t, "Token after the cache time", code, codes.Unauthenticated)
		})
	}
}

func TestRefusedCredentials(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		for _, tc := range []struct {
			name string
			req  *authv1.TokenRequest
			want codes.Code
		}{
			{"wrong password", servertest.PasswordRequest("alice", "not-wonderland"), codes.Unauthenticated},
			{"unknown user", servertest.PasswordRequest("mallory", "wonderland"), codes.Unauthenticated},
			{"no credential", &authv1.TokenRequest{}, codes.InvalidArgument},
			{"missing username", servertest.PasswordRequest("", "wonderland"), codes.InvalidArgument},
			{"missing password", servertest.PasswordRequest("alice", ""), codes.InvalidArgument},
			{"missing client secret", servertest.ClientRequest("billing", ""), codes.InvalidArgument},
			{"bad scope", &authv1.TokenRequest{Credential: servertest.PasswordRequest("alice", "wonderland").Credential, Scope: "a\\b"}, codes.InvalidArgument},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, code := tr.Token(t, tc.req)
				servertest.WantCode(t, "Token", code, tc.want)
			})
		}
		_, code := tr.Refresh(t, "")
		servertest.WantCode(t, "RefreshToken without a token", code, codes.InvalidArgument)
		_, code = tr.Refresh(t, "chit_rt_not-a-real-token")
		servertest.WantCode(t, "RefreshToken with an unknown token", code, codes.Unauthenticated)
	})
}

func TestCheckRefusesBadTokens(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		good, code := tr.Token(t, servertest.PasswordRequest("alice", "wonderland"))
		servertest.WantCode(t, "Token", code, codes.OK)
		for _, tc := range []struct{ name, bearer string }{
			{"no token", ""},
			{"malformed JWT", "not.a.jwt"},
			{"garbage", "%%%"},
			{"signed by another key", servertest.ForeignToken(t)},
			{"payload swapped", swapPayload(t, good.GetAccessToken())},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, code := tr.Check(t, tc.bearer)
				servertest.WantCode(t, "CheckToken", code, codes.Unauthenticated)
			})
		}
	})
}

func TestExpiredToken(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		resp, code := tr.Token(t, servertest.PasswordRequest("alice", "wonderland"))
		servertest.WantCode(t, "Token", code, codes.OK)
		e.Clock.Advance(16 * time.Minute)
		defer e.Clock.Advance(-16 * time.Minute)
		_, code = tr.Check(t, resp.GetAccessToken())
		servertest.WantCode(t, "CheckToken after expiry", code, codes.Unauthenticated)
	})
}

func TestAuthStatus(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		resp, code := tr.AuthStatus(t)
		servertest.WantCode(t, "GetAuthStatus", code, codes.OK)
		if !resp.GetIsEnabled() || resp.GetIssuer() != servertest.Issuer || resp.GetTokenPath() != "/v1/auth/token" || resp.GetJwksPath() != "/.well-known/jwks.json" {
			t.Fatalf("GetAuthStatus = %v", resp)
		}
		servertest.WantCode(t, "LoginCli with an unknown code", tr.LoginCli(t), codes.Unauthenticated)
	})
}

func TestSignInThrottlingOverBothTransports(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"gRPC", "REST"} {
		t.Run(name, func(t *testing.T) {
			e := servertest.Start(t)
			tr := servertest.Transports(e)[name]
			for range 5 {
				_, code := tr.Token(t, servertest.PasswordRequest("alice", "guess-guess"))
				servertest.WantCode(t, "a free failure", code, codes.Unauthenticated)
			}
			_, code := tr.Token(t, servertest.PasswordRequest("alice", "wonderland"))
			servertest.WantCode(t, "the sixth try at once", code, codes.ResourceExhausted)
			if name == "REST" {
				resp, err := http.Post(e.HTTPBase()+"/v1/auth/token", "application/json",
					strings.NewReader(`{"passwordCredential":{"username":"alice","password":"wonderland"}}`))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
					t.Fatalf("HTTP %d, Retry-After %q; want 429 with a hint", resp.StatusCode, resp.Header.Get("Retry-After"))
				}
			}
			e.Clock.Advance(2 * time.Second)
			_, code = tr.Token(t, servertest.PasswordRequest("alice", "wonderland"))
			servertest.WantCode(t, "after the wait", code, codes.OK)
		})
	}
}

// swapPayload keeps a real token's header and signature but replaces its
// claims with another token's.
func swapPayload(t *testing.T, real string) string {
	t.Helper()
	parts := strings.Split(real, ".")
	other := strings.Split(servertest.ForeignToken(t), ".")
	return parts[0] + "." + other[1] + "." + parts[2]
}
