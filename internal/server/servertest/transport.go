package servertest

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

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
)

// Transport is one way to call the API: gRPC or REST through the gateway.
// Every behaviour test runs on both.
type Transport interface {
	Token(t *testing.T, req *authv1.TokenRequest) (*authv1.TokenResponse, codes.Code)
	Refresh(t *testing.T, refreshToken string) (*authv1.TokenResponse, codes.Code)
	Check(t *testing.T, bearer string) (*authv1.CheckTokenResponse, codes.Code)
	AuthStatus(t *testing.T) (*authv1.GetAuthStatusResponse, codes.Code)
	// LoginCli exchanges a code that was never issued.
	LoginCli(t *testing.T) codes.Code
	// Invoke calls any RPC by its full gRPC method name.
	Invoke(t *testing.T, fullMethod, bearer string, req, resp proto.Message) codes.Code
}

// Transports are the two ways to call e: its gRPC port and its REST gateway.
func Transports(e *Env) map[string]Transport {
	return map[string]Transport{
		"gRPC": &GRPCTransport{conn: e.Conn, auth: authv1.NewAuthServiceClient(e.Conn), providers: authv1.NewAuthProvidersClient(e.Conn)},
		"REST": &RESTTransport{base: "http://" + e.Server.HTTPAddr()},
	}
}

// GRPCTransport calls the gRPC port.
type GRPCTransport struct {
	conn      *grpc.ClientConn
	auth      authv1.AuthServiceClient
	providers authv1.AuthProvidersClient
}

// WithBearer is a context whose outgoing metadata carries bearer (none when
// bearer is empty).
func WithBearer(bearer string) context.Context {
	ctx := context.Background()
	if bearer != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+bearer)
	}
	return ctx
}

func (g *GRPCTransport) Token(t *testing.T, req *authv1.TokenRequest) (*authv1.TokenResponse, codes.Code) {
	resp, err := g.auth.Token(context.Background(), req)
	return resp, status.Code(err)
}

func (g *GRPCTransport) Refresh(t *testing.T, refreshToken string) (*authv1.TokenResponse, codes.Code) {
	resp, err := g.auth.RefreshToken(context.Background(), &authv1.RefreshTokenRequest{RefreshToken: refreshToken})
	return resp, status.Code(err)
}

func (g *GRPCTransport) Check(t *testing.T, bearer string) (*authv1.CheckTokenResponse, codes.Code) {
	resp, err := g.auth.CheckToken(WithBearer(bearer), &authv1.CheckTokenRequest{})
	return resp, status.Code(err)
}

func (g *GRPCTransport) AuthStatus(t *testing.T) (*authv1.GetAuthStatusResponse, codes.Code) {
	resp, err := g.auth.GetAuthStatus(context.Background(), &authv1.GetAuthStatusRequest{})
	return resp, status.Code(err)
}

func (g *GRPCTransport) LoginCli(t *testing.T) codes.Code {
	_, err := g.auth.LoginCli(context.Background(), &authv1.LoginCliRequest{Code: "x", RedirectUri: "http://127.0.0.1:1/cb"})
	return status.Code(err)
}

func (g *GRPCTransport) Invoke(t *testing.T, fullMethod, bearer string, req, resp proto.Message) codes.Code {
	return status.Code(g.conn.Invoke(WithBearer(bearer), fullMethod, req, resp))
}

// RESTTransport calls the REST gateway on the HTTP port.
type RESTTransport struct{ base string }

