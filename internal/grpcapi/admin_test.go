package grpcapi_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/grpcapi"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

// revocationSeen is past the test server's revocation cache
// (Tokens.RevocationCacheTTL), after which every replica refuses a token
// issued before a change that ended it.
const revocationSeen = 4 * time.Second

// adminRequests is a valid request for each AdminService method, on a user
// named target.
func adminRequests(target string) map[string]proto.Message {
	return map[string]proto.Message{
		adminv1.AdminService_CreateUser_FullMethodName:  &adminv1.CreateUserRequest{Name: target, Password: "a long password"},
		adminv1.AdminService_GetUser_FullMethodName:     &adminv1.GetUserRequest{Name: target},
		adminv1.AdminService_ListUsers_FullMethodName:   &adminv1.ListUsersRequest{},
		adminv1.AdminService_SetUserRole_FullMethodName: &adminv1.SetUserRoleRequest{Name: target, Role: "ADMIN"},
		adminv1.AdminService_SetUserScopes_FullMethodName: &adminv1.SetUserScopesRequest{Name: target,
			AllowedScopes: []string{"reports:read"}},
		adminv1.AdminService_SetUserProfile_FullMethodName: &adminv1.SetUserProfileRequest{Name: target,
			Email: "someone@example.com", Groups: []string{"ops"}},
		adminv1.AdminService_DeleteUser_FullMethodName: &adminv1.DeleteUserRequest{Name: target},
	}
}

// serviceAccountRequests is adminRequests for the service-account methods,
// on the account target.
func serviceAccountRequests(target string) map[string]proto.Message {
	return map[string]proto.Message{
		adminv1.AdminService_CreateServiceAccount_FullMethodName: &adminv1.CreateServiceAccountRequest{ClientId: target,
			AllowedScopes: []string{"inventory:read"}},
		adminv1.AdminService_GetServiceAccount_FullMethodName:   &adminv1.GetServiceAccountRequest{ClientId: target},
		adminv1.AdminService_ListServiceAccounts_FullMethodName: &adminv1.ListServiceAccountsRequest{},
		adminv1.AdminService_SetServiceAccountGrants_FullMethodName: &adminv1.SetServiceAccountGrantsRequest{ClientId: target,
			AllowedScopes: []string{"inventory:write"}},
		adminv1.AdminService_SetServiceAccountTokenExchange_FullMethodName: &adminv1.SetServiceAccountTokenExchangeRequest{ClientId: target,
			TokenExchangeAudiences: []string{"inventory"}},
		adminv1.AdminService_SetServiceAccountDpop_FullMethodName:      &adminv1.SetServiceAccountDpopRequest{ClientId: target, RequireDpop: true},
		adminv1.AdminService_RotateServiceAccountSecret_FullMethodName: &adminv1.RotateServiceAccountSecretRequest{ClientId: target},
		adminv1.AdminService_DeleteServiceAccount_FullMethodName:       &adminv1.DeleteServiceAccountRequest{ClientId: target},
	}
}

// clientRequests is adminRequests for the OAuth-client methods, on the
// confidential client target.
func clientRequests(target string) map[string]proto.Message {
	return map[string]proto.Message{
		adminv1.AdminService_CreateClient_FullMethodName: &adminv1.CreateClientRequest{ClientId: target,
			RedirectUris: []string{"https://app.example/callback"}, Confidential: true, AllowedScopes: []string{"openid"}},
		adminv1.AdminService_GetClient_FullMethodName:    &adminv1.GetClientRequest{ClientId: target},
		adminv1.AdminService_ListClients_FullMethodName:  &adminv1.ListClientsRequest{},
		adminv1.AdminService_UpdateClient_FullMethodName: &adminv1.UpdateClientRequest{ClientId: target, Pkce: "optional"},
		adminv1.AdminService_SetClientGrants_FullMethodName: &adminv1.SetClientGrantsRequest{ClientId: target,
			AllowedScopes: []string{"openid", "profile"}},
		adminv1.AdminService_SetClientOrigins_FullMethodName: &adminv1.SetClientOriginsRequest{ClientId: target,
			AllowedOrigins: []string{"https://app.example"}},
		adminv1.AdminService_SetClientLogout_FullMethodName: &adminv1.SetClientLogoutRequest{ClientId: target,
			PostLogoutRedirectUris: []string{"https://app.example/bye"}},
		adminv1.AdminService_RotateClientSecret_FullMethodName: &adminv1.RotateClientSecretRequest{ClientId: target},
		adminv1.AdminService_DeleteClient_FullMethodName:       &adminv1.DeleteClientRequest{ClientId: target},
	}
}

// serverRequests is adminRequests for the providers and signing keys, on
// the provider target.
func serverRequests(target string) map[string]proto.Message {
	return map[string]proto.Message{
		adminv1.AdminService_GetProvider_FullMethodName:       &adminv1.GetProviderRequest{Id: target},
		adminv1.AdminService_ListProviders_FullMethodName:     &adminv1.ListProvidersRequest{},
		adminv1.AdminService_DeleteProvider_FullMethodName:    &adminv1.DeleteProviderRequest{Id: target},
		adminv1.AdminService_ListSigningKeys_FullMethodName:   &adminv1.ListSigningKeysRequest{},
		adminv1.AdminService_RotateSigningKeys_FullMethodName: &adminv1.RotateSigningKeysRequest{Force: true},
		adminv1.AdminService_CreateFederationRule_FullMethodName: &adminv1.CreateFederationRuleRequest{Rule: &adminv1.FederationRule{Name: target,
			Issuer: "https://issuer.example", Audience: "chit", ServiceAccount: target, Claims: map[string]string{"sub": "workload"}}},
		adminv1.AdminService_GetFederationRule_FullMethodName:    &adminv1.GetFederationRuleRequest{Name: target},
		adminv1.AdminService_ListFederationRules_FullMethodName:  &adminv1.ListFederationRulesRequest{},
		adminv1.AdminService_DeleteFederationRule_FullMethodName: &adminv1.DeleteFederationRuleRequest{Name: target},
	}
}

// loginRequests is adminRequests for the logins and API keys of subject.
func loginRequests(subject string) map[string]proto.Message {
	return map[string]proto.Message{
		adminv1.AdminService_ListLogins_FullMethodName:   &adminv1.ListLoginsRequest{Subject: subject},
		adminv1.AdminService_RevokeLogin_FullMethodName:  &adminv1.RevokeLoginRequest{Subject: subject, LoginId: "no-such-login"},
		adminv1.AdminService_RevokeLogins_FullMethodName: &adminv1.RevokeLoginsRequest{Subject: subject},
		adminv1.AdminService_ListApiKeys_FullMethodName:  &adminv1.ListApiKeysRequest{Subject: subject},
		adminv1.AdminService_RevokeApiKey_FullMethodName: &adminv1.RevokeApiKeyRequest{Id: "no-such-key"},
		adminv1.AdminService_ListSessions_FullMethodName: &adminv1.ListSessionsRequest{Name: subject},
		adminv1.AdminService_EndSessions_FullMethodName:  &adminv1.EndSessionsRequest{Name: subject},
	}
}

// securityEventStreamRequests is adminRequests for the Shared Signals
// streams, on the poll stream target, which the test server's service
// account polls.
func securityEventStreamRequests(target string) map[string]proto.Message {
	return map[string]proto.Message{
		adminv1.AdminService_CreateSecurityEventStream_FullMethodName: &adminv1.CreateSecurityEventStreamRequest{Id: target,
			Delivery: "poll", Receiver: servertest.ServiceName, Audience: "https://receiver.example"},
		adminv1.AdminService_GetSecurityEventStream_FullMethodName:    &adminv1.GetSecurityEventStreamRequest{Id: target},
		adminv1.AdminService_ListSecurityEventStreams_FullMethodName:  &adminv1.ListSecurityEventStreamsRequest{},
		adminv1.AdminService_DeleteSecurityEventStream_FullMethodName: &adminv1.DeleteSecurityEventStreamRequest{Id: target},
		adminv1.AdminService_SetSecurityEventStreamStatus_FullMethodName: &adminv1.SetSecurityEventStreamStatusRequest{Id: target,
			Status: "enabled"},
		adminv1.AdminService_VerifySecurityEventStream_FullMethodName: &adminv1.VerifySecurityEventStreamRequest{Id: target, State: "check"},
	}
}

// everyAdminRequest is a valid request of every AdminService method, on
// principals named target.
func everyAdminRequest(target string) map[string]proto.Message {
	all := adminRequests(target)
	maps.Copy(all, serviceAccountRequests(target))
	maps.Copy(all, clientRequests(target))
	maps.Copy(all, serverRequests(target))
	maps.Copy(all, loginRequests(target))
	maps.Copy(all, securityEventStreamRequests(target))
	return all
}

// responseFor is an empty response message of fullMethod.
func responseFor(fullMethod string) proto.Message {
	method := strings.TrimPrefix(fullMethod, "/chit.admin.v1.AdminService/")
	descriptor := adminv1.File_chit_admin_v1_admin_proto.Services().ByName("AdminService").Methods().ByName(protoreflect.Name(method))
	messageType, err := protoregistry.GlobalTypes.FindMessageByName(descriptor.Output().FullName())
	if err != nil {
		panic(err)
	}
	return messageType.New().Interface()
}

