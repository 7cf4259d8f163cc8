package grpcapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// The RS256 family beside ES256 signs ID tokens only: an access token forged
// by signing its claims with the RS256 key (at+jwt, every claim right) is
// refused by CheckToken, while the same claims under the ES256 key pass (the
// forgery is otherwise flawless).
func TestCheckRefusesAnAccessTokenSignedByTheIDTokenFamily(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		forged := servertest.SignWithServerKey(t, e, jwa.RS256, servertest.ServerAccessToken(t, e), "at+jwt")
		_, code := tr.Check(t, forged)
		servertest.WantCode(t, "CheckToken of an access token signed by the RS256 key", code, codes.Unauthenticated)
		// Checked again (a verified-token cache must not hold it either).
		_, code = tr.Check(t, forged)
		servertest.WantCode(t, "CheckToken of it again", code, codes.Unauthenticated)
		control := servertest.SignWithServerKey(t, e, jwa.ES256, servertest.ServerAccessToken(t, e), "at+jwt")
		_, code = tr.Check(t, control)
		servertest.WantCode(t, "CheckToken of the same claims under the ES256 key", code, codes.OK)
	})
}

// Configured with RS256, the RS256 keys are the server's one family and
// sign and verify access tokens as before.
func TestRS256ConfiguredVerifiesRS256AccessTokens(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t, func(cfg *server.Config) { cfg.SigningAlgorithm = jwa.RS256 })
	for name, tr := range servertest.Transports(e) {
		t.Run(name, func(t *testing.T) {
			issued, code := tr.Token(t, servertest.PasswordRequest("alice", "wonderland"))
			servertest.WantCode(t, "Token", code, codes.OK)
			if _, code := tr.Check(t, issued.GetAccessToken()); code != codes.OK {
				t.Fatalf("CheckToken of an issued RS256 access token: %v", code)
			}
			signed := servertest.SignWithServerKey(t, e, jwa.RS256, servertest.ServerAccessToken(t, e), "at+jwt")
			if _, code := tr.Check(t, signed); code != codes.OK {
				t.Fatalf("CheckToken of an RS256 access token on an RS256 server: %v", code)
			}
		})
	}
}

// Client.id_token_signed_response_alg over gRPC and REST, on both stores:
// set by CreateClient, answered by every read, changed by UpdateClient
// (empty keeps it), and refused, naming the field, for an algorithm the
// server has no keys for.
func TestAdminClientIDTokenSignedResponseAlg(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		created := &adminv1.CreateClientResponse{}
		servertest.WantCode(t, "CreateClient", tr.Invoke(t, adminv1.AdminService_CreateClient_FullMethodName, c.Admin,
			&adminv1.CreateClientRequest{ClientId: "kube", RedirectUris: []string{"http://localhost:8000"}, IdTokenSignedResponseAlg: "RS256"}, created), codes.OK)
		if got := created.GetClient().GetIdTokenSignedResponseAlg(); got != "RS256" {
			t.Fatalf("CreateClient answered id_token_signed_response_alg %q", got)
		}
		plain := &adminv1.CreateClientResponse{}
		servertest.WantCode(t, "CreateClient without it", tr.Invoke(t, adminv1.AdminService_CreateClient_FullMethodName, c.Admin,
			&adminv1.CreateClientRequest{ClientId: "plain", RedirectUris: []string{"https://plain.example/cb"}}, plain), codes.OK)
		if got := plain.GetClient().GetIdTokenSignedResponseAlg(); got != "" {
			t.Fatalf("a client registered without it has %q, want empty (the server's)", got)
		}
		read := func(want string) {
			t.Helper()
			got := &adminv1.GetClientResponse{}
			servertest.WantCode(t, "GetClient", tr.Invoke(t, adminv1.AdminService_GetClient_FullMethodName, c.Admin, &adminv1.GetClientRequest{ClientId: "kube"}, got), codes.OK)
			if alg := got.GetClient().GetIdTokenSignedResponseAlg(); alg != want {
				t.Fatalf("GetClient: id_token_signed_response_alg %q, want %q", alg, want)
			}
			listed := &adminv1.ListClientsResponse{}
			servertest.WantCode(t, "ListClients", tr.Invoke(t, adminv1.AdminService_ListClients_FullMethodName, c.Admin, &adminv1.ListClientsRequest{}, listed), codes.OK)
			for _, client := range listed.GetClients() {
				if client.GetClientId() == "kube" && client.GetIdTokenSignedResponseAlg() != want {
					t.Fatalf("ListClients: id_token_signed_response_alg %q, want %q", client.GetIdTokenSignedResponseAlg(), want)
				}
			}
		}
		read("RS256")
		update := func(req *adminv1.UpdateClientRequest, want codes.Code) *adminv1.UpdateClientResponse {
			t.Helper()
			resp := &adminv1.UpdateClientResponse{}
			servertest.WantCode(t, "UpdateClient", tr.Invoke(t, adminv1.AdminService_UpdateClient_FullMethodName, c.Admin, req, resp), want)
			return resp
		}
		if got := update(&adminv1.UpdateClientRequest{ClientId: "kube", Pkce: "required"}, codes.OK); got.GetClient().GetIdTokenSignedResponseAlg() != "RS256" {
			t.Fatalf("an update of another setting changed it to %q", got.GetClient().GetIdTokenSignedResponseAlg())
		}
		if got := update(&adminv1.UpdateClientRequest{ClientId: "kube", IdTokenSignedResponseAlg: "ES256"}, codes.OK); got.GetClient().GetIdTokenSignedResponseAlg() != "ES256" {
			t.Fatalf("UpdateClient answered %q, want ES256", got.GetClient().GetIdTokenSignedResponseAlg())
		}
		read("ES256")
		update(&adminv1.UpdateClientRequest{ClientId: "missing", IdTokenSignedResponseAlg: "RS256"}, codes.NotFound)
		// Only the algorithms the server has keys for: EdDSA is one Chit
		// supports, but this server signs with ES256 and RS256 alone.
		for _, alg := range []string{"EdDSA", "HS256", "none", "rs256"} {
			update(&adminv1.UpdateClientRequest{ClientId: "kube", IdTokenSignedResponseAlg: alg}, codes.InvalidArgument)
			servertest.WantCode(t, "CreateClient with "+alg, tr.Invoke(t, adminv1.AdminService_CreateClient_FullMethodName, c.Admin,
				&adminv1.CreateClientRequest{ClientId: "bad", RedirectUris: []string{"https://bad.example/cb"}, IdTokenSignedResponseAlg: alg},
				&adminv1.CreateClientResponse{}), codes.InvalidArgument)
		}
		// The refusal names the field, in both transports' answers.
		if _, isREST := tr.(*servertest.RESTTransport); isREST {
			status, body := servertest.RawAdmin(t, e, http.MethodPatch, "/v1/admin/clients/kube", c.Admin, `{"idTokenSignedResponseAlg":"HS256"}`, nil)
			if status != http.StatusBadRequest || !strings.Contains(body, "id_token_signed_response_alg") {
				t.Fatalf("REST UpdateClient with HS256: %d %s, want 400 naming the field", status, body)
			}
		} else {
			ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+c.Admin)
			_, err := adminv1.NewAdminServiceClient(e.Conn).UpdateClient(ctx, &adminv1.UpdateClientRequest{ClientId: "kube", IdTokenSignedResponseAlg: "HS256"})
			if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "id_token_signed_response_alg") {
				t.Fatalf("gRPC UpdateClient with HS256: %v, want InvalidArgument naming the field", err)
			}
		}
		read("ES256")
	})
}
