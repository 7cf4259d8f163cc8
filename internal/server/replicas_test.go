package server_test

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

// Admin power taken away on one replica ends on the others as soon as the
// change commits, not when their revocation caches expire: the regression
// of a demoted admin's token, on another replica, creating a new ADMIN and
// promoting its owner back within the cache's 3 seconds, and of a deleted
// admin re-creating herself. The other replica has just seen each token
// unrevoked (so its cache would vouch for it), and the test clock stands
// still, so without reading the store it would vouch for it forever.
func TestAdminPowerEndsOnEveryReplica(t *testing.T) {
	onTwoReplicas(t, func(t *testing.T, primary *servertest.Env, name string, onPrimary, onReplica servertest.Transport) {
		root := servertest.NewAdminCallers(t, primary, onPrimary).Admin

		createAdmin := func(user string) string {
			t.Helper()
			if err := primary.Directory().CreateUser(t.Context(), user, user+"'s long password", accounts.RoleAdmin, storage.Grants{}); err != nil {
				t.Fatal(err)
			}
			resp, code := onPrimary.Token(t, servertest.PasswordRequest(user, user+"'s long password"))
			servertest.WantCode(t, user+"'s token", code, codes.OK)
			servertest.WantCode(t, "ListUsers by "+user+" on the other replica", onReplica.Invoke(t, adminv1.AdminService_ListUsers_FullMethodName,
				resp.GetAccessToken(), &adminv1.ListUsersRequest{}, &adminv1.ListUsersResponse{}), codes.OK)
			primary.Clock.Advance(time.Second)
			return resp.GetAccessToken()
		}
		// attempts are what a caller that lost its power tries at once on
		// the other replica; each must be refused as revoked.
		attempts := func(who, token string) {
			t.Helper()
			servertest.WantCode(t, "CreateUser by "+who, onReplica.Invoke(t, adminv1.AdminService_CreateUser_FullMethodName, token,
				&adminv1.CreateUserRequest{Name: "backdoor", Password: "a long password", Role: "ADMIN"}, &adminv1.CreateUserResponse{}),
				codes.Unauthenticated)
			servertest.WantCode(t, "CreateUser of itself by "+who, onReplica.Invoke(t, adminv1.AdminService_CreateUser_FullMethodName, token,
				&adminv1.CreateUserRequest{Name: who, Password: "a long password", Role: "ADMIN"}, &adminv1.CreateUserResponse{}),
				codes.Unauthenticated)
			servertest.WantCode(t, "SetUserRole of itself by "+who, onReplica.Invoke(t, adminv1.AdminService_SetUserRole_FullMethodName, token,
				&adminv1.SetUserRoleRequest{Name: who, Role: "ADMIN"}, &adminv1.SetUserRoleResponse{}), codes.Unauthenticated)
			servertest.WantCode(t, "CreateServiceAccount by "+who, onReplica.Invoke(t, adminv1.AdminService_CreateServiceAccount_FullMethodName, token,
				&adminv1.CreateServiceAccountRequest{ClientId: "backdoor"}, &adminv1.CreateServiceAccountResponse{}), codes.Unauthenticated)
			servertest.WantCode(t, "CreateApiKey by "+who, onReplica.Invoke(t, authv1.AuthService_CreateApiKey_FullMethodName, token,
				&authv1.CreateApiKeyRequest{Name: "backdoor"}, &authv1.CreateApiKeyResponse{}), codes.Unauthenticated)
			servertest.WantCode(t, "Revoke of root's sessions by "+who, onReplica.Invoke(t, authv1.AuthService_Revoke_FullMethodName, token,
				&authv1.RevokeRequest{Subject: servertest.AdminName}, &authv1.RevokeResponse{}), codes.Unauthenticated)
		}

		dave := createAdmin("dave")
		servertest.WantCode(t, "demote dave", onPrimary.Invoke(t, adminv1.AdminService_SetUserRole_FullMethodName, root,
			&adminv1.SetUserRoleRequest{Name: "dave", Role: "USER"}, &adminv1.SetUserRoleResponse{}), codes.OK)
		attempts("dave", dave)
		if user, err := primary.Directory().GetUser(t.Context(), "dave"); err != nil || user.Role != string(accounts.RoleUser) {
			t.Fatalf("dave after the attempts: %+v, %v; want a USER", user, err)
		}

		erin := createAdmin("erin")
		servertest.WantCode(t, "delete erin", onPrimary.Invoke(t, adminv1.AdminService_DeleteUser_FullMethodName, root,
			&adminv1.DeleteUserRequest{Name: "erin"}, &adminv1.DeleteUserResponse{}), codes.OK)
		attempts("erin", erin)
		if _, err := primary.Directory().GetUser(t.Context(), "erin"); !isNotFound(err) {
			t.Fatalf("erin after the attempts: %v; want not found", err)
		}

		for _, made := range []string{"backdoor"} {
			if _, err := primary.Directory().GetUser(t.Context(), made); !isNotFound(err) {
				t.Errorf("user %s was created: %v", made, err)
			}
			if _, err := primary.Store.GetServiceAccount(t.Context(), made); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("service account %s was created: %v", made, err)
			}
		}
		if keys, err := primary.Store.ListAPIKeys(t.Context(), "dave", storage.Page{Limit: 10}); err != nil || len(keys) != 0 {
			t.Errorf("dave's API keys: %v, %v; want none", keys, err)
		}
		// root kept its sessions: the Revoke attempts were refused.
		servertest.WantCode(t, "ListUsers by root", onReplica.Invoke(t, adminv1.AdminService_ListUsers_FullMethodName, root,
			&adminv1.ListUsersRequest{}, &adminv1.ListUsersResponse{}), codes.OK)
	})
}