// Every Admin RPC is in the access table as ADMIN only, and refuses every
// other caller on both transports and both stores; an admin gets through.
func TestAdminAccessByCaller(t *testing.T) {
	t.Parallel()
	methods := adminv1.File_chit_admin_v1_admin_proto.Services().ByName("AdminService").Methods()
	for i := range methods.Len() {
		full := "/chit.admin.v1.AdminService/" + string(methods.Get(i).Name())
		if rule, ok := grpcapi.AccessRules[full]; !ok || rule.Audience != grpcapi.Admins || !rule.CallerFromStore {
			t.Errorf("%s: access rule %+v (listed %v), want admins, read from the store", full, rule, ok)
		}
		if _, ok := everyAdminRequest("x")[full]; !ok {
			t.Errorf("%s is not covered by this test", full)
		}
	}
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		refused := []struct {
			caller, bearer string
			want           codes.Code
		}{
			{"no token", "", codes.Unauthenticated},
			{"a malformed token", "not-a-token", codes.Unauthenticated},
			{"USER", c.User, codes.PermissionDenied},
			{"SERVICE", c.Service, codes.PermissionDenied},
			{"orchestrator SERVICE", c.Orchestrator, codes.PermissionDenied},
			// A provider's token is signed with the provider's key: it is
			// for the provider's services, never a credential at Chit.
			{"PROVIDER", c.Provider, codes.Unauthenticated},
		}
		e.CreateClient(t, "dashboard", []string{"https://app.example/callback"}, true, storage.Grants{AllowedScopes: []string{"openid"}})
		requests := adminRequests(servertest.UserName)
		maps.Copy(requests, serviceAccountRequests(servertest.ServiceName))
		maps.Copy(requests, clientRequests("dashboard"))
		maps.Copy(requests, serverRequests("provider-1"))
		maps.Copy(requests, loginRequests(servertest.UserName))
		maps.Copy(requests, securityEventStreamRequests("siem"))
		aliceLogin, code := tr.Token(t, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
		servertest.WantCode(t, "alice's login", code, codes.OK)
		keysBefore, err := e.Store.ListSigningKeys(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for method, req := range requests {
			for _, caller := range refused {
				code := tr.Invoke(t, method, caller.bearer, req, responseFor(method))
				servertest.WantCode(t, method+" by "+caller.caller, code, caller.want)
			}
		}
		// Nothing the refused calls asked for happened.
		user, err := e.Directory().GetUser(t.Context(), servertest.UserName)
		if err != nil || user.Role != string(accounts.RoleUser) {
			t.Fatalf("after refused calls the user is %+v, %v", user, err)
		}
		if _, err := e.Directory().AuthenticateService(t.Context(), servertest.ServiceName, e.ServiceSecret); err != nil {
			t.Fatalf("after refused calls the service's secret fails: %v", err)
		}
		if client, err := e.Directory().GetClient(t.Context(), "dashboard"); err != nil || len(client.AllowedScopes) != 1 {
			t.Fatalf("after refused calls the client is %+v, %v", client, err)
		}
		if _, code := tr.Refresh(t, aliceLogin.GetRefreshToken()); code != codes.OK {
			t.Fatalf("after refused calls alice's login is gone: %v", code)
		}
		if _, err := e.Store.GetProvider(t.Context(), "provider-1"); err != nil {
			t.Fatalf("after refused calls the provider is gone: %v", err)
		}
		if keysAfter, err := e.Store.ListSigningKeys(t.Context()); err != nil || len(keysAfter) != len(keysBefore) {
			t.Fatalf("after refused calls the signing keys are %v (were %v), %v", keysAfter, keysBefore, err)
		}
		if streams, err := e.Store.ListSecurityEventStreams(t.Context(), storage.Page{Limit: 10}); err != nil || len(streams) != 0 {
			t.Fatalf("after refused calls the streams are %v, %v", streams, err)
		}
		// An admin gets through: create first, delete last.
		for _, kind := range []struct{ create, remove string }{
			{adminv1.AdminService_CreateUser_FullMethodName, adminv1.AdminService_DeleteUser_FullMethodName},
			{adminv1.AdminService_CreateServiceAccount_FullMethodName, adminv1.AdminService_DeleteServiceAccount_FullMethodName},
			{adminv1.AdminService_CreateClient_FullMethodName, adminv1.AdminService_DeleteClient_FullMethodName},
			{adminv1.AdminService_CreateSecurityEventStream_FullMethodName, adminv1.AdminService_DeleteSecurityEventStream_FullMethodName},
		} {
			requests := everyAdminRequest("made-by-admin")
			servertest.WantCode(t, kind.create+" by ADMIN", tr.Invoke(t, kind.create, c.Admin, requests[kind.create], responseFor(kind.create)), codes.OK)
			for method, req := range requests {
				if method != kind.create && method != kind.remove && strings.Contains(method, strings.TrimPrefix(kind.create, "/chit.admin.v1.AdminService/Create")) {
					servertest.WantCode(t, method+" by ADMIN", tr.Invoke(t, method, c.Admin, req, responseFor(method)), codes.OK)
				}
			}
			servertest.WantCode(t, kind.remove+" by ADMIN", tr.Invoke(t, kind.remove, c.Admin, requests[kind.remove], responseFor(kind.remove)), codes.OK)
		}
		for _, method := range []string{adminv1.AdminService_GetProvider_FullMethodName, adminv1.AdminService_ListProviders_FullMethodName,
			adminv1.AdminService_ListSigningKeys_FullMethodName, adminv1.AdminService_RotateSigningKeys_FullMethodName,
			adminv1.AdminService_DeleteProvider_FullMethodName} {
			servertest.WantCode(t, method+" by ADMIN", tr.Invoke(t, method, c.Admin, serverRequests("provider-1")[method], responseFor(method)), codes.OK)
		}
		for method, want := range map[string]codes.Code{adminv1.AdminService_ListLogins_FullMethodName: codes.OK,
			adminv1.AdminService_RevokeLogin_FullMethodName: codes.NotFound, adminv1.AdminService_RevokeLogins_FullMethodName: codes.OK,
			adminv1.AdminService_ListApiKeys_FullMethodName: codes.OK, adminv1.AdminService_RevokeApiKey_FullMethodName: codes.NotFound} {
			servertest.WantCode(t, method+" by ADMIN", tr.Invoke(t, method, c.Admin, loginRequests(servertest.UserName)[method], responseFor(method)), want)
		}
	})
}

// An admin manages a person's whole life over the API, on both transports
// and stores, and every change ends the access it should, as the chitd
// commands do.
func TestAdminUserLifecycle(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		created := &adminv1.CreateUserResponse{}
		servertest.WantCode(t, "CreateUser", tr.Invoke(t, adminv1.AdminService_CreateUser_FullMethodName, c.Admin, &adminv1.CreateUserRequest{
			Name: "carol", Password: "carol's long password", AllowedScopes: []string{"reports:read", "reports:write"},
			DefaultScopes: []string{"reports:read"},
		}, created), codes.OK)
		if u := created.GetUser(); u.GetName() != "carol" || u.GetRole() != "USER" ||
			!slices.Equal(u.GetAllowedScopes(), []string{"reports:read", "reports:write"}) || u.GetCreateTime() == nil {
			t.Fatalf("CreateUser answered %v", u)
		}
		servertest.WantCode(t, "CreateUser again", tr.Invoke(t, adminv1.AdminService_CreateUser_FullMethodName, c.Admin,
			&adminv1.CreateUserRequest{Name: "carol", Password: "another long password"}, &adminv1.CreateUserResponse{}), codes.AlreadyExists)

		// Carol signs in with the password the admin set.
		carol, code := tr.Token(t, servertest.PasswordRequest("carol", "carol's long password"))
		servertest.WantCode(t, "carol's token", code, codes.OK)
		if _, code := tr.Check(t, carol.GetAccessToken()); code != codes.OK {
			t.Fatalf("carol's token: %v", code)
		}

		got := &adminv1.GetUserResponse{}
		servertest.WantCode(t, "GetUser", tr.Invoke(t, adminv1.AdminService_GetUser_FullMethodName, c.Admin, &adminv1.GetUserRequest{Name: "carol"}, got), codes.OK)
		if !proto.Equal(got.GetUser(), created.GetUser()) {
			t.Fatalf("GetUser = %v, want %v", got.GetUser(), created.GetUser())
		}

		// Narrowing carol's scopes refuses her access token issued before.
		e.Clock.Advance(2e9)
		narrowed := &adminv1.SetUserScopesResponse{}
		servertest.WantCode(t, "SetUserScopes", tr.Invoke(t, adminv1.AdminService_SetUserScopes_FullMethodName, c.Admin,
			&adminv1.SetUserScopesRequest{Name: "carol", AllowedScopes: []string{"reports:read"}}, narrowed), codes.OK)
		if s := narrowed.GetUser().GetAllowedScopes(); !slices.Equal(s, []string{"reports:read"}) {
			t.Fatalf("SetUserScopes answered scopes %v", s)
		}
		e.Clock.Advance(revocationSeen)
		if _, code := tr.Check(t, carol.GetAccessToken()); code != codes.Unauthenticated {
			t.Fatalf("carol's token after narrowing: %v, want Unauthenticated", code)
		}

		// A new role ends her tokens too; the answer shows it.
		carol, code = tr.Token(t, servertest.PasswordRequest("carol", "carol's long password"))
		servertest.WantCode(t, "carol's second token", code, codes.OK)
		e.Clock.Advance(2e9)
		promoted := &adminv1.SetUserRoleResponse{}
		servertest.WantCode(t, "SetUserRole", tr.Invoke(t, adminv1.AdminService_SetUserRole_FullMethodName, c.Admin,
			&adminv1.SetUserRoleRequest{Name: "carol", Role: "admin"}, promoted), codes.OK)
		if promoted.GetUser().GetRole() != "ADMIN" {
			t.Fatalf("SetUserRole answered %v", promoted.GetUser())
		}
		e.Clock.Advance(revocationSeen)
		if _, code := tr.Check(t, carol.GetAccessToken()); code != codes.Unauthenticated {
			t.Fatalf("carol's token after a new role: %v, want Unauthenticated", code)
		}

		// Deleting her ends her logins and refuses her tokens.
		carol, code = tr.Token(t, servertest.PasswordRequest("carol", "carol's long password"))
		servertest.WantCode(t, "carol's third token", code, codes.OK)
		e.Clock.Advance(2e9)
		servertest.WantCode(t, "DeleteUser", tr.Invoke(t, adminv1.AdminService_DeleteUser_FullMethodName, c.Admin,
			&adminv1.DeleteUserRequest{Name: "carol"}, &adminv1.DeleteUserResponse{}), codes.OK)
		e.Clock.Advance(revocationSeen)
		if _, code := tr.Check(t, carol.GetAccessToken()); code != codes.Unauthenticated {
			t.Fatalf("carol's token after deletion: %v, want Unauthenticated", code)
		}
		if _, code := tr.Refresh(t, carol.GetRefreshToken()); code == codes.OK {
			t.Fatal("carol's refresh token works after deletion")
		}
		for _, method := range []string{adminv1.AdminService_GetUser_FullMethodName, adminv1.AdminService_DeleteUser_FullMethodName,
			adminv1.AdminService_SetUserRole_FullMethodName, adminv1.AdminService_SetUserScopes_FullMethodName} {
			servertest.WantCode(t, method+" of a deleted user", tr.Invoke(t, method, c.Admin, adminRequests("carol")[method], responseFor(method)), codes.NotFound)
		}
	})
}