// restRoutes mirrors proto/chit/auth/v1/auth_api.yaml for the RPCs that
// tests call through invoke.
var restRoutes = map[string]struct{ method, path string }{
	authv1.AuthProviders_Register_FullMethodName:                       {http.MethodPost, "/auth/providers"},
	authv1.AuthProviders_Claim_FullMethodName:                          {http.MethodPost, "/auth/providers/claim"},
	authv1.AuthProviders_Renew_FullMethodName:                          {http.MethodPost, "/auth/providers/renew"},
	authv1.AuthProviders_Refresh_FullMethodName:                        {http.MethodPost, "/auth/providers/refresh"},
	authv1.AuthProviders_RetrievePublicKey_FullMethodName:              {http.MethodGet, "/auth/providers/retrieveKey"},
	authv1.AuthProviders_RefreshAsOrchestrator_FullMethodName:          {http.MethodPost, "/auth/providers/refreshAsOrchestrator"},
	authv1.AuthProviders_GenerateKeyPair_FullMethodName:                {http.MethodPost, "/auth/providers/generateKeyPair"},
	authv1.AuthService_CheckToken_FullMethodName:                       {http.MethodGet, "/v1/auth/check"},
	authv1.AuthService_GetAuthorizeUrl_FullMethodName:                  {http.MethodGet, "/v1/auth/authorize-url"},
	authv1.AuthService_LoginCli_FullMethodName:                         {http.MethodPost, "/v1/auth/cli/login"},
	authv1.AuthService_RefreshCli_FullMethodName:                       {http.MethodPost, "/v1/auth/cli/refresh"},
	authv1.AuthService_RefreshToken_FullMethodName:                     {http.MethodPost, "/v1/auth/token/refresh"},
	authv1.AuthService_Revoke_FullMethodName:                           {http.MethodPost, "/v1/auth/revoke"},
	authv1.AuthService_CreateApiKey_FullMethodName:                     {http.MethodPost, "/v1/auth/api-keys"},
	authv1.AuthService_ListApiKeys_FullMethodName:                      {http.MethodGet, "/v1/auth/api-keys"},
	authv1.AuthService_RevokeApiKey_FullMethodName:                     {http.MethodDelete, "/v1/auth/api-keys/{id}"},
	adminv1.AdminService_ListApiKeys_FullMethodName:                    {http.MethodGet, "/v1/admin/subjects/{subject}/api-keys"},
	adminv1.AdminService_RevokeApiKey_FullMethodName:                   {http.MethodDelete, "/v1/admin/api-keys/{id}"},
	adminv1.AdminService_CreateUser_FullMethodName:                     {http.MethodPost, "/v1/admin/users"},
	adminv1.AdminService_GetUser_FullMethodName:                        {http.MethodGet, "/v1/admin/users/{name}"},
	adminv1.AdminService_ListUsers_FullMethodName:                      {http.MethodGet, "/v1/admin/users"},
	adminv1.AdminService_SetUserRole_FullMethodName:                    {http.MethodPut, "/v1/admin/users/{name}/role"},
	adminv1.AdminService_SetUserScopes_FullMethodName:                  {http.MethodPut, "/v1/admin/users/{name}/scopes"},
	adminv1.AdminService_SetUserProfile_FullMethodName:                 {http.MethodPut, "/v1/admin/users/{name}/profile"},
	adminv1.AdminService_DeleteUser_FullMethodName:                     {http.MethodDelete, "/v1/admin/users/{name}"},
	adminv1.AdminService_CreateServiceAccount_FullMethodName:           {http.MethodPost, "/v1/admin/service-accounts"},
	adminv1.AdminService_GetServiceAccount_FullMethodName:              {http.MethodGet, "/v1/admin/service-accounts/{client_id}"},
	adminv1.AdminService_ListServiceAccounts_FullMethodName:            {http.MethodGet, "/v1/admin/service-accounts"},
	adminv1.AdminService_SetServiceAccountGrants_FullMethodName:        {http.MethodPut, "/v1/admin/service-accounts/{client_id}/grants"},
	adminv1.AdminService_SetServiceAccountTokenExchange_FullMethodName: {http.MethodPut, "/v1/admin/service-accounts/{client_id}/token-exchange"},
	adminv1.AdminService_SetServiceAccountDpop_FullMethodName:          {http.MethodPut, "/v1/admin/service-accounts/{client_id}/dpop"},
	adminv1.AdminService_RotateServiceAccountSecret_FullMethodName:     {http.MethodPost, "/v1/admin/service-accounts/{client_id}/secret"},
	adminv1.AdminService_DeleteServiceAccount_FullMethodName:           {http.MethodDelete, "/v1/admin/service-accounts/{client_id}"},
	adminv1.AdminService_CreateClient_FullMethodName:                   {http.MethodPost, "/v1/admin/clients"},
	adminv1.AdminService_GetClient_FullMethodName:                      {http.MethodGet, "/v1/admin/clients/{client_id}"},
	adminv1.AdminService_ListClients_FullMethodName:                    {http.MethodGet, "/v1/admin/clients"},
	adminv1.AdminService_UpdateClient_FullMethodName:                   {http.MethodPatch, "/v1/admin/clients/{client_id}"},
	adminv1.AdminService_SetClientGrants_FullMethodName:                {http.MethodPut, "/v1/admin/clients/{client_id}/grants"},
	adminv1.AdminService_SetClientOrigins_FullMethodName:               {http.MethodPut, "/v1/admin/clients/{client_id}/origins"},
	adminv1.AdminService_SetClientLogout_FullMethodName:                {http.MethodPut, "/v1/admin/clients/{client_id}/logout"},
	adminv1.AdminService_RotateClientSecret_FullMethodName:             {http.MethodPost, "/v1/admin/clients/{client_id}/secret"},
	adminv1.AdminService_DeleteClient_FullMethodName:                   {http.MethodDelete, "/v1/admin/clients/{client_id}"},
	adminv1.AdminService_GetProvider_FullMethodName:                    {http.MethodGet, "/v1/admin/providers/{id}"},
	adminv1.AdminService_ListProviders_FullMethodName:                  {http.MethodGet, "/v1/admin/providers"},
	adminv1.AdminService_DeleteProvider_FullMethodName:                 {http.MethodDelete, "/v1/admin/providers/{id}"},
	adminv1.AdminService_ListSigningKeys_FullMethodName:                {http.MethodGet, "/v1/admin/signing-keys"},
	adminv1.AdminService_RotateSigningKeys_FullMethodName:              {http.MethodPost, "/v1/admin/signing-keys/rotate"},
	adminv1.AdminService_ListLogins_FullMethodName:                     {http.MethodGet, "/v1/admin/subjects/{subject}/logins"},
	adminv1.AdminService_RevokeLogin_FullMethodName:                    {http.MethodDelete, "/v1/admin/subjects/{subject}/logins/{login_id}"},
	adminv1.AdminService_RevokeLogins_FullMethodName:                   {http.MethodDelete, "/v1/admin/subjects/{subject}/logins"},
	adminv1.AdminService_ListSessions_FullMethodName:                   {http.MethodGet, "/v1/admin/users/{name}/sessions"},
	adminv1.AdminService_EndSessions_FullMethodName:                    {http.MethodPost, "/v1/admin/users/{name}/sessions:end"},
	adminv1.AdminService_CreateFederationRule_FullMethodName:           {http.MethodPost, "/v1/admin/federation-rules"},
	adminv1.AdminService_GetFederationRule_FullMethodName:              {http.MethodGet, "/v1/admin/federation-rules/{name}"},
	adminv1.AdminService_ListFederationRules_FullMethodName:            {http.MethodGet, "/v1/admin/federation-rules"},
	adminv1.AdminService_DeleteFederationRule_FullMethodName:           {http.MethodDelete, "/v1/admin/federation-rules/{name}"},
	adminv1.AdminService_CreateSecurityEventStream_FullMethodName:      {http.MethodPost, "/v1/admin/ssf-streams"},
	adminv1.AdminService_GetSecurityEventStream_FullMethodName:         {http.MethodGet, "/v1/admin/ssf-streams/{id}"},
	adminv1.AdminService_ListSecurityEventStreams_FullMethodName:       {http.MethodGet, "/v1/admin/ssf-streams"},
	adminv1.AdminService_DeleteSecurityEventStream_FullMethodName:      {http.MethodDelete, "/v1/admin/ssf-streams/{id}"},
	adminv1.AdminService_SetSecurityEventStreamStatus_FullMethodName:   {http.MethodPut, "/v1/admin/ssf-streams/{id}/status"},
	adminv1.AdminService_VerifySecurityEventStream_FullMethodName:      {http.MethodPost, "/v1/admin/ssf-streams/{id}/verify"},
}

