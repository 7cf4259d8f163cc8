package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

const issuer = servertest.Issuer

type env = servertest.Env

func startServer(t *testing.T) *env { return servertest.Start(t) }

// transport is one way to call the API: gRPC or REST through the gateway.
// Every behaviour test runs on both.
type transport interface {
	token(t *testing.T, req *authv1.TokenRequest) (*authv1.TokenResponse, codes.Code)
	refresh(t *testing.T, refreshToken string) (*authv1.TokenResponse, codes.Code)
	check(t *testing.T, bearer string) (*authv1.CheckTokenResponse, codes.Code)
	authStatus(t *testing.T) (*authv1.GetAuthStatusResponse, codes.Code)
	loginCli(t *testing.T) codes.Code
	// invoke calls any RPC by its full gRPC method name.
	invoke(t *testing.T, fullMethod, bearer string, req, resp proto.Message) codes.Code
}

func transports(e *env) map[string]transport {
	return map[string]transport{
		"gRPC": &grpcTransport{conn: e.Conn, auth: authv1.NewAuthServiceClient(e.Conn), providers: authv1.NewAuthProvidersClient(e.Conn)},
		"REST": &restTransport{base: "http://" + e.Server.HTTPAddr()},
	}
}

type grpcTransport struct {
	conn      *grpc.ClientConn
	auth      authv1.AuthServiceClient
	providers authv1.AuthProvidersClient
}

func withBearer(bearer string) context.Context {
	ctx := context.Background()
	if bearer != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+bearer)
	}
	return ctx
}

func (g *grpcTransport) token(t *testing.T, req *authv1.TokenRequest) (*authv1.TokenResponse, codes.Code) {
	resp, err := g.auth.Token(context.Background(), req)
	return resp, status.Code(err)
}

func (g *grpcTransport) refresh(t *testing.T, refreshToken string) (*authv1.TokenResponse, codes.Code) {
	resp, err := g.auth.RefreshToken(context.Background(), &authv1.RefreshTokenRequest{RefreshToken: refreshToken})
	return resp, status.Code(err)
}

func (g *grpcTransport) check(t *testing.T, bearer string) (*authv1.CheckTokenResponse, codes.Code) {
	resp, err := g.auth.CheckToken(withBearer(bearer), &authv1.CheckTokenRequest{})
	return resp, status.Code(err)
}

func (g *grpcTransport) authStatus(t *testing.T) (*authv1.GetAuthStatusResponse, codes.Code) {
	resp, err := g.auth.GetAuthStatus(context.Background(), &authv1.GetAuthStatusRequest{})
	return resp, status.Code(err)
}

func (g *grpcTransport) loginCli(t *testing.T) codes.Code {
	_, err := g.auth.LoginCli(context.Background(), &authv1.LoginCliRequest{Code: "x", RedirectUri: "http://127.0.0.1:1/cb"})
	return status.Code(err)
}

func (g *grpcTransport) invoke(t *testing.T, fullMethod, bearer string, req, resp proto.Message) codes.Code {
	return status.Code(g.conn.Invoke(withBearer(bearer), fullMethod, req, resp))
}

type restTransport struct{ base string }

