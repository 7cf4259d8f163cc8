package grpcapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

// The server decides what a token grants: a caller asking for a scope or an
// audience outside its grants is refused, on both transports; asking for
// nothing gets the defaults.
func TestScopesAndAudiencesAreGrantedByTheServer(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		refused := []struct {
			name string
			req  *authv1.TokenRequest
		}{
			{"a person asks for a scope not granted", servertest.WithScope(servertest.PasswordRequest("alice", "wonderland"), "read payments:admin")},
			{"a service asks for a scope not granted", servertest.WithScope(servertest.ClientRequest("billing", e.ServiceSecret), "payments:admin inventory:write")},
			{"a service asks for an audience not granted", servertest.WithAudience(servertest.ClientRequest("billing", e.ServiceSecret), "payments")},
			{"a person asks for an audience (people are not granted any)", servertest.WithAudience(servertest.PasswordRequest("alice", "wonderland"), "inventory")},
			{"a service with no grants asks for a scope", servertest.WithScope(servertest.ClientRequest(servertest.OrchestratorName, e.OrchestratorSecret), "read")},
		}
		for _, tc := range refused {
			_, code := tr.Token(t, tc.req)
			servertest.WantCode(t, tc.name, code, codes.InvalidArgument)
		}

		granted := []struct {
			name        string
			req         *authv1.TokenRequest
			scopes      string
			subject     string
			hasAudience string
		}{
			{"a person asking for nothing gets the defaults", servertest.PasswordRequest("alice", "wonderland"), "read", "alice", "chit"},
			{"a person asking within the grants gets that", servertest.WithScope(servertest.PasswordRequest("alice", "wonderland"), "write openid"), "write openid", "alice", "chit"},
			{"a service asking for nothing gets the defaults", servertest.ClientRequest("billing", e.ServiceSecret), "inventory:read", "service:billing", "chit"},
			{"a service asking within the grants gets that", servertest.WithScope(servertest.ClientRequest("billing", e.ServiceSecret), "inventory:write"), "inventory:write", "service:billing", "chit"},
		}
		for _, tc := range granted {
			resp, code := tr.Token(t, tc.req)
			servertest.WantCode(t, tc.name, code, codes.OK)
			if resp.GetScope() != tc.scopes {
				t.Fatalf("%s: scope %q, want %q", tc.name, resp.GetScope(), tc.scopes)
			}
			claims, code := tr.Check(t, resp.GetAccessToken())
			servertest.WantCode(t, tc.name+": CheckToken", code, codes.OK)
			if strings.Join(claims.GetScopes(), " ") != tc.scopes || claims.GetSubject() != tc.subject || !slices.Equal(claims.GetAudience(), []string{tc.hasAudience}) {
				t.Fatalf("%s: claims %v", tc.name, claims)
			}
		}

		// A token minted for another audience carries that audience only: it
		// authorizes nothing at Chit and CheckToken does not vouch for it.
		resp, code := tr.Token(t, servertest.WithAudience(servertest.ClientRequest("billing", e.ServiceSecret), servertest.ServiceAudience))
		servertest.WantCode(t, "a service asking for its allowed audience", code, codes.OK)
		_, code = tr.Check(t, resp.GetAccessToken())
		servertest.WantCode(t, "CheckToken of a token for another audience", code, codes.Unauthenticated)
		code = tr.Invoke(t, authv1.AuthProviders_GenerateKeyPair_FullMethodName, resp.GetAccessToken(), &authv1.AuthProvidersGenerateKeyPairRequest{}, &authv1.AuthProvidersGenerateKeyPairResponse{})
		servertest.WantCode(t, "a restricted RPC with a token for another audience", code, codes.Unauthenticated)
	})
}