// Lists come in pages in a stable order; every user appears once; a page
// token that was altered or made up is refused.
func TestAdminListUsersPages(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		want := []string{servertest.AdminName, servertest.UserName}
		for i := range 5 {
			name := fmt.Sprintf("user-%d", i)
			if err := e.Directory().CreateUser(t.Context(), name, "a long password", accounts.RoleUser, storage.Grants{}); err != nil {
				t.Fatal(err)
			}
			want = append(want, name)
		}
		slices.Sort(want)

		var names []string
		var tokens []string
		req := &adminv1.ListUsersRequest{PageSize: 2}
		for range 10 {
			page := &adminv1.ListUsersResponse{}
			servertest.WantCode(t, "ListUsers", tr.Invoke(t, adminv1.AdminService_ListUsers_FullMethodName, c.Admin, req, page), codes.OK)
			if len(page.GetUsers()) > 2 {
				t.Fatalf("page of %d users for page_size 2", len(page.GetUsers()))
			}
			for _, user := range page.GetUsers() {
				names = append(names, user.GetName())
			}
			if page.GetNextPageToken() == "" {
				break
			}
			tokens = append(tokens, page.GetNextPageToken())
			req.PageToken = page.GetNextPageToken()
		}
		if !slices.Equal(names, want) {
			t.Fatalf("pages listed %v, want %v", names, want)
		}

		all := &adminv1.ListUsersResponse{}
		servertest.WantCode(t, "ListUsers default size", tr.Invoke(t, adminv1.AdminService_ListUsers_FullMethodName, c.Admin, &adminv1.ListUsersRequest{}, all), codes.OK)
		if len(all.GetUsers()) != len(want) || all.GetNextPageToken() != "" {
			t.Fatalf("default page: %d users, next %q", len(all.GetUsers()), all.GetNextPageToken())
		}

		token := tokens[0]
		flipped := []byte(token)
		flipped[len(flipped)-1] ^= 1
		if flipped[len(flipped)-1] == '.' || flipped[len(flipped)-1] == '/' {
			flipped[len(flipped)-1] = 'A'
		}
		for _, bad := range []struct {
			name string
			req  *adminv1.ListUsersRequest
		}{
			{"altered token", &adminv1.ListUsersRequest{PageToken: string(flipped)}},
			{"token with a MAC of its own", &adminv1.ListUsersRequest{PageToken: "AAAAAQ" + token[6:]}},
			{"made-up token", &adminv1.ListUsersRequest{PageToken: "dXNlci0x"}},
			{"overlong token", &adminv1.ListUsersRequest{PageToken: strings.Repeat("A", 4000)}},
			{"negative size", &adminv1.ListUsersRequest{PageSize: -1}},
			{"size over the maximum", &adminv1.ListUsersRequest{PageSize: 1001}},
		} {
			servertest.WantCode(t, bad.name, tr.Invoke(t, adminv1.AdminService_ListUsers_FullMethodName, c.Admin, bad.req, &adminv1.ListUsersResponse{}), codes.InvalidArgument)
		}
	})
}

// Bad input gets INVALID_ARGUMENT with a message naming what is wrong, and
// leaves nothing half-written.
func TestAdminBadInput(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	tr := servertest.Transports(e)["gRPC"]
	c := servertest.NewAdminCallers(t, e, tr)
	for _, bad := range []struct {
		name, method string
		req          proto.Message
		mention      string
	}{
		{"name too long", adminv1.AdminService_CreateUser_FullMethodName,
			&adminv1.CreateUserRequest{Name: strings.Repeat("a", 65), Password: "a long password"}, "name"},
		{"name with a slash", adminv1.AdminService_CreateUser_FullMethodName,
			&adminv1.CreateUserRequest{Name: "a/b", Password: "a long password"}, "name"},
		{"empty name", adminv1.AdminService_GetUser_FullMethodName, &adminv1.GetUserRequest{}, "name"},
		{"short password", adminv1.AdminService_CreateUser_FullMethodName,
			&adminv1.CreateUserRequest{Name: "dave", Password: "short"}, "password"},
		{"unknown role", adminv1.AdminService_CreateUser_FullMethodName,
			&adminv1.CreateUserRequest{Name: "dave", Password: "a long password", Role: "ROOT"}, "role"},
		{"SERVICE role for a person", adminv1.AdminService_SetUserRole_FullMethodName,
			&adminv1.SetUserRoleRequest{Name: servertest.UserName, Role: "SERVICE"}, "role"},
		{"missing role", adminv1.AdminService_SetUserRole_FullMethodName,
			&adminv1.SetUserRoleRequest{Name: servertest.UserName}, "role"},
		{"default scope not allowed", adminv1.AdminService_CreateUser_FullMethodName,
			&adminv1.CreateUserRequest{Name: "dave", Password: "a long password", DefaultScopes: []string{"reports:read"}}, "reports:read"},
		{"empty scope", adminv1.AdminService_SetUserScopes_FullMethodName,
			&adminv1.SetUserScopesRequest{Name: servertest.UserName, AllowedScopes: []string{""}}, "allowed_scopes"},
		{"scope with a space", adminv1.AdminService_SetUserScopes_FullMethodName,
			&adminv1.SetUserScopesRequest{Name: servertest.UserName, AllowedScopes: []string{"a b"}}, "scope"},
	} {
		err := e.Conn.Invoke(servertest.WithBearer(c.Admin), bad.method, bad.req, responseFor(bad.method))
		if code := status.Code(err); code != codes.InvalidArgument || !strings.Contains(err.Error(), bad.mention) {
			t.Errorf("%s: got %v, want InvalidArgument naming %q", bad.name, err, bad.mention)
		}
	}
	if _, err := e.Directory().GetUser(t.Context(), "dave"); err == nil {
		t.Fatal("a refused CreateUser left a user behind")
	}
	user, err := e.Directory().GetUser(t.Context(), servertest.UserName)
	if err != nil || user.Role != "USER" || !slices.Equal(user.AllowedScopes, servertest.UserGrants.AllowedScopes) {
		t.Fatalf("refused changes altered the user: %+v, %v", user, err)
	}
}

// Fields the Admin API does not know are refused, not ignored: an operator
// who misspells a field must not believe it was applied. Over REST the
// message names the field.
func TestAdminRefusesUnknownFields(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	c := servertest.NewAdminCallers(t, e, servertest.Transports(e)["gRPC"])

	body := `{"name":"erin","password":"a long password","allowed_scope":["reports:read"]}`
	req, err := http.NewRequest(http.MethodPost, e.HTTPBase()+"/v1/admin/users", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var failure struct{ Message string }
	if err := json.NewDecoder(resp.Body).Decode(&failure); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(failure.Message, "allowed_scope") {
		t.Fatalf("unknown REST field: HTTP %d %q, want 400 naming allowed_scope", resp.StatusCode, failure.Message)
	}

	// Over gRPC an unknown field arrives as unknown bytes: field 99, a string.
	withUnknown := &adminv1.CreateUserRequest{Name: "erin", Password: "a long password"}
	withUnknown.ProtoReflect().SetUnknown(protoreflect.RawFields{0x9a, 0x06, 0x01, 'x'})
	err = e.Conn.Invoke(servertest.WithBearer(c.Admin), adminv1.AdminService_CreateUser_FullMethodName, withUnknown, &adminv1.CreateUserResponse{})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "99") {
		t.Fatalf("unknown gRPC field: got %v, want InvalidArgument naming field 99", err)
	}
	if _, err := e.Directory().GetUser(t.Context(), "erin"); err == nil {
		t.Fatal("a refused CreateUser left a user behind")
	}
}