// restRoutes mirrors proto/chit/auth/v1/auth_api.yaml for the RPCs that
// tests call through invoke.
var restRoutes = map[string]struct{ method, path string }{
	authv1.AuthProviders_Register_FullMethodName:                   {http.MethodPost, "/auth/providers"},
	authv1.AuthProviders_Claim_FullMethodName:                      {http.MethodPost, "/auth/providers/claim"},
	authv1.AuthProviders_Renew_FullMethodName:                      {http.MethodPost, "/auth/providers/renew"},
	authv1.AuthProviders_Refresh_FullMethodName:                    {http.MethodPost, "/auth/providers/refresh"},
	authv1.AuthProviders_RetrievePublicKey_FullMethodName:          {http.MethodGet, "/auth/providers/retrieveKey"},
	authv1.AuthProviders_RefreshAsOrchestrator_FullMethodName:      {http.MethodPost, "/auth/providers/refreshAsOrchestrator"},
	authv1.AuthProviders_GenerateKeyPair_FullMethodName:            {http.MethodPost, "/auth/providers/generateKeyPair"},
	authv1.AuthService_CheckToken_FullMethodName:                   {http.MethodGet, "/v1/auth/check"},
	authv1.AuthService_GetAuthorizeUrl_FullMethodName:              {http.MethodGet, "/v1/auth/authorize-url"},
	authv1.AuthService_LoginCli_FullMethodName:                     {http.MethodPost, "/v1/auth/cli/login"},
	authv1.AuthService_RefreshCli_FullMethodName:                   {http.MethodPost, "/v1/auth/cli/refresh"},
	authv1.AuthService_RefreshToken_FullMethodName:                 {http.MethodPost, "/v1/auth/token/refresh"},
	authv1.AuthService_Revoke_FullMethodName:                       {http.MethodPost, "/v1/auth/revoke"},
	authv1.AuthService_CreateApiKey_FullMethodName:                 {http.MethodPost, "/v1/auth/api-keys"},
	authv1.AuthService_ListApiKeys_FullMethodName:                  {http.MethodGet, "/v1/auth/api-keys"},
	authv1.AuthService_RevokeApiKey_FullMethodName:                 {http.MethodDelete, "/v1/auth/api-keys/{id}"},
	adminv1.AdminService_ListApiKeys_FullMethodName:                {http.MethodGet, "/v1/admin/subjects/{subject}/api-keys"},
	adminv1.AdminService_RevokeApiKey_FullMethodName:               {http.MethodDelete, "/v1/admin/api-keys/{id}"},
	adminv1.AdminService_CreateUser_FullMethodName:                 {http.MethodPost, "/v1/admin/users"},
	adminv1.AdminService_GetUser_FullMethodName:                    {http.MethodGet, "/v1/admin/users/{name}"},
	adminv1.AdminService_ListUsers_FullMethodName:                  {http.MethodGet, "/v1/admin/users"},
	adminv1.AdminService_SetUserRole_FullMethodName:                {http.MethodPut, "/v1/admin/users/{name}/role"},
	adminv1.AdminService_SetUserScopes_FullMethodName:              {http.MethodPut, "/v1/admin/users/{name}/scopes"},
	adminv1.AdminService_DeleteUser_FullMethodName:                 {http.MethodDelete, "/v1/admin/users/{name}"},
	adminv1.AdminService_CreateServiceAccount_FullMethodName:       {http.MethodPost, "/v1/admin/service-accounts"},
	adminv1.AdminService_GetServiceAccount_FullMethodName:          {http.MethodGet, "/v1/admin/service-accounts/{client_id}"},
	adminv1.AdminService_ListServiceAccounts_FullMethodName:        {http.MethodGet, "/v1/admin/service-accounts"},
	adminv1.AdminService_SetServiceAccountGrants_FullMethodName:    {http.MethodPut, "/v1/admin/service-accounts/{client_id}/grants"},
	adminv1.AdminService_RotateServiceAccountSecret_FullMethodName: {http.MethodPost, "/v1/admin/service-accounts/{client_id}/secret"},
	adminv1.AdminService_DeleteServiceAccount_FullMethodName:       {http.MethodDelete, "/v1/admin/service-accounts/{client_id}"},
	adminv1.AdminService_CreateClient_FullMethodName:               {http.MethodPost, "/v1/admin/clients"},
	adminv1.AdminService_GetClient_FullMethodName:                  {http.MethodGet, "/v1/admin/clients/{client_id}"},
	adminv1.AdminService_ListClients_FullMethodName:                {http.MethodGet, "/v1/admin/clients"},
	adminv1.AdminService_SetClientGrants_FullMethodName:            {http.MethodPut, "/v1/admin/clients/{client_id}/grants"},
	adminv1.AdminService_RotateClientSecret_FullMethodName:         {http.MethodPost, "/v1/admin/clients/{client_id}/secret"},
	adminv1.AdminService_DeleteClient_FullMethodName:               {http.MethodDelete, "/v1/admin/clients/{client_id}"},
	adminv1.AdminService_GetProvider_FullMethodName:                {http.MethodGet, "/v1/admin/providers/{id}"},
	adminv1.AdminService_ListProviders_FullMethodName:              {http.MethodGet, "/v1/admin/providers"},
	adminv1.AdminService_DeleteProvider_FullMethodName:             {http.MethodDelete, "/v1/admin/providers/{id}"},
	adminv1.AdminService_ListSigningKeys_FullMethodName:            {http.MethodGet, "/v1/admin/signing-keys"},
	adminv1.AdminService_RotateSigningKeys_FullMethodName:          {http.MethodPost, "/v1/admin/signing-keys/rotate"},
	adminv1.AdminService_ListLogins_FullMethodName:                 {http.MethodGet, "/v1/admin/subjects/{subject}/logins"},
	adminv1.AdminService_RevokeLogin_FullMethodName:                {http.MethodDelete, "/v1/admin/subjects/{subject}/logins/{login_id}"},
	adminv1.AdminService_RevokeLogins_FullMethodName:               {http.MethodDelete, "/v1/admin/subjects/{subject}/logins"},
}