// A refresh can only narrow: a wider scope is refused, a narrower one is
// granted to the access token while the login keeps its scopes.
func TestRefreshCanOnlyNarrow(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		login, code := tr.Token(t, servertest.WithScope(servertest.PasswordRequest("alice", "wonderland"), "read write"))
		servertest.WantCode(t, "Token", code, codes.OK)
		req := &authv1.RefreshTokenRequest{RefreshToken: login.GetRefreshToken(), Scope: "read write openid"}
		code = tr.Invoke(t, authv1.AuthService_RefreshToken_FullMethodName, "", req, &authv1.TokenResponse{})
		servertest.WantCode(t, "a refresh asking for more", code, codes.InvalidArgument)
		narrowed := &authv1.TokenResponse{}
		req.Scope = "write"
		code = tr.Invoke(t, authv1.AuthService_RefreshToken_FullMethodName, "", req, narrowed)
		servertest.WantCode(t, "a refresh asking for less", code, codes.OK)
		if narrowed.GetScope() != "write" {
			t.Fatalf("narrowed refresh scope %q, want write", narrowed.GetScope())
		}
		again := &authv1.TokenResponse{}
		code = tr.Invoke(t, authv1.AuthService_RefreshToken_FullMethodName, "", &authv1.RefreshTokenRequest{RefreshToken: narrowed.GetRefreshToken()}, again)
		servertest.WantCode(t, "a refresh after a narrowed one", code, codes.OK)
		if again.GetScope() != "read write" {
			t.Fatalf("the login's scope after a narrowed refresh is %q, want read write (RFC 6749 §6)", again.GetScope())
		}
	})
}

// A refresh token refreshes only through the client it was issued to:
// Token's refresh token is the API client's, and RefreshCli acts as the CLI.
func TestRefreshTokenIsBoundToItsClient(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		login, code := tr.Token(t, servertest.PasswordRequest("alice", "wonderland"))
		servertest.WantCode(t, "Token", code, codes.OK)
		code = tr.Invoke(t, authv1.AuthService_RefreshCli_FullMethodName, "", &authv1.RefreshCliRequest{RefreshToken: login.GetRefreshToken()}, &authv1.RefreshCliResponse{})
		servertest.WantCode(t, "RefreshCli with the API client's refresh token", code, codes.Unauthenticated)
		// The refusal revokes nothing: the rightful client still refreshes.
		_, code = tr.Refresh(t, login.GetRefreshToken())
		servertest.WantCode(t, "RefreshToken by the client it was issued to", code, codes.OK)
	})
}

// Deleting a user, changing a role or removing a scope ends access: the
// access tokens issued before are refused within the revocation propagation
// time, and refreshes follow what the principal is now.
func TestChangesEndAccess(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		ctx := context.Background()
		directory := e.Directory()
		name := "carol-" + strings.ToLower(t.Name()[strings.LastIndex(t.Name(), "/")+1:])
		// The directory has no hasher: the test store's user is written directly.
		if err := e.Store.CreateUser(ctx, storage.User{Name: name, PasswordHash: userHash(t, e), Role: "USER",
			Grants: storage.Grants{AllowedScopes: []string{"read", "write"}}, CreatedAt: e.Clock.Now()}); err != nil {
			t.Fatal(err)
		}
		issue := func(scope string) *authv1.TokenResponse {
			t.Helper()
			resp, code := tr.Token(t, servertest.WithScope(servertest.PasswordRequest(name, servertest.UserPassword), scope))
			servertest.WantCode(t, "Token", code, codes.OK)
			return resp
		}
		afterPropagation := func() { e.Clock.Advance(3 * time.Second) }

		// Removing a scope refuses older access tokens; a refresh narrows.
		before := issue("read write")
		e.Clock.Advance(time.Millisecond)
		if err := directory.SetUserGrants(ctx, name, storage.Grants{AllowedScopes: []string{"read"}}); err != nil {
			t.Fatal(err)
		}
		afterPropagation()
		_, code := tr.Check(t, before.GetAccessToken())
		servertest.WantCode(t, "CheckToken after a scope was removed", code, codes.Unauthenticated)
		refreshed, code := tr.Refresh(t, before.GetRefreshToken())
		servertest.WantCode(t, "refresh after a scope was removed", code, codes.OK)
		if refreshed.GetScope() != "read" {
			t.Fatalf("a refresh after narrowing grants %q, want read", refreshed.GetScope())
		}
		if _, code := tr.Check(t, refreshed.GetAccessToken()); code != codes.OK {
			t.Fatalf("the token issued after the change: %v", code)
		}

		// A new role refuses older access tokens; the refresh carries the new role.
		e.Clock.Advance(time.Millisecond)
		if err := directory.SetUserRole(ctx, name, accounts.RoleAdmin); err != nil {
			t.Fatal(err)
		}
		afterPropagation()
		_, code = tr.Check(t, refreshed.GetAccessToken())
		servertest.WantCode(t, "CheckToken after a role change", code, codes.Unauthenticated)
		promoted, code := tr.Refresh(t, refreshed.GetRefreshToken())
		servertest.WantCode(t, "refresh after a role change", code, codes.OK)
		if claims, _ := tr.Check(t, promoted.GetAccessToken()); claims.GetRole() != "ADMIN" {
			t.Fatalf("the refresh after a role change carries role %q", claims.GetRole())
		}

		// Deleting the user refuses everything (a name taken again inherits
		// nothing: TestCodesFollowTheirUser, and the races in pkg/tokens).
		e.Clock.Advance(time.Millisecond)
		if err := directory.DeleteUser(ctx, name); err != nil {
			t.Fatal(err)
		}
		afterPropagation()
		_, code = tr.Check(t, promoted.GetAccessToken())
		servertest.WantCode(t, "CheckToken after the user was deleted", code, codes.Unauthenticated)
		_, code = tr.Refresh(t, promoted.GetRefreshToken())
		servertest.WantCode(t, "refresh after the user was deleted", code, codes.Unauthenticated)
	})
}

