package grpcapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/secrets"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

func createAPIKey(t *testing.T, tr servertest.Transport, bearer string, req *authv1.CreateApiKeyRequest) (*authv1.CreateApiKeyResponse, codes.Code) {
	t.Helper()
	resp := &authv1.CreateApiKeyResponse{}
	return resp, tr.Invoke(t, authv1.AuthService_CreateApiKey_FullMethodName, bearer, req, resp)
}

func apiKeyRequest(key, scope string) *authv1.TokenRequest {
	return &authv1.TokenRequest{Scope: scope, Credential: &authv1.TokenRequest_ApiKeyCredential{ApiKeyCredential: &authv1.ApiKeyCredential{ApiKey: key}}}
}

// A person makes an API key after a fresh sign-in, exchanges it for access
// tokens with its scopes and id, lists and revokes it; the rules around it
// hold on both transports and stores.
func TestAPIKeyLifecycle(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		alice, code := tr.Token(t, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
		servertest.WantCode(t, "sign in", code, codes.OK)
		scope := servertest.UserGrants.AllowedScopes[0]
		created, code := createAPIKey(t, tr, alice.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "ci", Scopes: []string{scope}})
		servertest.WantCode(t, "CreateApiKey", code, codes.OK)
		key, described := created.GetKey(), created.GetApiKey()
		if !strings.HasPrefix(key, "chit_ak_") || described.GetName() != "ci" || described.GetSubject() != servertest.UserName ||
			!slices.Equal(described.GetScopes(), []string{scope}) ||
			!described.GetExpireTime().AsTime().Equal(described.GetCreateTime().AsTime().Add(90*24*time.Hour)) {
			t.Fatalf("CreateApiKey answered %v", created)
		}
		_, code = createAPIKey(t, tr, alice.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "ci"})
		servertest.WantCode(t, "a second key of the same name", code, codes.AlreadyExists)

		exchanged, code := tr.Token(t, apiKeyRequest(key, ""))
		servertest.WantCode(t, "exchange the key", code, codes.OK)
		if exchanged.GetRefreshToken() != "" || exchanged.GetScope() != scope {
			t.Fatalf("the key's token response %v", exchanged)
		}
		if id := payloadClaim(t, exchanged.GetAccessToken(), "api_key_id"); id != described.GetId() {
			t.Fatalf("api_key_id %q, want %q", id, described.GetId())
		}
		if checked, code := tr.Check(t, exchanged.GetAccessToken()); code != codes.OK || checked.GetRole() != "USER" || checked.GetSubject() != servertest.UserName {
			t.Fatalf("CheckToken of the key's token: %v, %v", checked, code)
		}
		_, code = tr.Token(t, apiKeyRequest(key, "payments:admin"))
		servertest.WantCode(t, "a scope beyond the key's", code, codes.InvalidArgument)
		for _, bad := range []string{key[:len(key)-1] + "A", "chit_ak_short", "", strings.Repeat("x", 67)} {
			if bad == key {
				continue
			}
			_, code = tr.Token(t, apiKeyRequest(bad, ""))
			servertest.WantCode(t, "a wrong key", code, codes.Unauthenticated)
		}

		// Keys are made only after a recent sign-in, never from a key's
		// token or a refreshed one.
		_, code = createAPIKey(t, tr, exchanged.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "from-a-key"})
		servertest.WantCode(t, "a key made with a key's token", code, codes.PermissionDenied)
		refreshed, code := tr.Refresh(t, alice.GetRefreshToken())
		servertest.WantCode(t, "refresh", code, codes.OK)
		_, code = createAPIKey(t, tr, refreshed.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "from-a-refresh"})
		servertest.WantCode(t, "a key made with a refreshed token", code, codes.PermissionDenied)
		e.Clock.Advance(11 * time.Minute)
		_, code = createAPIKey(t, tr, alice.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "too-late"})
		servertest.WantCode(t, "a key made 11 minutes after signing in", code, codes.PermissionDenied)

		// The lifetime is bounded; a key past it is refused.
		alice, code = tr.Token(t, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
		servertest.WantCode(t, "sign in again", code, codes.OK)
		_, code = createAPIKey(t, tr, alice.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "forever", Ttl: durationpb.New(366 * 24 * time.Hour)})
		servertest.WantCode(t, "a key for 366 days", code, codes.InvalidArgument)
		_, code = createAPIKey(t, tr, alice.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "bad name!"})
		servertest.WantCode(t, "a malformed name", code, codes.InvalidArgument)
		_, code = createAPIKey(t, tr, alice.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "wide", Scopes: []string{"payments:admin"}})
		servertest.WantCode(t, "a key wider than its owner", code, codes.InvalidArgument)
		short, code := createAPIKey(t, tr, alice.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "hour", Ttl: durationpb.New(time.Hour)})
		servertest.WantCode(t, "a key for an hour", code, codes.OK)

		listed := &authv1.ListApiKeysResponse{}
		servertest.WantCode(t, "ListApiKeys", tr.Invoke(t, authv1.AuthService_ListApiKeys_FullMethodName, alice.GetAccessToken(), &authv1.ListApiKeysRequest{}, listed), codes.OK)
		if len(listed.GetApiKeys()) != 2 || strings.Contains(listed.String(), "chit_ak_") {
			t.Fatalf("ListApiKeys = %v", listed)
		}
		e.Clock.Advance(time.Hour)
		_, code = tr.Token(t, apiKeyRequest(short.GetKey(), ""))
		servertest.WantCode(t, "an expired key", code, codes.Unauthenticated)

		// Revoked by its owner: it stops, and its token is refused at once.
		exchanged, code = tr.Token(t, apiKeyRequest(key, ""))
		servertest.WantCode(t, "exchange again", code, codes.OK)
		service, code := tr.Token(t, servertest.ClientRequest(servertest.ServiceName, e.ServiceSecret))
		servertest.WantCode(t, "service token", code, codes.OK)
		servertest.WantCode(t, "RevokeApiKey by another principal", tr.Invoke(t, authv1.AuthService_RevokeApiKey_FullMethodName, service.GetAccessToken(),
			&authv1.RevokeApiKeyRequest{Id: described.GetId()}, &authv1.RevokeApiKeyResponse{}), codes.NotFound)
		alice, code = tr.Token(t, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
		servertest.WantCode(t, "sign in once more", code, codes.OK)
		servertest.WantCode(t, "RevokeApiKey", tr.Invoke(t, authv1.AuthService_RevokeApiKey_FullMethodName, alice.GetAccessToken(),
			&authv1.RevokeApiKeyRequest{Id: described.GetId()}, &authv1.RevokeApiKeyResponse{}), codes.OK)
		if _, code := tr.Check(t, exchanged.GetAccessToken()); code != codes.Unauthenticated {
			t.Fatalf("a revoked key's token: %v", code)
		}
		_, code = tr.Token(t, apiKeyRequest(key, ""))
		servertest.WantCode(t, "a revoked key", code, codes.Unauthenticated)
	})
}