func (r *RESTTransport) Invoke(t *testing.T, fullMethod, bearer string, req, resp proto.Message) codes.Code {
	t.Helper()
	route, ok := restRoutes[fullMethod]
	if !ok {
		t.Fatalf("no REST route for %s", fullMethod)
	}
	// A {field} of the path takes the request's field, escaped; GET and
	// DELETE send the other fields in the query, the others in the body.
	query := QueryOf(t, req)
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
		return r.Call(t, route.method, path+"?"+query.Encode(), bearer, nil, resp)
	}
	return r.Call(t, route.method, path, bearer, req, resp)
}

// Call sends one REST request and decodes a 200 answer into resp. For an
// error it checks that the HTTP status matches the gRPC code in the body,
// the mapping grpc-gateway documents, and returns that code.
func (r *RESTTransport) Call(t *testing.T, method, path, bearer string, req, resp proto.Message) codes.Code {
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

func (r *RESTTransport) Token(t *testing.T, req *authv1.TokenRequest) (*authv1.TokenResponse, codes.Code) {
	resp := &authv1.TokenResponse{}
	return resp, r.Call(t, http.MethodPost, "/v1/auth/token", "", req, resp)
}

func (r *RESTTransport) Refresh(t *testing.T, refreshToken string) (*authv1.TokenResponse, codes.Code) {
	resp := &authv1.TokenResponse{}
	return resp, r.Call(t, http.MethodPost, "/v1/auth/token/refresh", "", &authv1.RefreshTokenRequest{RefreshToken: refreshToken}, resp)
}

func (r *RESTTransport) Check(t *testing.T, bearer string) (*authv1.CheckTokenResponse, codes.Code) {
	resp := &authv1.CheckTokenResponse{}
	return resp, r.Call(t, http.MethodGet, "/v1/auth/check", bearer, nil, resp)
}

func (r *RESTTransport) AuthStatus(t *testing.T) (*authv1.GetAuthStatusResponse, codes.Code) {
	resp := &authv1.GetAuthStatusResponse{}
	return resp, r.Call(t, http.MethodGet, "/v1/auth/status", "", nil, resp)
}

func (r *RESTTransport) LoginCli(t *testing.T) codes.Code {
	return r.Call(t, http.MethodPost, "/v1/auth/cli/login", "", &authv1.LoginCliRequest{Code: "x", RedirectUri: "http://127.0.0.1:1/cb"}, nil)
}

// PasswordRequest is a Token request with a password credential.
func PasswordRequest(user, password string) *authv1.TokenRequest {
	return &authv1.TokenRequest{Credential: &authv1.TokenRequest_PasswordCredential{
		PasswordCredential: &authv1.PasswordCredential{Username: user, Password: password}}}
}

// ClientRequest is a Token request with a client credential.
func ClientRequest(id, secret string) *authv1.TokenRequest {
	return &authv1.TokenRequest{Credential: &authv1.TokenRequest_ClientCredential{
		ClientCredential: &authv1.ClientCredential{ClientId: id, ClientSecret: secret}}}
}

// WantCode fails the test when got is not want.
func WantCode(t *testing.T, what string, got, want codes.Code) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got code %v, want %v", what, got, want)
	}
}