// Every Admin call writes one audit line, refused ones included, naming
// the actor, the action, the target and the outcome, and never a password.
func TestAdminAuditLines(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		servertest.WantCode(t, "CreateUser", tr.Invoke(t, adminv1.AdminService_CreateUser_FullMethodName, c.Admin,
			&adminv1.CreateUserRequest{Name: "frank", Password: "frank's secret password"}, &adminv1.CreateUserResponse{}), codes.OK)
		servertest.WantCode(t, "DeleteUser by USER", tr.Invoke(t, adminv1.AdminService_DeleteUser_FullMethodName, c.User,
			&adminv1.DeleteUserRequest{Name: "frank"}, &adminv1.DeleteUserResponse{}), codes.PermissionDenied)
		servertest.WantCode(t, "GetUser by nobody", tr.Invoke(t, adminv1.AdminService_GetUser_FullMethodName, "",
			&adminv1.GetUserRequest{Name: "frank"}, &adminv1.GetUserResponse{}), codes.Unauthenticated)

		logs := e.Logs.String()
		if strings.Contains(logs, "frank's secret password") {
			t.Fatal("the password reached the logs")
		}
		var audits []map[string]any
		for _, line := range strings.Split(logs, "\n") {
			var entry map[string]any
			if json.Unmarshal([]byte(line), &entry) == nil && entry["audit"] == true {
				audits = append(audits, entry)
			}
		}
		want := []struct{ actor, action, target, outcome string }{
			{servertest.AdminName, "CreateUser", "frank", "OK"},
			{servertest.UserName, "DeleteUser", "frank", "PermissionDenied"},
			{"", "GetUser", "frank", "Unauthenticated"},
		}
		if len(audits) != len(want) {
			t.Fatalf("%d audit lines, want %d: %v", len(audits), len(want), audits)
		}
		for i, w := range want {
			a := audits[i]
			if a["actor"] != w.actor || a["action"] != w.action || a["target"] != w.target || a["outcome"] != w.outcome || a["client"] == "" {
				t.Errorf("audit line %d = %v, want %+v", i, a, w)
			}
		}
	})
}

// An admin manages a service account's whole life over the API: its secret
// is shown once and works, a narrower grant and a deletion end its tokens,
// and a rotated secret works beside its successor for the overlap only.
func TestAdminServiceAccountLifecycle(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		created := &adminv1.CreateServiceAccountResponse{}
		servertest.WantCode(t, "CreateServiceAccount", tr.Invoke(t, adminv1.AdminService_CreateServiceAccount_FullMethodName, c.Admin,
			&adminv1.CreateServiceAccountRequest{ClientId: "reports", AllowedScopes: []string{"inventory:read", "inventory:write"},
				DefaultScopes: []string{"inventory:read"}, AllowedAudiences: []string{"inventory"}}, created), codes.OK)
		first := created.GetClientSecret()
		if !strings.HasPrefix(first, "chit_cs_") || created.GetServiceAccount().GetClientId() != "reports" ||
			!slices.Equal(created.GetServiceAccount().GetAllowedAudiences(), []string{"inventory"}) {
			t.Fatalf("CreateServiceAccount answered %v", created)
		}
		token, code := tr.Token(t, servertest.ClientRequest("reports", first))
		servertest.WantCode(t, "token with the first secret", code, codes.OK)

		// Reads never show a secret.
		got := &adminv1.GetServiceAccountResponse{}
		servertest.WantCode(t, "GetServiceAccount", tr.Invoke(t, adminv1.AdminService_GetServiceAccount_FullMethodName, c.Admin,
			&adminv1.GetServiceAccountRequest{ClientId: "reports"}, got), codes.OK)
		listed := &adminv1.ListServiceAccountsResponse{}
		servertest.WantCode(t, "ListServiceAccounts", tr.Invoke(t, adminv1.AdminService_ListServiceAccounts_FullMethodName, c.Admin,
			&adminv1.ListServiceAccountsRequest{}, listed), codes.OK)
		if !proto.Equal(got.GetServiceAccount(), created.GetServiceAccount()) || len(listed.GetServiceAccounts()) != 3 ||
			strings.Contains(fmt.Sprint(got, listed), "chit_cs_") {
			t.Fatalf("GetServiceAccount = %v; ListServiceAccounts = %v", got, listed)
		}

		// A narrower grant refuses the token issued before.
		e.Clock.Advance(2e9)
		narrowed := &adminv1.SetServiceAccountGrantsResponse{}
		servertest.WantCode(t, "SetServiceAccountGrants", tr.Invoke(t, adminv1.AdminService_SetServiceAccountGrants_FullMethodName, c.Admin,
			&adminv1.SetServiceAccountGrantsRequest{ClientId: "reports", AllowedScopes: []string{"inventory:read"}}, narrowed), codes.OK)
		if a := narrowed.GetServiceAccount(); !slices.Equal(a.GetAllowedScopes(), []string{"inventory:read"}) || len(a.GetAllowedAudiences()) != 0 {
			t.Fatalf("SetServiceAccountGrants answered %v", a)
		}
		e.Clock.Advance(revocationSeen)
		if _, code := tr.Check(t, token.GetAccessToken()); code != codes.Unauthenticated {
			t.Fatalf("the token after a narrower grant: %v, want Unauthenticated", code)
		}

		// Rotation with an overlap: both secrets work, then only the new one.
		rotated := &adminv1.RotateServiceAccountSecretResponse{}
		servertest.WantCode(t, "RotateServiceAccountSecret", tr.Invoke(t, adminv1.AdminService_RotateServiceAccountSecret_FullMethodName, c.Admin,
			&adminv1.RotateServiceAccountSecretRequest{ClientId: "reports", Overlap: durationpb.New(time.Hour)}, rotated), codes.OK)
		second := rotated.GetClientSecret()
		if !strings.HasPrefix(second, "chit_cs_") || second == first || rotated.GetServiceAccount().GetPreviousSecretExpireTime() == nil {
			t.Fatalf("RotateServiceAccountSecret answered %v", rotated)
		}
		for _, secret := range []string{first, second} {
			_, code := tr.Token(t, servertest.ClientRequest("reports", secret))
			servertest.WantCode(t, "a secret during the overlap", code, codes.OK)
		}
		e.Clock.Advance(time.Hour)
		_, code = tr.Token(t, servertest.ClientRequest("reports", first))
		servertest.WantCode(t, "the replaced secret after the overlap", code, codes.Unauthenticated)
		token, code = tr.Token(t, servertest.ClientRequest("reports", second))
		servertest.WantCode(t, "the new secret after the overlap", code, codes.OK)
		// The hour outlived the admin's access token (15 minutes).
		admin, code := tr.Token(t, servertest.PasswordRequest(servertest.AdminName, servertest.AdminPassword))
		servertest.WantCode(t, "a new admin token", code, codes.OK)
		c.Admin = admin.GetAccessToken()

		// Without an overlap the replaced secret stops at once.
		servertest.WantCode(t, "RotateServiceAccountSecret at once", tr.Invoke(t, adminv1.AdminService_RotateServiceAccountSecret_FullMethodName, c.Admin,
			&adminv1.RotateServiceAccountSecretRequest{ClientId: "reports"}, rotated), codes.OK)
		_, code = tr.Token(t, servertest.ClientRequest("reports", second))
		servertest.WantCode(t, "the replaced secret without an overlap", code, codes.Unauthenticated)
		third := rotated.GetClientSecret()

		// Deleting the account ends its secret and its tokens.
		servertest.WantCode(t, "DeleteServiceAccount", tr.Invoke(t, adminv1.AdminService_DeleteServiceAccount_FullMethodName, c.Admin,
			&adminv1.DeleteServiceAccountRequest{ClientId: "reports"}, &adminv1.DeleteServiceAccountResponse{}), codes.OK)
		e.Clock.Advance(revocationSeen)
		_, code = tr.Token(t, servertest.ClientRequest("reports", third))
		servertest.WantCode(t, "the secret of a deleted account", code, codes.Unauthenticated)
		if _, code := tr.Check(t, token.GetAccessToken()); code != codes.Unauthenticated {
			t.Fatalf("a deleted account's token: %v, want Unauthenticated", code)
		}
		for method, req := range serviceAccountRequests("reports") {
			if method == adminv1.AdminService_CreateServiceAccount_FullMethodName || method == adminv1.AdminService_ListServiceAccounts_FullMethodName {
				continue
			}
			servertest.WantCode(t, method+" of a deleted account", tr.Invoke(t, method, c.Admin, req, responseFor(method)), codes.NotFound)
		}
	})
}

