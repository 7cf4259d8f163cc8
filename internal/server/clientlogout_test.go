package server_test

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

// A client's logout settings are set on CreateClient and SetClientLogout,
// answered in every Client answer, refused with the field named when
// wrong, and replaced as a whole, over gRPC and REST on both stores.
func TestClientLogoutSettingsThroughTheAdminAPI(t *testing.T) {
	t.Parallel()
	for _, backend := range servertest.Backends {
		for name, tr := range map[string]string{"gRPC": "gRPC", "REST": "REST"} {
			t.Run(backend+"/"+name, func(t *testing.T) {
				t.Parallel()
				e := servertest.StartOn(t, backend)
				transport := servertest.Transports(e)[tr]
				admin := servertest.NewAdminCallers(t, e, transport).Admin

				created := &adminv1.CreateClientResponse{}
				servertest.WantCode(t, "CreateClient", transport.Invoke(t, adminv1.AdminService_CreateClient_FullMethodName, admin,
					&adminv1.CreateClientRequest{ClientId: "web", RedirectUris: []string{"https://web.example/cb"}, AllowedScopes: []string{"openid"},
						PostLogoutRedirectUris: []string{"https://web.example/bye", "http://127.0.0.1:8000/bye"},
						BackchannelLogoutUri:   "https://web.example/backchannel", LogoutRevokesRefreshTokens: true}, created), codes.OK)
				client := created.GetClient()
				if !slices.Equal(client.GetPostLogoutRedirectUris(), []string{"http://127.0.0.1:8000/bye", "https://web.example/bye"}) ||
					client.GetBackchannelLogoutUri() != "https://web.example/backchannel" || !client.GetLogoutRevokesRefreshTokens() {
					t.Fatalf("CreateClient answered %v", client)
				}
				listed := &adminv1.ListClientsResponse{}
				servertest.WantCode(t, "ListClients", transport.Invoke(t, adminv1.AdminService_ListClients_FullMethodName, admin,
					&adminv1.ListClientsRequest{}, listed), codes.OK)
				if len(listed.GetClients()) != 1 || listed.GetClients()[0].GetBackchannelLogoutUri() != "https://web.example/backchannel" {
					t.Fatalf("ListClients answered %v", listed.GetClients())
				}

				// Refused, naming the field, and nothing is made.
				for field, req := range map[string]*adminv1.CreateClientRequest{
					"post_logout_redirect_uris": {ClientId: "bad1", RedirectUris: []string{"https://bad.example/cb"}, PostLogoutRedirectUris: []string{"http://bad.example/bye"}},
					"backchannel_logout_uri":    {ClientId: "bad2", RedirectUris: []string{"https://bad.example/cb"}, BackchannelLogoutUri: "https://bad.example/bc#x"},
				} {
					code := transport.Invoke(t, adminv1.AdminService_CreateClient_FullMethodName, admin, req, &adminv1.CreateClientResponse{})
					servertest.WantCode(t, "CreateClient with a bad "+field, code, codes.InvalidArgument)
					servertest.WantCode(t, "GetClient of the refused client", transport.Invoke(t, adminv1.AdminService_GetClient_FullMethodName, admin,
						&adminv1.GetClientRequest{ClientId: req.GetClientId()}, &adminv1.GetClientResponse{}), codes.NotFound)
				}

				// SetClientLogout replaces everything; the refused one changes nothing.
				code := transport.Invoke(t, adminv1.AdminService_SetClientLogout_FullMethodName, admin,
					&adminv1.SetClientLogoutRequest{ClientId: "web", PostLogoutRedirectUris: []string{"javascript:alert(1)"}}, &adminv1.SetClientLogoutResponse{})
				servertest.WantCode(t, "SetClientLogout with a bad URI", code, codes.InvalidArgument)
				set := &adminv1.SetClientLogoutResponse{}
				servertest.WantCode(t, "SetClientLogout", transport.Invoke(t, adminv1.AdminService_SetClientLogout_FullMethodName, admin,
					&adminv1.SetClientLogoutRequest{ClientId: "web", PostLogoutRedirectUris: []string{"https://web.example/later"}}, set), codes.OK)
				if got := set.GetClient(); !slices.Equal(got.GetPostLogoutRedirectUris(), []string{"https://web.example/later"}) ||
					got.GetBackchannelLogoutUri() != "" || got.GetLogoutRevokesRefreshTokens() {
					t.Fatalf("SetClientLogout answered %v", got)
				}
				got := &adminv1.GetClientResponse{}
				servertest.WantCode(t, "GetClient", transport.Invoke(t, adminv1.AdminService_GetClient_FullMethodName, admin,
					&adminv1.GetClientRequest{ClientId: "web"}, got), codes.OK)
				if !slices.Equal(got.GetClient().GetPostLogoutRedirectUris(), []string{"https://web.example/later"}) {
					t.Fatalf("GetClient answered %v", got.GetClient())
				}
				servertest.WantCode(t, "SetClientLogout of an unknown client", transport.Invoke(t, adminv1.AdminService_SetClientLogout_FullMethodName, admin,
					&adminv1.SetClientLogoutRequest{ClientId: "nobody"}, &adminv1.SetClientLogoutResponse{}), codes.NotFound)
			})
		}
	}
}

// The refusal names the field, over gRPC.
func TestClientLogoutRefusalNamesTheField(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	e.CreateClient(t, "web", []string{"https://web.example/cb"}, false, storage.Grants{AllowedScopes: []string{"openid"}})
	admin := servertest.NewAdminCallers(t, e, servertest.Transports(e)["gRPC"]).Admin
	_, err := adminv1.NewAdminServiceClient(e.Conn).SetClientLogout(servertest.WithBearer(admin),
		&adminv1.SetClientLogoutRequest{ClientId: "web", BackchannelLogoutUri: "http://web.example/bc"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "backchannel_logout_uri") {
		t.Fatalf("SetClientLogout with http: %v", err)
	}
}