func (r *restTransport) invoke(t *testing.T, fullMethod, bearer string, req, resp proto.Message) codes.Code {
	t.Helper()
	route, ok := restRoutes[fullMethod]
	if !ok {
		t.Fatalf("no REST route for %s", fullMethod)
	}
	// A {field} of the path takes the request's field, escaped; GET and
	// DELETE send the other fields in the query, the others in the body.
	query := queryOf(t, req)
	path := route.path
	for name := range query {
		if placeholder := "{" + name + "}"; strings.Contains(path, placeholder) {
			path = strings.ReplaceAll(path, placeholder, url.PathEscape(query.Get(name)))
			query.Del(name)
		}
	}
	if strings.Contains(path, "{") {
		t.Fatalf("%s: a field of the path %s is empty, which REST cannot send", fullMethod, route.path)
	}
	if route.method == http.MethodGet || route.method == http.MethodDelete {
		return r.call(t, route.method, path+"?"+query.Encode(), bearer, nil, resp)
	}
	return r.call(t, route.method, path, bearer, req, resp)
}

// call sends one REST request and decodes a 200 answer into resp. For an
// error it checks that the HTTP status matches the gRPC code in the body,
// the mapping grpc-gateway documents, and returns that code.
func (r *restTransport) call(t *testing.T, method, path, bearer string, req, resp proto.Message) codes.Code {
	t.Helper()
	var body io.Reader
	if req != nil {
		encoded, err := protojson.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(encoded)
	}
	httpReq, err := http.NewRequest(method, r.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	httpReq.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		httpReq.Header.Set("Authorization", "Bearer "+bearer)
	}
	httpResp, err := http.DefaultClient.Do(httpReq)
	if err != nil {
		t.Fatal(err)
	}
	defer httpResp.Body.Close()
	raw, err := io.ReadAll(httpResp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if httpResp.StatusCode == http.StatusOK {
		if resp != nil {
			if err := protojson.Unmarshal(raw, resp); err != nil {
				t.Fatalf("decode %s answer %s: %v", path, raw, err)
			}
		}
		return codes.OK
	}
	var failure struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(raw, &failure); err != nil {
		t.Fatalf("%s answered %d with a body that is not a JSON error: %s", path, httpResp.StatusCode, raw)
	}
	code := codes.Code(failure.Code)
	if want := runtime.HTTPStatusFromCode(code); httpResp.StatusCode != want {
		t.Fatalf("%s: HTTP %d for gRPC code %v, want %d", path, httpResp.StatusCode, code, want)
	}
	if failure.Message == "" {
		t.Fatalf("%s: error without a message: %s", path, raw)
	}
	return code
}

func (r *restTransport) token(t *testing.T, req *authv1.TokenRequest) (*authv1.TokenResponse, codes.Code) {
	resp := &authv1.TokenResponse{}
	return resp, r.call(t, http.MethodPost, "/v1/auth/token", "", req, resp)
}

func (r *restTransport) refresh(t *testing.T, refreshToken string) (*authv1.TokenResponse, codes.Code) {
	resp := &authv1.TokenResponse{}
	return resp, r.call(t, http.MethodPost, "/v1/auth/token/refresh", "", &authv1.RefreshTokenRequest{RefreshToken: refreshToken}, resp)
}

func (r *restTransport) check(t *testing.T, bearer string) (*authv1.CheckTokenResponse, codes.Code) {
	resp := &authv1.CheckTokenResponse{}
	return resp, r.call(t, http.MethodGet, "/v1/auth/check", bearer, nil, resp)
}

func (r *restTransport) authStatus(t *testing.T) (*authv1.GetAuthStatusResponse, codes.Code) {
	resp := &authv1.GetAuthStatusResponse{}
	return resp, r.call(t, http.MethodGet, "/v1/auth/status", "", nil, resp)
}

func (r *restTransport) loginCli(t *testing.T) codes.Code {
	return r.call(t, http.MethodPost, "/v1/auth/cli/login", "", &authv1.LoginCliRequest{Code: "x", RedirectUri: "http://127.0.0.1:1/cb"}, nil)
}

func passwordRequest(user, password string) *authv1.TokenRequest {
	return &authv1.TokenRequest{Credential: &authv1.TokenRequest_PasswordCredential{
		PasswordCredential: &authv1.PasswordCredential{Username: user, Password: password}}}
}

func clientRequest(id, secret string) *authv1.TokenRequest {
	return &authv1.TokenRequest{Credential: &authv1.TokenRequest_ClientCredential{
		ClientCredential: &authv1.ClientCredential{ClientId: id, ClientSecret: secret}}}
}

func wantCode(t *testing.T, what string, got, want codes.Code) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got code %v, want %v", what, got, want)
	}
}