// Service-account input the API refuses, naming the field, writing nothing.
func TestAdminServiceAccountBadInput(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	c := servertest.NewAdminCallers(t, e, servertest.Transports(e)["gRPC"])
	for _, bad := range []struct {
		name, method string
		req          proto.Message
		want         codes.Code
		mention      string
	}{
		{"reserved client id", adminv1.AdminService_CreateServiceAccount_FullMethodName,
			&adminv1.CreateServiceAccountRequest{ClientId: "chit-cli"}, codes.InvalidArgument, "reserved"},
		{"client id too long", adminv1.AdminService_CreateServiceAccount_FullMethodName,
			&adminv1.CreateServiceAccountRequest{ClientId: strings.Repeat("s", 65)}, codes.InvalidArgument, "name"},
		{"a user's kind of name taken by a service", adminv1.AdminService_CreateServiceAccount_FullMethodName,
			&adminv1.CreateServiceAccountRequest{ClientId: servertest.ServiceName}, codes.AlreadyExists, servertest.ServiceName},
		{"own id as audience", adminv1.AdminService_CreateServiceAccount_FullMethodName,
			&adminv1.CreateServiceAccountRequest{ClientId: "svc", AllowedAudiences: []string{"svc"}}, codes.InvalidArgument, "audience"},
		{"default scope not allowed", adminv1.AdminService_SetServiceAccountGrants_FullMethodName,
			&adminv1.SetServiceAccountGrantsRequest{ClientId: servertest.ServiceName, DefaultScopes: []string{"x"}}, codes.InvalidArgument, "x"},
		{"negative overlap", adminv1.AdminService_RotateServiceAccountSecret_FullMethodName,
			&adminv1.RotateServiceAccountSecretRequest{ClientId: servertest.ServiceName, Overlap: durationpb.New(-time.Second)}, codes.InvalidArgument, "overlap"},
		{"overlap over a week", adminv1.AdminService_RotateServiceAccountSecret_FullMethodName,
			&adminv1.RotateServiceAccountSecretRequest{ClientId: servertest.ServiceName, Overlap: durationpb.New(169 * time.Hour)}, codes.InvalidArgument, "overlap"},
		{"invalid duration", adminv1.AdminService_RotateServiceAccountSecret_FullMethodName,
			&adminv1.RotateServiceAccountSecretRequest{ClientId: servertest.ServiceName, Overlap: &durationpb.Duration{Seconds: 1, Nanos: -5}}, codes.InvalidArgument, "overlap"},
		{"a user's name as client id", adminv1.AdminService_GetServiceAccount_FullMethodName,
			&adminv1.GetServiceAccountRequest{ClientId: servertest.UserName}, codes.NotFound, servertest.UserName},
		{"empty client id", adminv1.AdminService_DeleteServiceAccount_FullMethodName,
			&adminv1.DeleteServiceAccountRequest{}, codes.InvalidArgument, "client_id"},
	} {
		err := e.Conn.Invoke(servertest.WithBearer(c.Admin), bad.method, bad.req, responseFor(bad.method))
		if code := status.Code(err); code != bad.want || !strings.Contains(err.Error(), bad.mention) {
			t.Errorf("%s: got %v, want %v naming %q", bad.name, err, bad.want, bad.mention)
		}
	}
	if _, err := e.Directory().GetServiceAccount(t.Context(), "svc"); err == nil {
		t.Fatal("a refused CreateServiceAccount left an account behind")
	}
	if _, err := e.Directory().AuthenticateService(t.Context(), servertest.ServiceName, e.ServiceSecret); err != nil {
		t.Fatalf("a refused rotation changed the secret: %v", err)
	}
}

// An admin manages an OAuth client over the API: a confidential client's
// secret is shown once and rotates, a public one has none, a narrower grant
// and a deletion end what was issued through it.
// A client's PKCE setting (Client.pkce): required by default, optional for a
// confidential client only, changed by UpdateClient, which changes nothing
// it is not given; the sign-in page follows it at once.
func TestAdminClientPKCE(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		create := func(id string, confidential bool, pkce string, want codes.Code) *adminv1.Client {
			t.Helper()
			created := &adminv1.CreateClientResponse{}
			servertest.WantCode(t, "CreateClient "+id+" pkce "+pkce, tr.Invoke(t, adminv1.AdminService_CreateClient_FullMethodName, c.Admin,
				&adminv1.CreateClientRequest{ClientId: id, RedirectUris: []string{"https://" + id + ".example/cb"}, Confidential: confidential,
					AllowedScopes: []string{"openid"}, Pkce: pkce}, created), want)
			return created.GetClient()
		}
		update := func(id, pkce string, want codes.Code) *adminv1.Client {
			t.Helper()
			updated := &adminv1.UpdateClientResponse{}
			servertest.WantCode(t, "UpdateClient "+id+" pkce "+pkce, tr.Invoke(t, adminv1.AdminService_UpdateClient_FullMethodName, c.Admin,
				&adminv1.UpdateClientRequest{ClientId: id, Pkce: pkce}, updated), want)
			return updated.GetClient()
		}
		if got := create("web", true, "", codes.OK); got.GetPkce() != "required" {
			t.Fatalf("a client created without pkce: %v", got)
		}
		if got := create("proxy", true, "optional", codes.OK); got.GetPkce() != "optional" {
			t.Fatalf("a client created with pkce optional: %v", got)
		}
		if got := create("spa", false, "required", codes.OK); got.GetPkce() != "required" {
			t.Fatalf("a public client: %v", got)
		}
		create("mobile", false, "optional", codes.InvalidArgument)
		create("odd", true, "sometimes", codes.InvalidArgument)
		if _, err := e.Directory().GetClient(t.Context(), "mobile"); err == nil {
			t.Fatal("a refused CreateClient stored the client")
		}

		update("spa", "optional", codes.InvalidArgument)
		update("web", "sometimes", codes.InvalidArgument)
		update("nobody", "optional", codes.NotFound)
		if got := update("web", "optional", codes.OK); got.GetPkce() != "optional" || !got.GetConfidential() {
			t.Fatalf("UpdateClient answered %v", got)
		}
		// Nothing given, nothing changed.
		if got := update("web", "", codes.OK); got.GetPkce() != "optional" || !slices.Equal(got.GetAllowedScopes(), []string{"openid"}) {
			t.Fatalf("an empty UpdateClient answered %v", got)
		}
		got := &adminv1.GetClientResponse{}
		servertest.WantCode(t, "GetClient", tr.Invoke(t, adminv1.AdminService_GetClient_FullMethodName, c.Admin,
			&adminv1.GetClientRequest{ClientId: "spa"}, got), codes.OK)
		if got.GetClient().GetPkce() != "required" {
			t.Fatalf("a refused UpdateClient changed the client: %v", got)
		}

		// The sign-in page follows the setting from the next request.
		withoutPKCE := url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {"https://web.example/cb"}, "state": {"s"}}
		page := func() int {
			resp, err := servertest.NoRedirects(t, e).Client.Get(e.HTTPBase() + authorize.PagePath + "?" + withoutPKCE.Encode())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if status := page(); status != http.StatusOK {
			t.Fatalf("PKCE optional, no challenge: HTTP %d", status)
		}
		update("web", "required", codes.OK)
		if status := page(); status != http.StatusSeeOther {
			t.Fatalf("PKCE required again, no challenge: HTTP %d, want a redirect with invalid_request", status)
		}
	})
}

func TestAdminClientLifecycle(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		created := &adminv1.CreateClientResponse{}
		servertest.WantCode(t, "CreateClient", tr.Invoke(t, adminv1.AdminService_CreateClient_FullMethodName, c.Admin, &adminv1.CreateClientRequest{
			ClientId: "dashboard", RedirectUris: []string{"https://app.example/callback"}, Confidential: true,
			AllowedScopes: []string{"openid", "reports:read"}, DefaultScopes: []string{"openid"},
		}, created), codes.OK)
		first := created.GetClientSecret()
		if !strings.HasPrefix(first, "chit_cs_") || !created.GetClient().GetConfidential() ||
			!slices.Equal(created.GetClient().GetRedirectUris(), []string{"https://app.example/callback"}) {
			t.Fatalf("CreateClient answered %v", created)
		}
		if _, err := e.Directory().AuthenticateClient(t.Context(), "dashboard", first); err != nil {
			t.Fatalf("the answered secret does not authenticate: %v", err)
		}

		public := &adminv1.CreateClientResponse{}
		servertest.WantCode(t, "CreateClient public", tr.Invoke(t, adminv1.AdminService_CreateClient_FullMethodName, c.Admin, &adminv1.CreateClientRequest{
			ClientId: "mobile", RedirectUris: []string{"http://127.0.0.1/cb"}}, public), codes.OK)
		if public.GetClientSecret() != "" || public.GetClient().GetConfidential() {
			t.Fatalf("a public client got %v", public)
		}
		servertest.WantCode(t, "RotateClientSecret of a public client", tr.Invoke(t, adminv1.AdminService_RotateClientSecret_FullMethodName, c.Admin,
			&adminv1.RotateClientSecretRequest{ClientId: "mobile"}, &adminv1.RotateClientSecretResponse{}), codes.FailedPrecondition)
		if client, err := e.Directory().GetClient(t.Context(), "mobile"); err != nil || len(client.SecretHash) != 0 {
			t.Fatalf("a refused rotation gave the public client a secret: %+v, %v", client, err)
		}

		rotated := &adminv1.RotateClientSecretResponse{}
		servertest.WantCode(t, "RotateClientSecret", tr.Invoke(t, adminv1.AdminService_RotateClientSecret_FullMethodName, c.Admin,
			&adminv1.RotateClientSecretRequest{ClientId: "dashboard"}, rotated), codes.OK)
		if _, err := e.Directory().AuthenticateClient(t.Context(), "dashboard", first); err == nil {
			t.Fatal("the replaced secret still authenticates")
		}
		if _, err := e.Directory().AuthenticateClient(t.Context(), "dashboard", rotated.GetClientSecret()); err != nil {
			t.Fatalf("the new secret does not authenticate: %v", err)
		}

		listed := &adminv1.ListClientsResponse{}
		servertest.WantCode(t, "ListClients", tr.Invoke(t, adminv1.AdminService_ListClients_FullMethodName, c.Admin,
			&adminv1.ListClientsRequest{PageSize: 1}, listed), codes.OK)
		if len(listed.GetClients()) != 1 || listed.GetClients()[0].GetClientId() != "dashboard" || listed.GetNextPageToken() == "" {
			t.Fatalf("ListClients page 1 = %v", listed)
		}
		servertest.WantCode(t, "ListClients page 2", tr.Invoke(t, adminv1.AdminService_ListClients_FullMethodName, c.Admin,
			&adminv1.ListClientsRequest{PageSize: 1, PageToken: listed.GetNextPageToken()}, listed), codes.OK)
		if len(listed.GetClients()) != 1 || listed.GetClients()[0].GetClientId() != "mobile" || listed.GetNextPageToken() != "" {
			t.Fatalf("ListClients page 2 = %v", listed)
		}
		// A page token of the clients is no page token of the users.
		servertest.WantCode(t, "a clients token for ListUsers", tr.Invoke(t, adminv1.AdminService_ListUsers_FullMethodName, c.Admin,
			&adminv1.ListUsersRequest{PageToken: listedToken(t, tr, c.Admin)}, &adminv1.ListUsersResponse{}), codes.InvalidArgument)

		narrowed := &adminv1.SetClientGrantsResponse{}
		servertest.WantCode(t, "SetClientGrants", tr.Invoke(t, adminv1.AdminService_SetClientGrants_FullMethodName, c.Admin,
			&adminv1.SetClientGrantsRequest{ClientId: "dashboard", AllowedScopes: []string{"openid"}}, narrowed), codes.OK)
		if s := narrowed.GetClient().GetAllowedScopes(); !slices.Equal(s, []string{"openid"}) {
			t.Fatalf("SetClientGrants answered %v", narrowed)
		}
		revocation, err := e.Store.GetRevocation(t.Context(), "", "", accounts.ClientSubject("dashboard"))
		if err != nil || revocation.SubjectRevokedAt.IsZero() {
			t.Fatalf("a narrower client grant refused nothing issued through it: %+v, %v", revocation, err)
		}

		servertest.WantCode(t, "DeleteClient", tr.Invoke(t, adminv1.AdminService_DeleteClient_FullMethodName, c.Admin,
			&adminv1.DeleteClientRequest{ClientId: "dashboard"}, &adminv1.DeleteClientResponse{}), codes.OK)
		for method, req := range clientRequests("dashboard") {
			if method == adminv1.AdminService_CreateClient_FullMethodName || method == adminv1.AdminService_ListClients_FullMethodName {
				continue
			}
			servertest.WantCode(t, method+" of a deleted client", tr.Invoke(t, method, c.Admin, req, responseFor(method)), codes.NotFound)
		}
		for _, bad := range []*adminv1.CreateClientRequest{
			{ClientId: "nowhere"},
			{ClientId: "plain-http", RedirectUris: []string{"http://app.example/cb"}},
			{ClientId: "fragment", RedirectUris: []string{"https://app.example/cb#x"}},
			{ClientId: "empty-fragment", RedirectUris: []string{"https://app.example/cb#"}},
			{ClientId: "port-zero", RedirectUris: []string{"http://127.0.0.1:0/cb"}},
			{ClientId: "port-too-high", RedirectUris: []string{"https://app.example:99999/cb"}},
		} {
			servertest.WantCode(t, "CreateClient "+bad.GetClientId(), tr.Invoke(t, adminv1.AdminService_CreateClient_FullMethodName, c.Admin, bad,
				&adminv1.CreateClientResponse{}), codes.InvalidArgument)
		}
	})
}