// ForEachTransport runs test over each transport, each on a server of its
// own: what one transport's run changes (throttle counts, revocations, the
// clock) never reaches the other's.
func ForEachTransport(t *testing.T, test func(t *testing.T, e *Env, tr Transport)) {
	for _, name := range TransportNames {
		t.Run(name, func(t *testing.T) {
			e := Start(t)
			test(t, e, Transports(e)[name])
		})
	}
}

// TransportNames are transports' keys, in a fixed order.
var TransportNames = []string{"gRPC", "REST"}

// QueryOf encodes a flat request message as query parameters, the way
// grpc-gateway reads GET requests.
func QueryOf(t *testing.T, req proto.Message) url.Values {
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

// Revoke calls AuthService.Revoke over tr.
func Revoke(t *testing.T, tr Transport, bearer string, req *authv1.RevokeRequest) codes.Code {
	t.Helper()
	return tr.Invoke(t, authv1.AuthService_Revoke_FullMethodName, bearer, req, &authv1.RevokeResponse{})
}

// ForEachStoreAndTransport runs test on a server on each backend, over
// each transport.
func ForEachStoreAndTransport(t *testing.T, test func(t *testing.T, e *Env, tr Transport)) {
	for _, backend := range Backends {
		t.Run(backend, func(t *testing.T) {
			for _, name := range TransportNames {
				t.Run(name, func(t *testing.T) {
					e := StartOn(t, backend)
					test(t, e, Transports(e)[name])
				})
			}
		})
	}
}

// TransportName keeps ids of the two transports' runs apart on one server.
func TransportName(tr Transport) string {
	if _, ok := tr.(*GRPCTransport); ok {
		return "grpc"
	}
	return "rest"
}

// WithScope sets the scope req asks for.
func WithScope(req *authv1.TokenRequest, scope string) *authv1.TokenRequest {
	req.Scope = scope
	return req
}

// WithAudience sets the audience req asks for.
func WithAudience(req *authv1.TokenRequest, audience string) *authv1.TokenRequest {
	req.Audience = audience
	return req
}
