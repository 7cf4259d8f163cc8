package grpcapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// A client's require_dpop over the Admin API (gRPC and REST, both stores):
// off by default, set at creation, shown by GetClient and ListClients, kept
// by an update that does not name it, changed by one that does.
func TestAdminClientRequireDPoP(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		created := &adminv1.CreateClientResponse{}
		servertest.WantCode(t, "CreateClient", tr.Invoke(t, adminv1.AdminService_CreateClient_FullMethodName, c.Admin,
			&adminv1.CreateClientRequest{ClientId: "spa", RedirectUris: []string{"https://spa.example/cb"}, RequireDpop: true}, created), codes.OK)
		if !created.GetClient().GetRequireDpop() {
			t.Fatalf("created %v", created.GetClient())
		}
		plain := &adminv1.CreateClientResponse{}
		servertest.WantCode(t, "CreateClient", tr.Invoke(t, adminv1.AdminService_CreateClient_FullMethodName, c.Admin,
			&adminv1.CreateClientRequest{ClientId: "web", RedirectUris: []string{"https://web.example/cb"}}, plain), codes.OK)
		if plain.GetClient().GetRequireDpop() {
			t.Fatalf("a client requires DPoP by default: %v", plain.GetClient())
		}
		requires := func(id string) bool {
			t.Helper()
			got := &adminv1.GetClientResponse{}
			servertest.WantCode(t, "GetClient", tr.Invoke(t, adminv1.AdminService_GetClient_FullMethodName, c.Admin,
				&adminv1.GetClientRequest{ClientId: id}, got), codes.OK)
			listed := &adminv1.ListClientsResponse{}
			servertest.WantCode(t, "ListClients", tr.Invoke(t, adminv1.AdminService_ListClients_FullMethodName, c.Admin,
				&adminv1.ListClientsRequest{}, listed), codes.OK)
			for _, client := range listed.GetClients() {
				if client.GetClientId() == id && client.GetRequireDpop() != got.GetClient().GetRequireDpop() {
					t.Fatalf("ListClients says %v, GetClient %v", client, got.GetClient())
				}
			}
			return got.GetClient().GetRequireDpop()
		}
		if !requires("spa") || requires("web") {
			t.Fatal("GetClient does not show what the clients were created with")
		}
		update := func(req *adminv1.UpdateClientRequest) *adminv1.Client {
			t.Helper()
			updated := &adminv1.UpdateClientResponse{}
			servertest.WantCode(t, "UpdateClient", tr.Invoke(t, adminv1.AdminService_UpdateClient_FullMethodName, c.Admin, req, updated), codes.OK)
			return updated.GetClient()
		}
		if got := update(&adminv1.UpdateClientRequest{ClientId: "spa", Pkce: "required"}); !got.GetRequireDpop() {
			t.Fatalf("an update without the field changed it: %v", got)
		}
		on, off := true, false
		if got := update(&adminv1.UpdateClientRequest{ClientId: "spa", RequireDpop: &off}); got.GetRequireDpop() {
			t.Fatalf("turned off: %v", got)
		}
		if got := update(&adminv1.UpdateClientRequest{ClientId: "web", RequireDpop: &on}); !got.GetRequireDpop() {
			t.Fatalf("turned on: %v", got)
		}
		if requires("spa") || !requires("web") {
			t.Fatal("GetClient does not show the updates")
		}
		if client, err := e.Directory().LookupClient(t.Context(), "web"); err != nil || !client.RequireDPoP {
			t.Fatalf("the core's client = %+v, %v", client, err)
		}
		servertest.WantCode(t, "UpdateClient of an unknown client", tr.Invoke(t, adminv1.AdminService_UpdateClient_FullMethodName, c.Admin,
			&adminv1.UpdateClientRequest{ClientId: "nobody", RequireDpop: &on}, &adminv1.UpdateClientResponse{}), codes.NotFound)
		servertest.WantCode(t, "a USER requiring DPoP", tr.Invoke(t, adminv1.AdminService_UpdateClient_FullMethodName, c.User,
			&adminv1.UpdateClientRequest{ClientId: "spa", RequireDpop: &on}, &adminv1.UpdateClientResponse{}), codes.PermissionDenied)
		if requires("spa") {
			t.Fatal("a refused update was stored")
		}
	})
}