// forEachTransport runs test over each transport, each on a server of its
// own: what one transport's run changes (throttle counts, revocations, the
// clock) never reaches the other's.
func forEachTransport(t *testing.T, test func(t *testing.T, e *env, tr transport)) {
	for _, name := range transportNames {
		t.Run(name, func(t *testing.T) {
			e := startServer(t)
			test(t, e, transports(e)[name])
		})
	}
}

// transportNames are transports' keys, in a fixed order.
var transportNames = []string{"gRPC", "REST"}

func TestPasswordTokenAndCheck(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, tr transport) {
		req := passwordRequest("alice", "wonderland")
		req.Scope = "read write"
		resp, code := tr.token(t, req)
		wantCode(t, "Token", code, codes.OK)
		if resp.GetAccessToken() == "" || resp.GetRefreshToken() == "" || resp.GetTokenType() != "Bearer" ||
			resp.GetExpiresIn() != 900 || resp.GetScope() != "read write" {
			t.Fatalf("Token answer = %v", resp)
		}
		claims, code := tr.check(t, resp.GetAccessToken())
		wantCode(t, "CheckToken", code, codes.OK)
		if claims.GetSubject() != "alice" || claims.GetRole() != "USER" || strings.Join(claims.GetScopes(), " ") != "read write" ||
			claims.GetIssuer() != issuer || claims.GetTokenId() == "" ||
			claims.GetExpiresAt().AsTime().Sub(claims.GetIssuedAt().AsTime()) != 15*time.Minute {
			t.Fatalf("CheckToken answer = %v", claims)
		}
	})
}

func TestRefreshRotation(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, tr transport) {
		first, code := tr.token(t, passwordRequest("alice", "wonderland"))
		wantCode(t, "Token", code, codes.OK)
		second, code := tr.refresh(t, first.GetRefreshToken())
		wantCode(t, "RefreshToken", code, codes.OK)
		if second.GetRefreshToken() == "" || second.GetRefreshToken() == first.GetRefreshToken() {
			t.Fatalf("refresh did not rotate: %v", second)
		}
		if _, code := tr.check(t, second.GetAccessToken()); code != codes.OK {
			t.Fatalf("refreshed access token refused: %v", code)
		}
		// Within the grace period a retry gets the same successor.
		retry, code := tr.refresh(t, first.GetRefreshToken())
		wantCode(t, "RefreshToken retried within the grace period", code, codes.OK)
		if retry.GetRefreshToken() != second.GetRefreshToken() {
			t.Fatal("a retry within the grace period got another successor")
		}
		// After it, the rotated token is refused and its whole login revoked.
		e.Clock.Advance(servertest.GracePeriod + time.Second)
		_, code = tr.refresh(t, first.GetRefreshToken())
		wantCode(t, "RefreshToken with the rotated token", code, codes.Unauthenticated)
		_, code = tr.refresh(t, second.GetRefreshToken())
		wantCode(t, "RefreshToken with the successor of a reused token", code, codes.Unauthenticated)
		_, code = tr.check(t, second.GetAccessToken())
		wantCode(t, "CheckToken of a revoked login", code, codes.Unauthenticated)
	})
}