// A key follows its owner: narrower scopes narrow it and end its tokens, a
// deleted owner ends it; an admin's key acts as a USER; a service account
// makes keys with a fresh client-credentials token.
func TestAPIKeysFollowTheirOwner(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		scope := servertest.UserGrants.AllowedScopes[0]
		alice, code := tr.Token(t, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
		servertest.WantCode(t, "sign in", code, codes.OK)
		created, code := createAPIKey(t, tr, alice.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "ci", Scopes: []string{scope}})
		servertest.WantCode(t, "CreateApiKey", code, codes.OK)
		exchanged, code := tr.Token(t, apiKeyRequest(created.GetKey(), ""))
		servertest.WantCode(t, "exchange", code, codes.OK)

		e.Clock.Advance(time.Second)
		if err := e.Directory().SetUserGrants(t.Context(), servertest.UserName, storage.Grants{}); err != nil {
			t.Fatal(err)
		}
		e.Clock.Advance(revocationSeen)
		if _, code := tr.Check(t, exchanged.GetAccessToken()); code != codes.Unauthenticated {
			t.Fatalf("a key's token after its owner lost the scope: %v", code)
		}
		narrowed, code := tr.Token(t, apiKeyRequest(created.GetKey(), ""))
		servertest.WantCode(t, "exchange after the narrowing", code, codes.OK)
		if narrowed.GetScope() != "" {
			t.Fatalf("the key still gives %q after its owner lost it", narrowed.GetScope())
		}
		if err := e.Directory().DeleteUser(t.Context(), servertest.UserName); err != nil {
			t.Fatal(err)
		}
		_, code = tr.Token(t, apiKeyRequest(created.GetKey(), ""))
		servertest.WantCode(t, "the key of a deleted owner", code, codes.Unauthenticated)

		// An admin's key acts as a USER.
		root, code := tr.Token(t, servertest.PasswordRequest(servertest.AdminName, servertest.AdminPassword))
		servertest.WantCode(t, "root signs in", code, codes.OK)
		rootKey, code := createAPIKey(t, tr, root.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "root-ci"})
		servertest.WantCode(t, "an admin's key", code, codes.OK)
		rootToken, code := tr.Token(t, apiKeyRequest(rootKey.GetKey(), ""))
		servertest.WantCode(t, "exchange the admin's key", code, codes.OK)
		if checked, _ := tr.Check(t, rootToken.GetAccessToken()); checked.GetRole() != "USER" {
			t.Fatalf("an admin's key gave role %q", checked.GetRole())
		}
		servertest.WantCode(t, "the Admin API with an admin's key", tr.Invoke(t, adminv1.AdminService_ListUsers_FullMethodName, rootToken.GetAccessToken(),
			&adminv1.ListUsersRequest{}, &adminv1.ListUsersResponse{}), codes.PermissionDenied)

		// A service account's key; admins see and revoke anyone's keys.
		service, code := tr.Token(t, servertest.ClientRequest(servertest.ServiceName, e.ServiceSecret))
		servertest.WantCode(t, "service token", code, codes.OK)
		serviceKey, code := createAPIKey(t, tr, service.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "deploy"})
		servertest.WantCode(t, "a service's key", code, codes.OK)
		serviceToken, code := tr.Token(t, apiKeyRequest(serviceKey.GetKey(), ""))
		servertest.WantCode(t, "exchange the service's key", code, codes.OK)
		if checked, _ := tr.Check(t, serviceToken.GetAccessToken()); checked.GetRole() != "SERVICE" || checked.GetSubject() != accounts.ServiceSubject(servertest.ServiceName) {
			t.Fatalf("a service's key gave %v", checked)
		}
		listed := &adminv1.ListApiKeysResponse{}
		servertest.WantCode(t, "admin ListApiKeys", tr.Invoke(t, adminv1.AdminService_ListApiKeys_FullMethodName, c.Admin,
			&adminv1.ListApiKeysRequest{Subject: accounts.ServiceSubject(servertest.ServiceName)}, listed), codes.OK)
		if len(listed.GetApiKeys()) != 1 || listed.GetApiKeys()[0].GetName() != "deploy" {
			t.Fatalf("admin ListApiKeys = %v", listed)
		}
		servertest.WantCode(t, "admin RevokeApiKey", tr.Invoke(t, adminv1.AdminService_RevokeApiKey_FullMethodName, c.Admin,
			&adminv1.RevokeApiKeyRequest{Id: serviceKey.GetApiKey().GetId()}, &adminv1.RevokeApiKeyResponse{}), codes.OK)
		_, code = tr.Token(t, apiKeyRequest(serviceKey.GetKey(), ""))
		servertest.WantCode(t, "a key an admin revoked", code, codes.Unauthenticated)
		servertest.WantCode(t, "ListApiKeys without a token", tr.Invoke(t, authv1.AuthService_ListApiKeys_FullMethodName, "",
			&authv1.ListApiKeysRequest{}, &authv1.ListApiKeysResponse{}), codes.Unauthenticated)
		servertest.WantCode(t, "CreateApiKey with a provider's token", tr.Invoke(t, authv1.AuthService_CreateApiKey_FullMethodName, c.Provider,
			&authv1.CreateApiKeyRequest{Name: "p"}, &authv1.CreateApiKeyResponse{}), codes.Unauthenticated)
	})
}