// listedToken is a next_page_token of ListClients.
func listedToken(t *testing.T, tr servertest.Transport, admin string) string {
	t.Helper()
	page := &adminv1.ListClientsResponse{}
	servertest.WantCode(t, "ListClients", tr.Invoke(t, adminv1.AdminService_ListClients_FullMethodName, admin, &adminv1.ListClientsRequest{PageSize: 1}, page), codes.OK)
	if page.GetNextPageToken() == "" {
		t.Fatal("ListClients gave no next page token")
	}
	return page.GetNextPageToken()
}

// A demoted or deleted admin loses the Admin API at once on the replica that
// made the change, not when its revocation cache expires: the regression of
// a demoted admin's token creating a new admin in the seconds after.
func TestAdminChangesApplyAtOnce(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		if err := e.Directory().CreateUser(t.Context(), "eve", "eve's long password", accounts.RoleAdmin, storage.Grants{}); err != nil {
			t.Fatal(err)
		}
		eve, code := tr.Token(t, servertest.PasswordRequest("eve", "eve's long password"))
		servertest.WantCode(t, "eve's token", code, codes.OK)
		// Eve's token is checked, so this replica remembers it unrevoked.
		servertest.WantCode(t, "ListUsers by eve", tr.Invoke(t, adminv1.AdminService_ListUsers_FullMethodName, eve.GetAccessToken(),
			&adminv1.ListUsersRequest{}, &adminv1.ListUsersResponse{}), codes.OK)
		e.Clock.Advance(time.Second)

		servertest.WantCode(t, "demote eve", tr.Invoke(t, adminv1.AdminService_SetUserRole_FullMethodName, c.Admin,
			&adminv1.SetUserRoleRequest{Name: "eve", Role: "USER"}, &adminv1.SetUserRoleResponse{}), codes.OK)
		servertest.WantCode(t, "CreateUser by demoted eve", tr.Invoke(t, adminv1.AdminService_CreateUser_FullMethodName, eve.GetAccessToken(),
			&adminv1.CreateUserRequest{Name: "backdoor", Password: "a long password", Role: "ADMIN"}, &adminv1.CreateUserResponse{}), codes.Unauthenticated)

		// The same for a deletion, and for a service account's narrower grant.
		servertest.WantCode(t, "promote eve", tr.Invoke(t, adminv1.AdminService_SetUserRole_FullMethodName, c.Admin,
			&adminv1.SetUserRoleRequest{Name: "eve", Role: "ADMIN"}, &adminv1.SetUserRoleResponse{}), codes.OK)
		e.Clock.Advance(time.Second)
		eve, code = tr.Token(t, servertest.PasswordRequest("eve", "eve's long password"))
		servertest.WantCode(t, "eve's second token", code, codes.OK)
		servertest.WantCode(t, "ListUsers by eve again", tr.Invoke(t, adminv1.AdminService_ListUsers_FullMethodName, eve.GetAccessToken(),
			&adminv1.ListUsersRequest{}, &adminv1.ListUsersResponse{}), codes.OK)
		e.Clock.Advance(time.Second)
		servertest.WantCode(t, "delete eve", tr.Invoke(t, adminv1.AdminService_DeleteUser_FullMethodName, c.Admin,
			&adminv1.DeleteUserRequest{Name: "eve"}, &adminv1.DeleteUserResponse{}), codes.OK)
		servertest.WantCode(t, "ListUsers by deleted eve", tr.Invoke(t, adminv1.AdminService_ListUsers_FullMethodName, eve.GetAccessToken(),
			&adminv1.ListUsersRequest{}, &adminv1.ListUsersResponse{}), codes.Unauthenticated)

		service, code := tr.Token(t, servertest.ClientRequest(servertest.ServiceName, e.ServiceSecret))
		servertest.WantCode(t, "service token", code, codes.OK)
		if _, code := tr.Check(t, service.GetAccessToken()); code != codes.OK {
			t.Fatalf("service token: %v", code)
		}
		e.Clock.Advance(time.Second)
		servertest.WantCode(t, "narrow the service", tr.Invoke(t, adminv1.AdminService_SetServiceAccountGrants_FullMethodName, c.Admin,
			&adminv1.SetServiceAccountGrantsRequest{ClientId: servertest.ServiceName}, &adminv1.SetServiceAccountGrantsResponse{}), codes.OK)
		if _, code := tr.Check(t, service.GetAccessToken()); code != codes.Unauthenticated {
			t.Fatalf("a narrowed service's token at once: %v, want Unauthenticated", code)
		}
		if _, err := e.Directory().GetUser(t.Context(), "backdoor"); err == nil {
			t.Fatal("a demoted admin created a user")
		}
	})
}