// A provider belongs to the service that registered it: another service may
// not renew it (and take over its key); an admin may.
func TestProviderRenewByAnotherServiceIsRefused(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		id := "hpc-" + strings.ToLower(t.Name()[strings.LastIndex(t.Name(), "/")+1:])
		owner, code := tr.Token(t, servertest.ClientRequest("billing", e.ServiceSecret))
		servertest.WantCode(t, "owner token", code, codes.OK)
		other, code := tr.Token(t, servertest.ClientRequest(servertest.OrchestratorName, e.OrchestratorSecret))
		servertest.WantCode(t, "other service token", code, codes.OK)
		register := &authv1.AuthProvidersRegisterRequest{Items: []*authv1.AuthProvidersRegisterRequestItem{{Id: id}}}
		registered := &authv1.AuthProvidersRegisterResponse{}
		servertest.WantCode(t, "register", tr.Invoke(t, authv1.AuthProviders_Register_FullMethodName, owner.GetAccessToken(), register, registered), codes.OK)
		claimed := &authv1.AuthProvidersClaimResponse{}
		servertest.WantCode(t, "claim", tr.Invoke(t, authv1.AuthProviders_Claim_FullMethodName, owner.GetAccessToken(),
			&authv1.AuthProvidersClaimRequest{Items: []*authv1.AuthProvidersRegisterResponseItem{{ClaimToken: registered.GetResponses()[0].GetClaimToken()}}}, claimed), codes.OK)
		providerToken := &authv1.AuthProvidersRefreshResponse{}
		servertest.WantCode(t, "provider refresh", tr.Invoke(t, authv1.AuthProviders_Refresh_FullMethodName, "",
			&authv1.AuthProvidersRefreshRequest{Items: []*authv1.RefreshToken{{RefreshToken: claimed.GetResponses()[0].GetRefreshToken()}}}, providerToken), codes.OK)
		orchestrated := &authv1.AuthProvidersRefreshAsOrchestratorResponse{}
		servertest.WantCode(t, "refreshAsOrchestrator", tr.Invoke(t, authv1.AuthProviders_RefreshAsOrchestrator_FullMethodName, other.GetAccessToken(),
			&authv1.AuthProvidersRefreshAsOrchestratorRequest{Items: []*authv1.AuthProvidersRefreshAsProviderRequestItem{{ProviderId: id}}}, orchestrated), codes.OK)
		signedWithOldKey := []string{providerToken.GetResponses()[0].GetAccessToken(), orchestrated.GetResponses()[0].GetAccessToken()}
		for _, token := range signedWithOldKey {
			_, code := tr.Check(t, token) // cached from here on
			servertest.WantCode(t, "CheckToken of a provider-signed token before renew", code, codes.OK)
		}

		renew := &authv1.AuthProvidersRenewRequest{Items: []*authv1.FindByStringId{{Id: id}}}
		servertest.WantCode(t, "renew by another service", tr.Invoke(t, authv1.AuthProviders_Renew_FullMethodName, other.GetAccessToken(), renew, &authv1.AuthProvidersRenewResponse{}), codes.PermissionDenied)
		servertest.WantCode(t, "renew by its registrant", tr.Invoke(t, authv1.AuthProviders_Renew_FullMethodName, owner.GetAccessToken(), renew, &authv1.AuthProvidersRenewResponse{}), codes.OK)
		// Every token signed with the replaced key is refused, the
		// orchestrator's included: at once on the replica that renewed (other
		// replicas within the propagation time, TestChangesEndAccessOnEveryReplica).
		for _, token := range signedWithOldKey {
			_, code := tr.Check(t, token)
			servertest.WantCode(t, "CheckToken of a token signed with the replaced key", code, codes.Unauthenticated)
		}
	})
}

