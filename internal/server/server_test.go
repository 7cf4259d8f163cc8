package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"google.golang.org/grpc/codes"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

func TestPasswordTokenAndCheck(t *testing.T) {
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
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		good, code := tr.Token(t, servertest.PasswordRequest("alice", "wonderland"))
		servertest.WantCode(t, "Token", code, codes.OK)
		for _, tc := range []struct{ name, bearer string }{
			{"no token", ""},
			{"malformed JWT", "not.a.jwt"},
			{"garbage", "%%%"},
			{"signed by another key", foreignToken(t)},
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
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		resp, code := tr.AuthStatus(t)
		servertest.WantCode(t, "GetAuthStatus", code, codes.OK)
		if !resp.GetIsEnabled() || resp.GetIssuer() != servertest.Issuer || resp.GetTokenPath() != "/v1/auth/token" || resp.GetJwksPath() != "/.well-known/jwks.json" {
			t.Fatalf("GetAuthStatus = %v", resp)
		}
		servertest.WantCode(t, "LoginCli with an unknown code", tr.LoginCli(t), codes.Unauthenticated)
	})
}

// A service verifies Chit's tokens with nothing but the published JWKS.
func TestTokenVerifiesWithJWKSAlone(t *testing.T) {
	e := servertest.Start(t)
	resp, err := authv1.NewAuthServiceClient(e.Conn).Token(context.Background(), servertest.PasswordRequest("alice", "wonderland"))
	if err != nil {
		t.Fatal(err)
	}
	httpResp, err := http.Get("http://" + e.Server.HTTPAddr() + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer httpResp.Body.Close()
	if ct := httpResp.Header.Get("Content-Type"); ct != "application/jwk-set+json" {
		t.Fatalf("JWKS content type %q", ct)
	}
	raw, _ := io.ReadAll(httpResp.Body)
	set, err := jwk.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwt.ParseString(resp.GetAccessToken(), jwt.WithKeySet(set), jwt.WithValidate(true),
		jwt.WithIssuer(servertest.Issuer), jwt.WithAudience("chit"), jwt.WithClock(jwt.ClockFunc(e.Clock.Now)))
	if err != nil {
		t.Fatalf("verify with the JWKS: %v", err)
	}
	for _, claim := range []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "role"} {
		if _, ok := token.Get(claim); !ok {
			t.Errorf("claim %q missing", claim)
		}
	}
	if role, _ := token.Get("role"); role != "USER" || token.Subject() != "alice" {
		t.Fatalf("claims sub=%q role=%v", token.Subject(), role)
	}
	// The same JWKS must not verify a token from a key it does not hold.
	if _, err := jwt.ParseString(foreignToken(t), jwt.WithKeySet(set)); err == nil {
		t.Fatal("JWKS verified a foreign token")
	}
}

// The REST field names are lowerCamel JSON, as the OpenAPI document says.
func TestRESTFieldNames(t *testing.T) {
	e := servertest.Start(t)
	body := `{"passwordCredential":{"username":"alice","password":"wonderland"},"scope":"read"}`
	resp, err := http.Post("http://"+e.Server.HTTPAddr()+"/v1/auth/token", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"accessToken", "refreshToken", "expiresIn", "tokenType", "scope"} {
		if _, ok := answer[field]; !ok {
			t.Errorf("answer %v lacks %q", answer, field)
		}
	}
}

func TestHTTPPortServesDocuments(t *testing.T) {
	e := servertest.Start(t)
	for _, tc := range []struct{ name, path, wantContentType, wantBody string }{
		{"the OpenAPI document with the provider routes", "/openapi.json", "application/json", `"/auth/providers/refresh"`},
		{"the OpenAPI document with the admin routes", "/openapi.json", "application/json", `"/v1/admin/users/{name}/scopes"`},
		{"the health check", "/healthz", "application/json", `SERVING`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get("http://" + e.Server.HTTPAddr() + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.wantContentType) || !bytes.Contains(raw, []byte(tc.wantBody)) {
				t.Fatalf("%s: %d %q %.200s", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
			}
		})
	}
}

func TestOversizedRESTBodyIsRefused(t *testing.T) {
	e := servertest.Start(t)
	body := `{"refreshToken":"` + strings.Repeat("a", 2<<20) + `"}`
	resp, err := http.Post("http://"+e.Server.HTTPAddr()+"/v1/auth/token/refresh", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("2 MiB body: HTTP %d, want 413", resp.StatusCode)
	}
}

func foreignToken(t *testing.T) string {
	t.Helper()
	record, err := keys.Generate(jwa.ES256, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.ParseKey(record.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	token, _ := jwt.NewBuilder().Issuer(servertest.Issuer).Subject("alice").Audience([]string{"chit"}).
		IssuedAt(time.Now()).Expiration(time.Now().Add(time.Minute)).Claim("role", "ADMIN").Build()
	signed, err := jwt.Sign(token, jwt.WithKey(jwa.ES256, key))
	if err != nil {
		t.Fatal(err)
	}
	// The form Chit signs: any other encoding is refused first.
	if signed, err = keys.NormalizeLowS(signed, jwa.ES256); err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// swapPayload keeps a real token's header and signature but replaces its
// claims with another token's.
func swapPayload(t *testing.T, real string) string {
	t.Helper()
	parts := strings.Split(real, ".")
	other := strings.Split(foreignToken(t), ".")
	return parts[0] + "." + other[1] + "." + parts[2]
}

// grpcurl's `list` works through server reflection.
func TestReflectionListsServices(t *testing.T) {
	e := servertest.Start(t)
	stream, err := reflectionpb.NewServerReflectionClient(e.Conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, svc := range resp.GetListServicesResponse().GetService() {
		found[svc.GetName()] = true
	}
	for _, want := range []string{"chit.auth.v1.AuthService", "chit.auth.v1.AuthProviders", "grpc.health.v1.Health"} {
		if !found[want] {
			t.Errorf("reflection does not list %s (got %v)", want, found)
		}
	}
}

func TestOpenIDConfiguration(t *testing.T) {
	e := servertest.Start(t)
	resp, err := http.Get(e.HTTPBase() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"issuer":                 servertest.Issuer,
		"jwks_uri":               servertest.Issuer + "/.well-known/jwks.json",
		"authorization_endpoint": servertest.Issuer + "/oauth2/authorize",
		"chit_token_endpoint":    servertest.Issuer + "/v1/auth/token",
	}
	for name, value := range want {
		if doc[name] != value {
			t.Errorf("%s = %v, want %v", name, doc[name], value)
		}
	}
	if algs, _ := doc["id_token_signing_alg_values_supported"].([]any); len(algs) != 1 || algs[0] != "ES256" {
		t.Errorf("algorithms %v, want [ES256]", doc["id_token_signing_alg_values_supported"])
	}
	if methods, _ := doc["code_challenge_methods_supported"].([]any); len(methods) != 1 || methods[0] != "S256" {
		t.Errorf("PKCE methods %v", doc["code_challenge_methods_supported"])
	}
}

func TestSignInThrottlingOverBothTransports(t *testing.T) {
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