// Over REST the Admin API does exactly what a request says or refuses it:
// what grpc-gateway would ignore or reinterpret is refused with 400, and
// nothing changes.
func TestAdminRESTRefusesWhatItWouldIgnore(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	c := servertest.NewAdminCallers(t, e, servertest.Transports(e)["gRPC"])
	for _, tc := range []struct {
		name, method, path, body string
		header                   map[string]string
		mention                  string
	}{
		{"method override", http.MethodPost, "/v1/admin/users/" + servertest.UserName, "",
			map[string]string{"X-HTTP-Method-Override": "DELETE", "Content-Type": "application/x-www-form-urlencoded"}, "X-HTTP-Method-Override"},
		{"a query parameter on DELETE", http.MethodDelete, "/v1/admin/users/" + servertest.UserName + "?dryRun=true", "", nil, "dryRun"},
		{"an unknown query parameter on a list", http.MethodGet, "/v1/admin/users?pageSize=1&filter=x", "", nil, "filter"},
		{"a body on GET", http.MethodGet, "/v1/admin/users", `{"pageSize":1}`, nil, "no request body"},
		{"a body on DELETE", http.MethodDelete, "/v1/admin/users/" + servertest.UserName, `{}`, nil, "no request body"},
		{"a second JSON object", http.MethodPost, "/v1/admin/users", `{"name":"mallory","password":"a long password"}{"role":"ADMIN"}`, nil, "nothing after"},
		{"junk after the body", http.MethodPost, "/v1/admin/users", `{"name":"mallory","password":"a long password"} x`, nil, "nothing after"},
		{"a body naming another user", http.MethodPut, "/v1/admin/users/" + servertest.UserName + "/role", `{"name":"root","role":"USER"}`, nil, "differs from the path"},
		{"a body naming another service", http.MethodPost, "/v1/admin/service-accounts/" + servertest.ServiceName + "/secret", `{"clientId":"other"}`, nil, "differs from the path"},
	} {
		status, body := servertest.RawAdmin(t, e, tc.method, tc.path, c.Admin, tc.body, tc.header)
		if status != http.StatusBadRequest || !strings.Contains(body, tc.mention) {
			t.Errorf("%s: HTTP %d %s, want 400 naming %q", tc.name, status, body, tc.mention)
		}
	}
	// A form-encoded POST is not taken for the GET of its path.
	if status, body := servertest.RawAdmin(t, e, http.MethodPost, "/v1/admin/providers", c.Admin, `{"pageSize":1}`,
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"}); status != http.StatusMethodNotAllowed {
		t.Errorf("a form POST to a GET route: HTTP %d %s, want 405", status, body)
	}
	if user, err := e.Directory().GetUser(t.Context(), servertest.UserName); err != nil || user.Role != "USER" {
		t.Fatalf("refused requests changed alice: %+v, %v", user, err)
	}
	if root, err := e.Directory().GetUser(t.Context(), servertest.AdminName); err != nil || root.Role != "ADMIN" {
		t.Fatalf("refused requests changed root: %+v, %v", root, err)
	}
	if _, err := e.Directory().GetUser(t.Context(), "mallory"); err == nil {
		t.Fatal("a refused request created mallory")
	}
	if _, err := e.Directory().AuthenticateService(t.Context(), servertest.ServiceName, e.ServiceSecret); err != nil {
		t.Fatalf("a refused request rotated the service's secret: %v", err)
	}
	// What the rules allow still works: the paging query and the path's own
	// name repeated in the body.
	for _, ok := range []struct{ method, path, body string }{
		{http.MethodGet, "/v1/admin/users?pageSize=1", ""},
		{http.MethodGet, "/v1/admin/users?page_size=1&page_token=", ""},
		{http.MethodPut, "/v1/admin/users/" + servertest.UserName + "/role", `{"name":"` + servertest.UserName + `","role":"USER"}`},
	} {
		if status, body := servertest.RawAdmin(t, e, ok.method, ok.path, c.Admin, ok.body, nil); status != http.StatusOK {
			t.Errorf("%s %s: HTTP %d %s", ok.method, ok.path, status, body)
		}
	}
}

// A REST request refused before it reaches the handlers (it does not
// decode) is audited too, exactly once; a call that reaches them is audited
// once, by the interceptors.
func TestAdminRESTRefusalsAreAudited(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	c := servertest.NewAdminCallers(t, e, servertest.Transports(e)["gRPC"])
	before := len(servertest.AuditLines(e))
	servertest.RawAdmin(t, e, http.MethodPost, "/v1/admin/users", "", `{"name":"x","passwrd":"typo"}`, nil)
	servertest.RawAdmin(t, e, http.MethodPost, "/v1/admin/users", c.Admin, `{"name":`, nil)
	servertest.RawAdmin(t, e, http.MethodDelete, "/v1/admin/users/alice?dryRun=true", c.User, "", nil)
	servertest.RawAdmin(t, e, http.MethodGet, "/v1/admin/users", c.Admin, "", nil)
	lines := servertest.AuditLines(e)[before:]
	want := []struct{ action, outcome string }{
		{"POST /v1/admin/users", "InvalidArgument"},
		{"POST /v1/admin/users", "InvalidArgument"},
		{"DELETE /v1/admin/users/alice", "InvalidArgument"},
		{"ListUsers", "OK"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d audit lines for %d requests: %v", len(lines), len(want), lines)
	}
	for i, w := range want {
		if lines[i]["action"] != w.action || lines[i]["outcome"] != w.outcome || lines[i]["transport"] != "rest" {
			t.Errorf("audit line %d = %v, want %+v", i, lines[i], w)
		}
	}
}

// An admin sees the providers and deletes one, which ends its credentials;
// lists the signing keys and rotates them, after which this replica signs
// with the new key at once; a rotation too soon is refused unless forced.
func TestAdminProvidersAndSigningKeys(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		listed := &adminv1.ListProvidersResponse{}
		servertest.WantCode(t, "ListProviders", tr.Invoke(t, adminv1.AdminService_ListProviders_FullMethodName, c.Admin, &adminv1.ListProvidersRequest{}, listed), codes.OK)
		if len(listed.GetProviders()) != 1 || !listed.GetProviders()[0].GetClaimed() ||
			listed.GetProviders()[0].GetRegisteredBy() != servertest.ServiceName || listed.GetProviders()[0].GetKeyId() == "" {
			t.Fatalf("ListProviders = %v", listed)
		}
		got := &adminv1.GetProviderResponse{}
		servertest.WantCode(t, "GetProvider", tr.Invoke(t, adminv1.AdminService_GetProvider_FullMethodName, c.Admin, &adminv1.GetProviderRequest{Id: "provider-1"}, got), codes.OK)
		if !proto.Equal(got.GetProvider(), listed.GetProviders()[0]) {
			t.Fatalf("GetProvider = %v, want %v", got, listed.GetProviders()[0])
		}
		if strings.Contains(fmt.Sprint(got), "PRIVATE") {
			t.Fatal("a provider's private key was answered")
		}

		keysBefore := &adminv1.ListSigningKeysResponse{}
		servertest.WantCode(t, "ListSigningKeys", tr.Invoke(t, adminv1.AdminService_ListSigningKeys_FullMethodName, c.Admin, &adminv1.ListSigningKeysRequest{}, keysBefore), codes.OK)
		// Keys by "algorithm state": both families are listed, each key
		// with its algorithm.
		states := map[string]string{}
		for _, key := range keysBefore.GetSigningKeys() {
			states[key.GetAlgorithm()+" "+key.GetState()] = key.GetKeyId()
		}
		if len(keysBefore.GetSigningKeys()) != 4 || states["ES256 active"] == "" || states["ES256 next"] == "" || states["RS256 active"] == "" || states["RS256 next"] == "" {
			t.Fatalf("ListSigningKeys = %v, want an active and a next key of ES256 and of RS256", keysBefore)
		}
		servertest.WantCode(t, "RotateSigningKeys too soon", tr.Invoke(t, adminv1.AdminService_RotateSigningKeys_FullMethodName, c.Admin,
			&adminv1.RotateSigningKeysRequest{}, &adminv1.RotateSigningKeysResponse{}), codes.FailedPrecondition)
		e.Clock.Advance(6 * time.Minute)
		admin, code := tr.Token(t, servertest.PasswordRequest(servertest.AdminName, servertest.AdminPassword))
		servertest.WantCode(t, "a new admin token", code, codes.OK)
		rotated := &adminv1.RotateSigningKeysResponse{}
		servertest.WantCode(t, "RotateSigningKeys", tr.Invoke(t, adminv1.AdminService_RotateSigningKeys_FullMethodName, admin.GetAccessToken(),
			&adminv1.RotateSigningKeysRequest{}, rotated), codes.OK)
		after := map[string]string{}
		for _, key := range rotated.GetSigningKeys() {
			after[key.GetAlgorithm()+" "+key.GetState()] = key.GetKeyId()
		}
		// Both families rotate.
		for _, alg := range []string{"ES256", "RS256"} {
			if after[alg+" active"] != states[alg+" next"] || after[alg+" next"] == "" || after[alg+" next"] == states[alg+" next"] ||
				after[alg+" retired"] != states[alg+" active"] {
				t.Fatalf("after the rotation the %s keys are %v; before %v", alg, rotated, keysBefore)
			}
		}
		// This replica signs with the new key at once.
		fresh, code := tr.Token(t, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
		servertest.WantCode(t, "a token after the rotation", code, codes.OK)
		if kid := keyIDOf(t, fresh.GetAccessToken()); kid != after["ES256 active"] {
			t.Fatalf("a new token is signed with %q, want the new active key %q", kid, after["ES256 active"])
		}

		servertest.WantCode(t, "DeleteProvider", tr.Invoke(t, adminv1.AdminService_DeleteProvider_FullMethodName, admin.GetAccessToken(),
			&adminv1.DeleteProviderRequest{Id: "provider-1"}, &adminv1.DeleteProviderResponse{}), codes.OK)
		servertest.WantCode(t, "GetProvider after delete", tr.Invoke(t, adminv1.AdminService_GetProvider_FullMethodName, admin.GetAccessToken(),
			&adminv1.GetProviderRequest{Id: "provider-1"}, &adminv1.GetProviderResponse{}), codes.NotFound)
		servertest.WantCode(t, "GetProvider with a bad id", tr.Invoke(t, adminv1.AdminService_GetProvider_FullMethodName, admin.GetAccessToken(),
			&adminv1.GetProviderRequest{Id: "a b"}, &adminv1.GetProviderResponse{}), codes.InvalidArgument)
	})
}

// keyIDOf is the `kid` header of a JWT.
func keyIDOf(t *testing.T, token string) string {
	t.Helper()
	header, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(header)
	if err != nil {
		t.Fatal(err)
	}
	var fields struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	return fields.Kid
}