// A service account's require_dpop over the Admin API: set at creation,
// shown by GetServiceAccount and ListServiceAccounts, changed by
// SetServiceAccountDpop (PUT .../dpop, {"requireDpop": ...}), which only an
// admin may call and which names an unknown account NOT_FOUND.
func TestAdminServiceAccountDpop(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		created := &adminv1.CreateServiceAccountResponse{}
		servertest.WantCode(t, "CreateServiceAccount", tr.Invoke(t, adminv1.AdminService_CreateServiceAccount_FullMethodName, c.Admin,
			&adminv1.CreateServiceAccountRequest{ClientId: "worker", RequireDpop: true}, created), codes.OK)
		if !created.GetServiceAccount().GetRequireDpop() {
			t.Fatalf("created %v", created.GetServiceAccount())
		}
		requires := func(id string) bool {
			t.Helper()
			got := &adminv1.GetServiceAccountResponse{}
			servertest.WantCode(t, "GetServiceAccount", tr.Invoke(t, adminv1.AdminService_GetServiceAccount_FullMethodName, c.Admin,
				&adminv1.GetServiceAccountRequest{ClientId: id}, got), codes.OK)
			listed := &adminv1.ListServiceAccountsResponse{}
			servertest.WantCode(t, "ListServiceAccounts", tr.Invoke(t, adminv1.AdminService_ListServiceAccounts_FullMethodName, c.Admin,
				&adminv1.ListServiceAccountsRequest{}, listed), codes.OK)
			found := false
			for _, account := range listed.GetServiceAccounts() {
				if account.GetClientId() == id {
					found = true
					if account.GetRequireDpop() != got.GetServiceAccount().GetRequireDpop() {
						t.Fatalf("ListServiceAccounts says %v, GetServiceAccount %v", account, got.GetServiceAccount())
					}
				}
			}
			if !found {
				t.Fatalf("ListServiceAccounts does not list %q", id)
			}
			return got.GetServiceAccount().GetRequireDpop()
		}
		if !requires("worker") || requires(servertest.ServiceName) {
			t.Fatal("GetServiceAccount does not show what the accounts were created with")
		}
		set := func(id string, required bool) *adminv1.ServiceAccount {
			t.Helper()
			answer := &adminv1.SetServiceAccountDpopResponse{}
			servertest.WantCode(t, "SetServiceAccountDpop", tr.Invoke(t, adminv1.AdminService_SetServiceAccountDpop_FullMethodName, c.Admin,
				&adminv1.SetServiceAccountDpopRequest{ClientId: id, RequireDpop: required}, answer), codes.OK)
			return answer.GetServiceAccount()
		}
		if got := set("worker", false); got.GetRequireDpop() || got.GetClientId() != "worker" {
			t.Fatalf("turned off: %v", got)
		}
		if got := set(servertest.ServiceName, true); !got.GetRequireDpop() {
			t.Fatalf("turned on: %v", got)
		}
		if requires("worker") || !requires(servertest.ServiceName) {
			t.Fatal("GetServiceAccount does not show the changes")
		}
		for _, refused := range []struct {
			name, bearer, id string
			want             codes.Code
		}{
			{"an unknown account", c.Admin, "nobody", codes.NotFound},
			{"an invalid id", c.Admin, "no spaces", codes.InvalidArgument},
			{"a USER", c.User, "worker", codes.PermissionDenied},
			{"a SERVICE", c.Service, "worker", codes.PermissionDenied},
			{"no token", "", "worker", codes.Unauthenticated},
		} {
			servertest.WantCode(t, refused.name, tr.Invoke(t, adminv1.AdminService_SetServiceAccountDpop_FullMethodName, refused.bearer,
				&adminv1.SetServiceAccountDpopRequest{ClientId: refused.id, RequireDpop: true}, &adminv1.SetServiceAccountDpopResponse{}), refused.want)
		}
		if requires("worker") {
			t.Fatal("a refused call was stored")
		}

		// The REST mapping as documented, written by hand.
		status, body := servertest.RawAdmin(t, e, http.MethodPut, "/v1/admin/service-accounts/worker/dpop", c.Admin, `{"requireDpop": true}`, nil)
		var answer struct {
			ServiceAccount struct {
				ClientID    string `json:"clientId"`
				RequireDpop bool   `json:"requireDpop"`
			} `json:"serviceAccount"`
		}
		if err := json.Unmarshal([]byte(body), &answer); status != http.StatusOK || err != nil || !answer.ServiceAccount.RequireDpop || answer.ServiceAccount.ClientID != "worker" {
			t.Fatalf("PUT /v1/admin/service-accounts/worker/dpop: %d %s (%v)", status, body, err)
		}
		if !requires("worker") {
			t.Fatal("the REST call was not stored")
		}
		if status, body := servertest.RawAdmin(t, e, http.MethodPut, "/v1/admin/service-accounts/nobody/dpop", c.Admin, `{"requireDpop": true}`, nil); status != http.StatusNotFound {
			t.Fatalf("REST, an unknown account: %d %s", status, body)
		}
	})
}