// /oauth2/token exchanges an API key through its extension grant, with no
// client authentication; revoking one of its tokens there revokes the key.
func TestAPIKeyOverOAuth2(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	tr := servertest.Transports(e)["gRPC"]
	alice, code := tr.Token(t, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
	servertest.WantCode(t, "sign in", code, codes.OK)
	created, code := createAPIKey(t, tr, alice.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "ci"})
	servertest.WantCode(t, "CreateApiKey", code, codes.OK)
	form := url.Values{"grant_type": {"urn:chit:params:oauth:grant-type:api-key"}, "api_key": {created.GetKey()}}
	resp, err := http.PostForm(e.HTTPBase()+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		Error        string `json:"error"`
	}
	decodeJSON(t, resp, &body)
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" || body.RefreshToken != "" {
		t.Fatalf("/oauth2/token with an API key: %d %+v", resp.StatusCode, body)
	}
	form.Set("api_key", created.GetKey()[:len(created.GetKey())-2]+"xx")
	resp, err = http.PostForm(e.HTTPBase()+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	decodeJSON(t, resp, &body)
	if resp.StatusCode != http.StatusBadRequest || body.Error != "invalid_grant" {
		t.Fatalf("a wrong key: %d %+v, want 400 invalid_grant", resp.StatusCode, body)
	}
	// Revoking one of its tokens (RFC 7009) revokes the key.
	resp, err = http.PostForm(e.HTTPBase()+"/oauth2/revoke", url.Values{"token": {mustExchange(t, tr, created.GetKey())}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/oauth2/revoke of a key's token: %d", resp.StatusCode)
	}
	_, code = tr.Token(t, apiKeyRequest(created.GetKey(), ""))
	servertest.WantCode(t, "a key revoked through one of its tokens", code, codes.Unauthenticated)
	if _, body := servertest.Get(t, e.HTTPBase()+"/metrics"); !strings.Contains(body, `chit_tokens_issued_total{kind="api_key"} 2`) {
		t.Error("/metrics does not count the API key's two exchanges")
	}
}

func mustExchange(t *testing.T, tr servertest.Transport, key string) string {
	t.Helper()
	resp, code := tr.Token(t, apiKeyRequest(key, ""))
	servertest.WantCode(t, "exchange", code, codes.OK)
	return resp.GetAccessToken()
}

func decodeJSON(t *testing.T, resp *http.Response, into any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatal(err)
	}
}