func revoke(t *testing.T, tr transport, bearer string, req *authv1.RevokeRequest) codes.Code {
	t.Helper()
	return tr.invoke(t, authv1.AuthService_Revoke_FullMethodName, bearer, req, &authv1.RevokeResponse{})
}

func TestRevoke(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, tr transport) {
		grant, _ := tr.token(t, passwordRequest("alice", "wonderland"))
		wantCode(t, "Revoke by refresh token", revoke(t, tr, "", &authv1.RevokeRequest{Token: grant.GetRefreshToken()}), codes.OK)
		_, code := tr.refresh(t, grant.GetRefreshToken())
		wantCode(t, "refresh after revoke", code, codes.Unauthenticated)
		_, code = tr.check(t, grant.GetAccessToken())
		wantCode(t, "CheckToken after revoke", code, codes.Unauthenticated)
		wantCode(t, "Revoke again", revoke(t, tr, "", &authv1.RevokeRequest{Token: grant.GetRefreshToken()}), codes.OK)
		wantCode(t, "Revoke an unknown token", revoke(t, tr, "", &authv1.RevokeRequest{Token: "chit_rt_unknown"}), codes.OK)
		wantCode(t, "Revoke nothing anonymously", revoke(t, tr, "", &authv1.RevokeRequest{}), codes.Unauthenticated)

		service, _ := tr.token(t, clientRequest("billing", e.ServiceSecret))
		a, _ := tr.token(t, passwordRequest("alice", "wonderland"))
		b, _ := tr.token(t, passwordRequest("alice", "wonderland"))
		wantCode(t, "a user revoking someone else", revoke(t, tr, a.GetAccessToken(), &authv1.RevokeRequest{Subject: "bob"}), codes.PermissionDenied)
		wantCode(t, "a service revoking alice", revoke(t, tr, service.GetAccessToken(), &authv1.RevokeRequest{Subject: "alice"}), codes.PermissionDenied)
		wantCode(t, "alice revoking her sessions", revoke(t, tr, a.GetAccessToken(), &authv1.RevokeRequest{}), codes.OK)
		for _, grant := range []*authv1.TokenResponse{a, b} {
			_, code := tr.check(t, grant.GetAccessToken())
			wantCode(t, "CheckToken after revoking all sessions", code, codes.Unauthenticated)
		}
		e.Clock.Advance(time.Second)
	})
}

func TestClientCredentials(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, tr transport) {
		resp, code := tr.token(t, clientRequest("billing", e.ServiceSecret))
		wantCode(t, "Token", code, codes.OK)
		if resp.GetRefreshToken() != "" {
			t.Fatal("client credentials got a refresh token")
		}
		claims, code := tr.check(t, resp.GetAccessToken())
		wantCode(t, "CheckToken", code, codes.OK)
		if claims.GetSubject() != "service:billing" || claims.GetRole() != "SERVICE" {
			t.Fatalf("claims = %v", claims)
		}
		_, code = tr.token(t, clientRequest("billing", "chit_cs_wrong"))
		wantCode(t, "Token with a wrong secret", code, codes.Unauthenticated)
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
			tr := transports(e)[name]
			_, code := tr.token(t, clientRequest("billing", e.ServiceSecret))
			wantCode(t, "Token", code, codes.OK)
			if err := e.Store.DeleteServiceAccount(context.Background(), "billing", storage.SubjectRevocation{Subject: "service:billing", At: time.Now()}); err != nil {
				t.Fatal(err)
			}
			_, code = tr.token(t, clientRequest("billing", e.ServiceSecret))
			wantCode(t, "Token within the cache time of the deletion", code, codes.OK)
			e.Clock.Advance(cacheTime)
			_, code = tr.token(t, clientRequest("billing", e.ServiceSecret))
			wantCode(t, "Token after the cache time", code, codes.Unauthenticated)
		})
	}
}