// userHash returns the stored password hash of the test user, whose
// password every test user shares.
func userHash(t *testing.T, e *servertest.Env) string {
	t.Helper()
	user, err := e.Store.GetUser(context.Background(), servertest.UserName)
	if err != nil {
		t.Fatal(err)
	}
	return user.PasswordHash
}

// The sign-in page follows the same rule: a scope the client does not allow
// is refused before anyone signs in (GetAuthorizeUrl on both transports, and
// the page itself); a scope the person is not granted is answered to the
// client as invalid_scope (RFC 6749 §4.1.2.1), with no code.
func TestSignInPageGrantsOnlyAllowedScopes(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		verifier := servertest.NewVerifier(t)
		_, code := servertest.GetAuthorizeURL(t, tr, servertest.AuthorizeRequest(verifier, "openid payments:admin"))
		servertest.WantCode(t, "GetAuthorizeUrl with a scope the person is not granted (known only after sign-in)", code, codes.OK)
		authorizeURL, _ := servertest.GetAuthorizeURL(t, tr, servertest.AuthorizeRequest(verifier, "openid payments:admin"))
		resp, query := servertest.SignIn(t, e, authorizeURL, servertest.UserPassword, "sign-in")
		if resp.StatusCode != http.StatusSeeOther || query.Get("error") != "invalid_scope" || query.Get("code") != "" || query.Get("state") != "state-123" {
			t.Fatalf("sign-in asking for a scope not granted: %d %v", resp.StatusCode, query)
		}

		clientID := "spa-" + strings.ToLower(t.Name()[strings.LastIndex(t.Name(), "/")+1:])
		e.CreateClient(t, clientID, []string{"https://spa.example/cb"}, false, storage.Grants{AllowedScopes: []string{"openid", "read"}})
		req := servertest.AuthorizeRequest(verifier, "openid write")
		req.ClientId, req.RedirectUri = clientID, "https://spa.example/cb"
		_, code = servertest.GetAuthorizeURL(t, tr, req)
		servertest.WantCode(t, "GetAuthorizeUrl with a scope the client does not allow", code, codes.InvalidArgument)
		// On the page, the client hears it by redirect: its redirect URI is
		// registered, and only the scope is wrong.
		resp, err := servertest.NoRedirects(t, e).Client.Get(e.HTTPBase() + "/oauth2/authorize?" + url.Values{"response_type": {"code"}, "client_id": {clientID},
			"redirect_uri": {"https://spa.example/cb"}, "state": {"s"}, "scope": {"openid write"},
			"code_challenge": {authorize.ChallengeFor(verifier)}, "code_challenge_method": {"S256"}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		location, _ := resp.Location()
		if resp.StatusCode != http.StatusSeeOther || location == nil || !strings.HasPrefix(location.String(), "https://spa.example/cb?") ||
			location.Query().Get("error") != "invalid_scope" || location.Query().Get("state") != "s" || location.Query().Get("code") != "" {
			t.Fatalf("the page with a scope the client does not allow: %d, %v", resp.StatusCode, location)
		}
		// With a redirect URI that is not registered, nothing is redirected.
		page := e.NewBrowser(t).Open(t, e.HTTPBase()+"/oauth2/authorize?"+url.Values{"response_type": {"code"}, "client_id": {clientID},
			"redirect_uri": {"https://evil.example/cb"}, "state": {"s"}, "scope": {"openid write"},
			"code_challenge": {authorize.ChallengeFor(verifier)}, "code_challenge_method": {"S256"}}.Encode())
		if page.Status != http.StatusBadRequest {
			t.Fatalf("the page with an unregistered redirect URI: %d, want 400 on the page", page.Status)
		}
	})
}