// A deleted service account's token stops registering providers, and a
// deleted orchestrator's stops minting providers' tokens, on every replica
// at once: these calls read the caller from the store.
func TestDeletedServiceStopsChangingProvidersOnEveryReplica(t *testing.T) {
	onTwoReplicas(t, func(t *testing.T, primary *servertest.Env, name string, onPrimary, onReplica servertest.Transport) {
		service, code := onPrimary.Token(t, servertest.ClientRequest(servertest.ServiceName, primary.ServiceSecret))
		servertest.WantCode(t, "service token", code, codes.OK)
		register := func(provider string) codes.Code {
			return onReplica.Invoke(t, authv1.AuthProviders_Register_FullMethodName, service.GetAccessToken(),
				&authv1.AuthProvidersRegisterRequest{Items: []*authv1.AuthProvidersRegisterRequestItem{{Id: provider}}},
				&authv1.AuthProvidersRegisterResponse{})
		}
		servertest.WantCode(t, "Register before the deletion", register("before"), codes.OK)
		primary.Clock.Advance(time.Second)
		if err := primary.Directory().DeleteServiceAccount(t.Context(), servertest.ServiceName); err != nil {
			t.Fatal(err)
		}
		servertest.WantCode(t, "Register by the deleted service on the other replica", register("after"), codes.Unauthenticated)

		// The same for an orchestrator, which mints providers' tokens.
		orchestrator, code := onPrimary.Token(t, servertest.ClientRequest(servertest.OrchestratorName, primary.OrchestratorSecret))
		servertest.WantCode(t, "orchestrator token", code, codes.OK)
		refreshAsOrchestrator := func() codes.Code {
			return onReplica.Invoke(t, authv1.AuthProviders_RefreshAsOrchestrator_FullMethodName, orchestrator.GetAccessToken(),
				&authv1.AuthProvidersRefreshAsOrchestratorRequest{Items: []*authv1.AuthProvidersRefreshAsProviderRequestItem{{ProviderId: "before"}}},
				&authv1.AuthProvidersRefreshAsOrchestratorResponse{})
		}
		if code := refreshAsOrchestrator(); code == codes.Unauthenticated || code == codes.PermissionDenied {
			t.Fatalf("RefreshAsOrchestrator before the deletion: %v", code)
		}
		primary.Clock.Advance(time.Second)
		if err := primary.Directory().DeleteServiceAccount(t.Context(), servertest.OrchestratorName); err != nil {
			t.Fatal(err)
		}
		servertest.WantCode(t, "RefreshAsOrchestrator by the deleted orchestrator on the other replica", refreshAsOrchestrator(), codes.Unauthenticated)
	})
}

// isNotFound tells the directory's "does not exist" apart from other errors.
func isNotFound(err error) bool {
	return chiterr.KindOf(err) == chiterr.NotFound || errors.Is(err, storage.ErrNotFound)
}

// The caller's record decides on its own, even where no revocation was
// recorded (a change written to the store by another tool): an ADMIN token
// whose subject the store now holds as a USER, or no longer holds, or holds
// as created after the token, gets no Admin API call, while the same token
// still passes CheckToken until the revocation cache would have expired.
func TestAdminCallsReadTheCallersRecord(t *testing.T) {
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		listUsers := func() codes.Code {
			return tr.Invoke(t, adminv1.AdminService_ListUsers_FullMethodName, c.Admin, &adminv1.ListUsersRequest{}, &adminv1.ListUsersResponse{})
		}
		servertest.WantCode(t, "ListUsers", listUsers(), codes.OK)
		setRole := func(role accounts.Role) {
			t.Helper()
			err := e.Store.UpdateUser(t.Context(), servertest.AdminName, func(user *storage.User) (*storage.SubjectRevocation, error) {
				user.Role = string(role)
				return nil, nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		setRole(accounts.RoleUser)
		servertest.WantCode(t, "ListUsers by an ADMIN token of a USER", listUsers(), codes.Unauthenticated)
		if _, code := tr.Check(t, c.Admin); code != codes.OK {
			t.Fatalf("CheckToken of the same token: %v, want OK (no revocation was recorded)", code)
		}
		setRole(accounts.RoleAdmin)
		servertest.WantCode(t, "ListUsers once an ADMIN again", listUsers(), codes.OK)

		// Deleted and created again (rows written as another tool would,
		// with no revocation) a second later: the token is older than its
		// subject.
		user, err := e.Store.GetUser(t.Context(), servertest.AdminName)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Store.DeleteUser(t.Context(), servertest.AdminName, storage.SubjectRevocation{Subject: "someone-else", At: e.Clock.Now()}); err != nil {
			t.Fatal(err)
		}
		servertest.WantCode(t, "ListUsers by a deleted admin", listUsers(), codes.Unauthenticated)
		e.Clock.Advance(time.Second)
		user.CreatedAt = e.Clock.Now()
		if err := e.Store.CreateUser(t.Context(), user); err != nil {
			t.Fatal(err)
		}
		servertest.WantCode(t, "ListUsers by an admin's token older than the admin", listUsers(), codes.Unauthenticated)
	})
}

// onTwoReplicas runs test over each transport on two servers on one fresh
// PostgreSQL schema: primary, and a replica of it.
func onTwoReplicas(t *testing.T, test func(t *testing.T, primary *servertest.Env, transportName string, onPrimary, onReplica servertest.Transport)) {
	for _, name := range servertest.TransportNames {
		t.Run(name, func(t *testing.T) {
			primary := servertest.StartOn(t, servertest.Postgres)
			replica := primary.StartReplica(t)
			test(t, primary, name, servertest.Transports(primary)[name], servertest.Transports(replica)[name])
		})
	}
}