// A person's key gives its own scopes only: not the OpenID Connect scopes
// every person may ask for when signing in.
func TestAPIKeyGivesOnlyItsScopes(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	tr := servertest.Transports(e)["gRPC"]
	alice, code := tr.Token(t, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
	servertest.WantCode(t, "sign in", code, codes.OK)
	created, code := createAPIKey(t, tr, alice.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "ci", Scopes: []string{servertest.UserGrants.AllowedScopes[0]}})
	servertest.WantCode(t, "CreateApiKey", code, codes.OK)
	for _, scope := range []string{"openid", "offline_access", "profile"} {
		_, code := tr.Token(t, apiKeyRequest(created.GetKey(), scope))
		servertest.WantCode(t, "asking a key for "+scope, code, codes.InvalidArgument)
	}
}

// Findings of an attack run on API keys, each refused now: a key wider than
// the token that made it (a narrowed token, a third-party client's token),
// a scope list left unchecked, a lifetime that expires at once, a key
// outliving its owner into a new principal of the same name, expired keys
// counting against the limit, and a service unable to revoke its key with
// one of its tokens.
func TestAPIKeyAttackFindings(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		narrowed, code := tr.Token(t, &authv1.TokenRequest{Scope: "read", Credential: servertest.PasswordRequest(servertest.UserName, servertest.UserPassword).GetCredential()})
		servertest.WantCode(t, "a token narrowed to read", code, codes.OK)
		_, code = createAPIKey(t, tr, narrowed.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "wider", Scopes: []string{"read", "write"}})
		servertest.WantCode(t, "a key wider than its token", code, codes.InvalidArgument)
		_, code = createAPIKey(t, tr, narrowed.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "oidc", Scopes: []string{"openid"}})
		servertest.WantCode(t, "a key with openid", code, codes.InvalidArgument)
		_, code = createAPIKey(t, tr, narrowed.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "instant", Ttl: durationpb.New(time.Nanosecond)})
		servertest.WantCode(t, "a key for a nanosecond", code, codes.InvalidArgument)
		many := make([]string, 65)
		for i := range many {
			many[i] = "read"
		}
		_, code = createAPIKey(t, tr, narrowed.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "many", Scopes: many})
		servertest.WantCode(t, "a key with 65 scopes", code, codes.InvalidArgument)
		twice, code := createAPIKey(t, tr, narrowed.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "twice", Scopes: []string{"read", "read"}})
		servertest.WantCode(t, "a key with a scope twice", code, codes.OK)
		if !slices.Equal(twice.GetApiKey().GetScopes(), []string{"read"}) {
			t.Fatalf("a scope asked twice is kept as %v", twice.GetApiKey().GetScopes())
		}

		// A token a third-party client obtained makes no key.
		secret := e.CreateClient(t, "reports-app", []string{"https://reports.example/cb"}, true,
			storage.Grants{AllowedScopes: []string{"read", "write"}})
		form := url.Values{"grant_type": {"password"}, "username": {servertest.UserName}, "password": {servertest.UserPassword}, "scope": {"read"}}
		req, _ := http.NewRequest(http.MethodPost, e.HTTPBase()+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("reports-app", secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var thirdParty struct {
			AccessToken string `json:"access_token"`
		}
		decodeJSON(t, resp, &thirdParty)
		_, code = createAPIKey(t, tr, thirdParty.AccessToken, &authv1.CreateApiKeyRequest{Name: "via-app"})
		servertest.WantCode(t, "a key made with a third-party client's token", code, codes.PermissionDenied)

		// A key made before its owner existed gives nothing to the new owner.
		if err := e.Directory().CreateUser(t.Context(), "zed", "zed's long password", accounts.RoleUser, storage.Grants{AllowedScopes: []string{"read"}}); err != nil {
			t.Fatal(err)
		}
		key := "chit_ak_" + strings.Repeat("Z", 16) + strings.Repeat("s", 43)
		if err := e.Store.CreateAPIKey(t.Context(), storage.APIKey{ID: strings.Repeat("Z", 16), Subject: "zed", Name: "orphan", Scopes: []string{"read"},
			Hash: secrets.Digest(key), CreatedAt: e.Clock.Now().Add(-time.Hour), ExpiresAt: e.Clock.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		_, code = tr.Token(t, apiKeyRequest(key, ""))
		servertest.WantCode(t, "a key older than its owner", code, codes.Unauthenticated)

		// Expired keys do not count against the limit.
		// "twice" is the first of the 50 keys a person may hold.
		for i := range 49 {
			_, code = createAPIKey(t, tr, narrowed.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: fmt.Sprintf("k%d", i), Ttl: durationpb.New(time.Minute)})
			servertest.WantCode(t, "one of 50 keys", code, codes.OK)
		}
		_, code = createAPIKey(t, tr, narrowed.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "fifty-first"})
		servertest.WantCode(t, "a 51st key", code, codes.FailedPrecondition)
		e.Clock.Advance(time.Minute)
		fresh, code := tr.Token(t, &authv1.TokenRequest{Scope: "read", Credential: servertest.PasswordRequest(servertest.UserName, servertest.UserPassword).GetCredential()})
		servertest.WantCode(t, "sign in again", code, codes.OK)
		_, code = createAPIKey(t, tr, fresh.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "after-expiry"})
		servertest.WantCode(t, "a key once 49 have expired", code, codes.OK)

		// A service revokes its key with one of the key's tokens.
		service, code := tr.Token(t, servertest.ClientRequest(servertest.ServiceName, e.ServiceSecret))
		servertest.WantCode(t, "service token", code, codes.OK)
		serviceKey, code := createAPIKey(t, tr, service.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "deploy"})
		servertest.WantCode(t, "a service's key", code, codes.OK)
		servertest.WantCode(t, "Revoke with the service key's token", tr.Invoke(t, authv1.AuthService_Revoke_FullMethodName, "",
			&authv1.RevokeRequest{Token: mustExchange(t, tr, serviceKey.GetKey())}, &authv1.RevokeResponse{}), codes.OK)
		_, code = tr.Token(t, apiKeyRequest(serviceKey.GetKey(), ""))
		servertest.WantCode(t, "the service's revoked key", code, codes.Unauthenticated)
	})
}