// An admin lists a subject's logins, ends one (and only a login of that
// subject), then all of them.
func TestAdminLogins(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		first, code := tr.Token(t, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
		servertest.WantCode(t, "first login", code, codes.OK)
		second, code := tr.Token(t, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
		servertest.WantCode(t, "second login", code, codes.OK)
		if first.GetRefreshToken() == "" || second.GetRefreshToken() == "" {
			t.Fatal("the password grant gave no refresh token")
		}
		list := func(subject string, size int32, token string) (*adminv1.ListLoginsResponse, codes.Code) {
			resp := &adminv1.ListLoginsResponse{}
			return resp, tr.Invoke(t, adminv1.AdminService_ListLogins_FullMethodName, c.Admin,
				&adminv1.ListLoginsRequest{Subject: subject, PageSize: size, PageToken: token}, resp)
		}
		all, code := list(servertest.UserName, 0, "")
		servertest.WantCode(t, "ListLogins", code, codes.OK)
		if len(all.GetLogins()) != 3 { // newAdminCallers signed alice in once
			t.Fatalf("ListLogins = %v, want alice's 3 logins", all)
		}
		for _, login := range all.GetLogins() {
			if login.GetSubject() != servertest.UserName || login.GetLoginId() == "" || login.GetIdleExpireTime() == nil ||
				strings.Contains(fmt.Sprint(login), "chit_rt_") {
				t.Fatalf("login %v", login)
			}
		}
		page, code := list(servertest.UserName, 2, "")
		servertest.WantCode(t, "ListLogins page", code, codes.OK)
		if len(page.GetLogins()) != 2 || page.GetNextPageToken() == "" {
			t.Fatalf("a page of 2 = %v", page)
		}
		_, code = list(servertest.AdminName, 2, page.GetNextPageToken())
		servertest.WantCode(t, "alice's page token on root's list", code, codes.InvalidArgument)
		_, code = list("a b", 0, "")
		servertest.WantCode(t, "ListLogins of a malformed subject", code, codes.InvalidArgument)

		// Each access token names its login (the fid claim): end the second.
		secondID := payloadClaim(t, second.GetAccessToken(), "fid")
		if secondID == "" || secondID == payloadClaim(t, first.GetAccessToken(), "fid") {
			t.Fatalf("login ids %q and %q", secondID, payloadClaim(t, first.GetAccessToken(), "fid"))
		}
		servertest.WantCode(t, "RevokeLogin with another subject", tr.Invoke(t, adminv1.AdminService_RevokeLogin_FullMethodName, c.Admin,
			&adminv1.RevokeLoginRequest{Subject: servertest.AdminName, LoginId: secondID}, &adminv1.RevokeLoginResponse{}), codes.NotFound)
		if _, overGRPC := tr.(*servertest.GRPCTransport); overGRPC { // REST has no path without the id
			servertest.WantCode(t, "RevokeLogin without an id", tr.Invoke(t, adminv1.AdminService_RevokeLogin_FullMethodName, c.Admin,
				&adminv1.RevokeLoginRequest{Subject: servertest.UserName}, &adminv1.RevokeLoginResponse{}), codes.InvalidArgument)
		}
		servertest.WantCode(t, "RevokeLogin", tr.Invoke(t, adminv1.AdminService_RevokeLogin_FullMethodName, c.Admin,
			&adminv1.RevokeLoginRequest{Subject: servertest.UserName, LoginId: secondID}, &adminv1.RevokeLoginResponse{}), codes.OK)
		if _, code := tr.Refresh(t, second.GetRefreshToken()); code == codes.OK {
			t.Fatal("the revoked login still refreshes")
		}
		if _, code := tr.Check(t, second.GetAccessToken()); code != codes.Unauthenticated {
			t.Fatalf("the revoked login's access token: %v, want Unauthenticated at once", code)
		}
		first, code = tr.Refresh(t, first.GetRefreshToken())
		servertest.WantCode(t, "the other login still refreshes", code, codes.OK)
		if left, _ := list(servertest.UserName, 0, ""); len(left.GetLogins()) != 2 {
			t.Fatalf("after revoking one of 3 logins: %v", left)
		}

		e.Clock.Advance(time.Second)
		servertest.WantCode(t, "RevokeLogins", tr.Invoke(t, adminv1.AdminService_RevokeLogins_FullMethodName, c.Admin,
			&adminv1.RevokeLoginsRequest{Subject: servertest.UserName}, &adminv1.RevokeLoginsResponse{}), codes.OK)
		if _, code := tr.Refresh(t, first.GetRefreshToken()); code == codes.OK {
			t.Fatal("a login survived RevokeLogins")
		}
		if _, code := tr.Check(t, first.GetAccessToken()); code != codes.Unauthenticated {
			t.Fatalf("an access token after RevokeLogins: %v", code)
		}
		if left, _ := list(servertest.UserName, 0, ""); len(left.GetLogins()) != 0 {
			t.Fatalf("after RevokeLogins: %v", left)
		}
		if _, overGRPC := tr.(*servertest.GRPCTransport); overGRPC {
			servertest.WantCode(t, "RevokeLogins without a subject", tr.Invoke(t, adminv1.AdminService_RevokeLogins_FullMethodName, c.Admin,
				&adminv1.RevokeLoginsRequest{}, &adminv1.RevokeLoginsResponse{}), codes.InvalidArgument)
		}
	})
}

// payloadClaim is a string claim of a JWT's payload.
func payloadClaim(t *testing.T, token, name string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	value, _ := claims[name].(string)
	return value
}

// Admin calls count in the RPC metrics like any other, refused ones under
// their code.
func TestAdminCallsAreCounted(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	c := servertest.NewAdminCallers(t, e, servertest.Transports(e)["gRPC"])
	for name, tr := range servertest.Transports(e) {
		servertest.WantCode(t, "ListUsers over "+name, tr.Invoke(t, adminv1.AdminService_ListUsers_FullMethodName, c.Admin,
			&adminv1.ListUsersRequest{}, &adminv1.ListUsersResponse{}), codes.OK)
		servertest.WantCode(t, "ListUsers by a USER over "+name, tr.Invoke(t, adminv1.AdminService_ListUsers_FullMethodName, c.User,
			&adminv1.ListUsersRequest{}, &adminv1.ListUsersResponse{}), codes.PermissionDenied)
	}
	_, body := servertest.Get(t, e.HTTPBase()+"/metrics")
	for _, want := range []string{
		`chit_rpc_requests_total{code="OK",method="/chit.admin.v1.AdminService/ListUsers",transport="grpc"} 1`,
		`chit_rpc_requests_total{code="OK",method="/chit.admin.v1.AdminService/ListUsers",transport="rest"} 1`,
		`chit_rpc_requests_total{code="PermissionDenied",method="/chit.admin.v1.AdminService/ListUsers",transport="grpc"} 1`,
		`chit_rpc_requests_total{code="PermissionDenied",method="/chit.admin.v1.AdminService/ListUsers",transport="rest"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// Access tokens issued for a sign-in carry auth_time (RFC 9068), those
// issued by a refresh do not: the difference the recent-sign-in rule for
// API keys reads.
func TestAuthTimeMarksSignIns(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		signedIn, code := tr.Token(t, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
		servertest.WantCode(t, "password sign-in", code, codes.OK)
		if at := payloadNumber(t, signedIn.GetAccessToken(), "auth_time"); at != float64(e.Clock.Now().Unix()) {
			t.Fatalf("auth_time of a sign-in = %v, want %d", at, e.Clock.Now().Unix())
		}
		service, code := tr.Token(t, servertest.ClientRequest(servertest.ServiceName, e.ServiceSecret))
		servertest.WantCode(t, "client credentials", code, codes.OK)
		if payloadNumber(t, service.GetAccessToken(), "auth_time") == 0 {
			t.Fatal("a client-credentials token has no auth_time")
		}
		e.Clock.Advance(time.Minute)
		refreshed, code := tr.Refresh(t, signedIn.GetRefreshToken())
		servertest.WantCode(t, "refresh", code, codes.OK)
		if at := payloadNumber(t, refreshed.GetAccessToken(), "auth_time"); at != 0 {
			t.Fatalf("a refreshed token carries auth_time %v", at)
		}
	})
}

// payloadNumber is a numeric claim of a JWT's payload, 0 when absent.
func payloadNumber(t *testing.T, token, name string) float64 {
	t.Helper()
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	value, _ := claims[name].(float64)
	return value
}

// Logins and API keys belong to people and service accounts: a client's
// principal key, or a provider's subject, is refused as their subject.
// Ending "the sessions of client:chit-api" refused every token issued
// through Chit's own API client, the caller's included (an attack run).
func TestLoginSubjectsArePeopleAndServices(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		for _, subject := range []string{accounts.ClientSubject(accounts.APIClientID), "#P_provider-1"} {
			servertest.WantCode(t, "RevokeLogins of "+subject, tr.Invoke(t, adminv1.AdminService_RevokeLogins_FullMethodName, c.Admin,
				&adminv1.RevokeLoginsRequest{Subject: subject}, &adminv1.RevokeLoginsResponse{}), codes.InvalidArgument)
			servertest.WantCode(t, "ListLogins of "+subject, tr.Invoke(t, adminv1.AdminService_ListLogins_FullMethodName, c.Admin,
				&adminv1.ListLoginsRequest{Subject: subject}, &adminv1.ListLoginsResponse{}), codes.InvalidArgument)
			servertest.WantCode(t, "Revoke of "+subject+"'s sessions", tr.Invoke(t, authv1.AuthService_Revoke_FullMethodName, c.Admin,
				&authv1.RevokeRequest{Subject: subject}, &authv1.RevokeResponse{}), codes.InvalidArgument)
		}
		e.Clock.Advance(revocationSeen)
		if _, code := tr.Check(t, c.Admin); code != codes.OK {
			t.Fatalf("the admin's own token after the refused calls: %v", code)
		}
	})
}