func TestRefusedCredentials(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, tr transport) {
		for _, tc := range []struct {
			name string
			req  *authv1.TokenRequest
			want codes.Code
		}{
			{"wrong password", passwordRequest("alice", "not-wonderland"), codes.Unauthenticated},
			{"unknown user", passwordRequest("mallory", "wonderland"), codes.Unauthenticated},
			{"no credential", &authv1.TokenRequest{}, codes.InvalidArgument},
			{"missing username", passwordRequest("", "wonderland"), codes.InvalidArgument},
			{"missing password", passwordRequest("alice", ""), codes.InvalidArgument},
			{"missing client secret", clientRequest("billing", ""), codes.InvalidArgument},
			{"bad scope", &authv1.TokenRequest{Credential: passwordRequest("alice", "wonderland").Credential, Scope: "a\\b"}, codes.InvalidArgument},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, code := tr.token(t, tc.req)
				wantCode(t, "Token", code, tc.want)
			})
		}
		_, code := tr.refresh(t, "")
		wantCode(t, "RefreshToken without a token", code, codes.InvalidArgument)
		_, code = tr.refresh(t, "chit_rt_not-a-real-token")
		wantCode(t, "RefreshToken with an unknown token", code, codes.Unauthenticated)
	})
}

func TestCheckRefusesBadTokens(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, tr transport) {
		good, code := tr.token(t, passwordRequest("alice", "wonderland"))
		wantCode(t, "Token", code, codes.OK)
		for _, tc := range []struct{ name, bearer string }{
			{"no token", ""},
			{"malformed JWT", "not.a.jwt"},
			{"garbage", "%%%"},
			{"signed by another key", foreignToken(t)},
			{"payload swapped", swapPayload(t, good.GetAccessToken())},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, code := tr.check(t, tc.bearer)
				wantCode(t, "CheckToken", code, codes.Unauthenticated)
			})
		}
	})
}

func TestExpiredToken(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, tr transport) {
		resp, code := tr.token(t, passwordRequest("alice", "wonderland"))
		wantCode(t, "Token", code, codes.OK)
		e.Clock.Advance(16 * time.Minute)
		defer e.Clock.Advance(-16 * time.Minute)
		_, code = tr.check(t, resp.GetAccessToken())
		wantCode(t, "CheckToken after expiry", code, codes.Unauthenticated)
	})
}

func TestAuthStatus(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, tr transport) {
		resp, code := tr.authStatus(t)
		wantCode(t, "GetAuthStatus", code, codes.OK)
		if !resp.GetIsEnabled() || resp.GetIssuer() != issuer || resp.GetTokenPath() != "/v1/auth/token" || resp.GetJwksPath() != "/.well-known/jwks.json" {
			t.Fatalf("GetAuthStatus = %v", resp)
		}
		wantCode(t, "LoginCli with an unknown code", tr.loginCli(t), codes.Unauthenticated)
	})
}

// A service verifies Chit's tokens with nothing but the published JWKS.
func TestTokenVerifiesWithJWKSAlone(t *testing.T) {
	e := startServer(t)
	resp, err := authv1.NewAuthServiceClient(e.Conn).Token(context.Background(), passwordRequest("alice", "wonderland"))
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
		jwt.WithIssuer(issuer), jwt.WithAudience("chit"), jwt.WithClock(jwt.ClockFunc(e.Clock.Now)))
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
	e := startServer(t)
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
	e := startServer(t)
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
	e := startServer(t)
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
	token, _ := jwt.NewBuilder().Issuer(issuer).Subject("alice").Audience([]string{"chit"}).
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
	e := startServer(t)
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

// queryOf encodes a flat request message as query parameters, the way
// grpc-gateway reads GET requests.
func queryOf(t *testing.T, req proto.Message) url.Values {
	t.Helper()
	encoded, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(encoded, &fields); err != nil {
		t.Fatal(err)
	}
	query := url.Values{}
	for name, value := range fields {
		query.Set(name, fmt.Sprint(value))
	}
	return query
}

func TestOpenIDConfiguration(t *testing.T) {
	e := startServer(t)
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
		"issuer":                 issuer,
		"jwks_uri":               issuer + "/.well-known/jwks.json",
		"authorization_endpoint": issuer + "/oauth2/authorize",
		"chit_token_endpoint":    issuer + "/v1/auth/token",
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
			e := startServer(t)
			tr := transports(e)[name]
			for range 5 {
				_, code := tr.token(t, passwordRequest("alice", "guess-guess"))
				wantCode(t, "a free failure", code, codes.Unauthenticated)
			}
			_, code := tr.token(t, passwordRequest("alice", "wonderland"))
			wantCode(t, "the sixth try at once", code, codes.ResourceExhausted)
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
			_, code = tr.token(t, passwordRequest("alice", "wonderland"))
			wantCode(t, "after the wait", code, codes.OK)
		})
	}
}