// A code is bound to its client, redirect URI and PKCE verifier: a caller
// lacking them is refused without using the code up, so the rightful
// client still redeems it.
func TestCodeIsNotUsedUpByAWrongVerifier(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		verifier := servertest.NewVerifier(t)
		code := servertest.CodeFor(t, e, tr, verifier, "openid offline_access")
		_, c := servertest.LoginCli(t, tr, code, servertest.Loopback, servertest.NewVerifier(t))
		servertest.WantCode(t, "LoginCli with another verifier", c, codes.Unauthenticated)
		_, c = servertest.LoginCli(t, tr, code, "http://127.0.0.1:1/other", verifier)
		servertest.WantCode(t, "LoginCli with another redirect URI", c, codes.Unauthenticated)
		token, c := servertest.LoginCli(t, tr, code, servertest.Loopback, verifier)
		servertest.WantCode(t, "LoginCli by the rightful client", c, codes.OK)
		if token.GetAccessToken() == "" {
			t.Fatal("no access token")
		}
	})
}

// A code issued before its user was deleted exchanges for nothing, also
// when someone has taken the name since; one issued before a role change
// exchanges with the new role.
func TestCodesFollowTheirUser(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		ctx := context.Background()
		name := "dora-" + strings.ToLower(t.Name()[strings.LastIndex(t.Name(), "/")+1:])
		createUser := func() {
			if err := e.Store.CreateUser(ctx, storage.User{Name: name, PasswordHash: userHash(t, e), Role: "USER", CreatedAt: e.Clock.Now()}); err != nil {
				t.Fatal(err)
			}
		}
		signInAs := func(verifier string) string {
			t.Helper()
			authorizeURL, c := servertest.GetAuthorizeURL(t, tr, servertest.AuthorizeRequest(verifier, "openid"))
			servertest.WantCode(t, "GetAuthorizeUrl", c, codes.OK)
			b := servertest.NoRedirects(t, e)
			page := b.Open(t, authorizeURL)
			resp := b.Submit(t, page, url.Values{"username": {name}, "password": {servertest.UserPassword}, "action": {"sign-in"}})
			resp.Body.Close()
			location, err := resp.Location()
			if err != nil || location.Query().Get("code") == "" {
				t.Fatalf("sign-in as %s: %d %v", name, resp.StatusCode, err)
			}
			return location.Query().Get("code")
		}
		createUser()
		verifier := servertest.NewVerifier(t)
		code := signInAs(verifier)
		e.Clock.Advance(time.Millisecond)
		if err := e.Directory().SetUserRole(ctx, name, accounts.RoleAdmin); err != nil {
			t.Fatal(err)
		}
		e.Clock.Advance(time.Millisecond)
		token, c := servertest.LoginCli(t, tr, code, servertest.Loopback, verifier)
		servertest.WantCode(t, "LoginCli after a role change", c, codes.OK)
		if claims, c := tr.Check(t, token.GetAccessToken()); c != codes.OK || claims.GetRole() != "ADMIN" {
			t.Fatalf("the code exchanged with role %q (%v), want the new ADMIN", claims.GetRole(), c)
		}

		code = signInAs(verifier)
		e.Clock.Advance(time.Millisecond)
		if err := e.Directory().DeleteUser(ctx, name); err != nil {
			t.Fatal(err)
		}
		e.Clock.Advance(time.Millisecond)
		createUser() // someone else takes the name
		_, c = servertest.LoginCli(t, tr, code, servertest.Loopback, verifier)
		servertest.WantCode(t, "LoginCli of a code issued before its user was deleted", c, codes.Unauthenticated)
	})
}

