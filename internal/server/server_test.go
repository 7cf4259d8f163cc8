package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/grants"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// A service verifies Chit's tokens with nothing but the published JWKS.
func TestTokenVerifiesWithJWKSAlone(t *testing.T) {
	t.Parallel()
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
	if _, err := jwt.ParseString(servertest.ForeignToken(t), jwt.WithKeySet(set)); err == nil {
		t.Fatal("JWKS verified a foreign token")
	}
}

// The REST field names are lowerCamel JSON, as the OpenAPI document says.
func TestRESTFieldNames(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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

// grpcurl's `list` works through server reflection.
func TestReflectionListsServices(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
		// RFC 9207: authorization responses carry iss.
		"authorization_response_iss_parameter_supported": true,
	}
	for name, value := range want {
		if doc[name] != value {
			t.Errorf("%s = %v, want %v", name, doc[name], value)
		}
	}
	// ID tokens: the configured algorithm, and RS256 beside it (OIDC Core
	// §15.1), for clients registered so.
	if algs, _ := doc["id_token_signing_alg_values_supported"].([]any); len(algs) != 2 || algs[0] != "ES256" || algs[1] != "RS256" {
		t.Errorf("algorithms %v, want [ES256 RS256]", doc["id_token_signing_alg_values_supported"])
	}
	if methods, _ := doc["code_challenge_methods_supported"].([]any); len(methods) != 1 || methods[0] != "S256" {
		t.Errorf("PKCE methods %v", doc["code_challenge_methods_supported"])
	}
}

// Discovery advertises the grant table's grant types, in its order, and the
// client authentications its grants accept.
func TestDiscoveryAdvertisesTheGrantTable(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	resp, err := http.Get(e.HTTPBase() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		GrantTypes  []string `json:"grant_types_supported"`
		AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if want := grants.Types(); len(want) == 0 || !slices.Equal(doc.GrantTypes, want) {
		t.Fatalf("grant_types_supported = %v, want the table's %v", doc.GrantTypes, want)
	}
	if want := []string{"client_secret_basic", "client_secret_post", "none"}; !slices.Equal(doc.AuthMethods, want) {
		t.Fatalf("token_endpoint_auth_methods_supported = %v, want %v", doc.AuthMethods, want)
	}
}