// An admin who signs in to a third-party client gives it a USER token: no
// registered application gains an admin's power over Chit. Through Chit's
// own clients the admin stays an admin.
func TestAdminThroughAThirdPartyClientIsAUser(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		ctx := context.Background()
		name := "root-" + strings.ToLower(t.Name()[strings.LastIndex(t.Name(), "/")+1:])
		if err := e.Store.CreateUser(ctx, storage.User{Name: name, PasswordHash: userHash(t, e), Role: "ADMIN", CreatedAt: e.Clock.Now()}); err != nil {
			t.Fatal(err)
		}
		clientID := "app-" + strings.ToLower(t.Name()[strings.LastIndex(t.Name(), "/")+1:])
		secret := e.CreateClient(t, clientID, []string{"https://app.example/cb"}, true, storage.Grants{AllowedScopes: []string{"openid"}})
		resp, err := http.Post(e.HTTPBase()+"/oauth2/token", "application/x-www-form-urlencoded", strings.NewReader(url.Values{
			"grant_type": {"password"}, "username": {name}, "password": {servertest.UserPassword},
			"client_id": {clientID}, "client_secret": {secret}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		var grant struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&grant)
		resp.Body.Close()
		claims, code := tr.Check(t, grant.AccessToken)
		servertest.WantCode(t, "CheckToken of the third-party client's token", code, codes.OK)
		if claims.GetRole() != "USER" {
			t.Fatalf("an admin's token through a third-party client has role %q, want USER", claims.GetRole())
		}
		servertest.WantCode(t, "revoking another subject with it", servertest.Revoke(t, tr, grant.AccessToken, &authv1.RevokeRequest{Subject: "alice"}), codes.PermissionDenied)
		servertest.WantCode(t, "an admin-only provider call with it", tr.Invoke(t, authv1.AuthProviders_GenerateKeyPair_FullMethodName, grant.AccessToken,
			&authv1.AuthProvidersGenerateKeyPairRequest{}, &authv1.AuthProvidersGenerateKeyPairResponse{}), codes.PermissionDenied)

		own, code := tr.Token(t, servertest.PasswordRequest(name, servertest.UserPassword))
		servertest.WantCode(t, "Token through Chit's own client", code, codes.OK)
		if claims, _ := tr.Check(t, own.GetAccessToken()); claims.GetRole() != "ADMIN" {
			t.Fatalf("an admin through Chit's own client has role %q", claims.GetRole())
		}
	})
}

// A service deleted and created again under the same name is another party:
// it cannot renew (take over the key of) the providers the first one
// registered.
func TestRecreatedServiceDoesNotInheritItsProviders(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		ctx := context.Background()
		suffix := strings.ToLower(t.Name()[strings.LastIndex(t.Name(), "/")+1:])
		name, id := "owner-"+suffix, "kept-"+suffix
		secret, err := e.Directory().CreateServiceAccount(ctx, name, storage.Grants{})
		if err != nil {
			t.Fatal(err)
		}
		first, code := tr.Token(t, servertest.ClientRequest(name, secret))
		servertest.WantCode(t, "service token", code, codes.OK)
		servertest.WantCode(t, "register", tr.Invoke(t, authv1.AuthProviders_Register_FullMethodName, first.GetAccessToken(),
			&authv1.AuthProvidersRegisterRequest{Items: []*authv1.AuthProvidersRegisterRequestItem{{Id: id}}}, &authv1.AuthProvidersRegisterResponse{}), codes.OK)
		e.Clock.Advance(time.Second)
		if err := e.Directory().DeleteServiceAccount(ctx, name); err != nil {
			t.Fatal(err)
		}
		e.Clock.Advance(time.Second)
		secret, err = e.Directory().CreateServiceAccount(ctx, name, storage.Grants{})
		if err != nil {
			t.Fatal(err)
		}
		e.Clock.Advance(time.Second)
		second, code := tr.Token(t, servertest.ClientRequest(name, secret))
		servertest.WantCode(t, "the new service's token", code, codes.OK)
		servertest.WantCode(t, "renew by a service of the same name created later", tr.Invoke(t, authv1.AuthProviders_Renew_FullMethodName, second.GetAccessToken(),
			&authv1.AuthProvidersRenewRequest{Items: []*authv1.FindByStringId{{Id: id}}}, &authv1.AuthProvidersRenewResponse{}), codes.PermissionDenied)
	})
}
