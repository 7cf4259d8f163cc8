package oauth2http_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/oauth2"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

var aliceProfile = storage.Profile{Email: "alice@example.com", EmailVerified: true, DisplayName: "Alice Liddell", Groups: []string{"readers", "ops"}}

// A registered client granted no scope at all signs a person in with the
// standard OpenID Connect scopes (oauth2-proxy's "openid email profile"):
// the ID token from the token endpoint and userinfo, read through x/oauth2
// and go-oidc, carry the claims those scopes ask for, and only those. The
// groups claim takes a grant to the client; once granted it comes, and
// userinfo follows a change of the person's groups at once. On both stores.
func TestProfileClaimsThroughTheCodeFlowAndUserinfo(t *testing.T) {
	t.Parallel()
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := servertest.StartOn(t, backend)
			if err := e.Directory().SetUserProfile(t.Context(), servertest.UserName, aliceProfile, accounts.AllProfileFields); err != nil {
				t.Fatal(err)
			}
			e.CreateClient(t, "proxy", []string{"https://proxy.example/oauth2/callback"}, false, storage.Grants{})
			ctx := oidc.ClientContext(context.Background(), rewritingClient(e))
			provider, err := oidc.NewProvider(ctx, servertest.Issuer)
			if err != nil {
				t.Fatalf("OIDC discovery: %v", err)
			}
			var discovery struct {
				Scopes []string `json:"scopes_supported"`
				Claims []string `json:"claims_supported"`
			}
			if err := provider.Claims(&discovery); err != nil {
				t.Fatal(err)
			}
			for _, scope := range []string{"openid", "profile", "email", "groups", "offline_access"} {
				if !slices.Contains(discovery.Scopes, scope) {
					t.Errorf("scopes_supported %v lacks %s", discovery.Scopes, scope)
				}
			}
			for _, claim := range []string{"name", "preferred_username", "email", "email_verified", "groups"} {
				if !slices.Contains(discovery.Claims, claim) {
					t.Errorf("claims_supported %v lacks %s", discovery.Claims, claim)
				}
			}
			endpoint := provider.Endpoint()
			endpoint.AuthStyle = oauth2.AuthStyleInParams
			cfg := &oauth2.Config{ClientID: "proxy", Endpoint: endpoint, RedirectURL: "https://proxy.example/oauth2/callback",
				Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}
			verifier := provider.Verifier(&oidc.Config{ClientID: "proxy", Now: e.Clock.Now})

			// signIn runs the code flow for cfg and returns the token, its
			// verified ID token's claims and userinfo's.
			signIn := func(t *testing.T, cfg *oauth2.Config) (idClaims, userinfo map[string]any) {
				t.Helper()
				pkce := oauth2.GenerateVerifier()
				code := signInCode(t, e, cfg.AuthCodeURL("state-1", oauth2.S256ChallengeOption(pkce), oidc.Nonce("n-1")))
				token, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(pkce))
				if err != nil {
					t.Fatal(err)
				}
				rawIDToken, _ := token.Extra("id_token").(string)
				idToken, err := verifier.Verify(ctx, rawIDToken)
				if err != nil {
					t.Fatalf("go-oidc ID token verification: %v", err)
				}
				if err := idToken.Claims(&idClaims); err != nil {
					t.Fatal(err)
				}
				info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(token))
				if err != nil {
					t.Fatalf("go-oidc userinfo: %v", err)
				}
				if err := info.Claims(&userinfo); err != nil {
					t.Fatal(err)
				}
				return idClaims, userinfo
			}

			idClaims, userinfo := signIn(t, cfg)
			for where, claims := range map[string]map[string]any{"ID token": idClaims, "userinfo": userinfo} {
				if claims["sub"] != servertest.UserName || claims["email"] != "alice@example.com" || claims["email_verified"] != true ||
					claims["name"] != "Alice Liddell" || claims["preferred_username"] != servertest.UserName {
					t.Errorf("%s with openid email profile: %v", where, claims)
				}
				if _, has := claims["groups"]; has {
					t.Errorf("%s states groups, which were not asked for: %v", where, claims)
				}
			}

			// Without a grant of groups, the client cannot obtain them:
			// neither at the sign-in page nor at the token endpoint.
			refusedAtAuthorize(t, e, (&oauth2.Config{ClientID: "proxy", Endpoint: endpoint, RedirectURL: cfg.RedirectURL,
				Scopes: []string{oidc.ScopeOpenID, "groups"}}).AuthCodeURL("state-2", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			secret := e.CreateClient(t, "backend", []string{"https://backend.example/cb"}, true, storage.Grants{})
			resp, body := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"password"}, "username": {servertest.UserName},
				"password": {servertest.UserPassword}, "scope": {"openid groups"}}, "backend", secret)
			if resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_scope" {
				t.Fatalf("groups through a client not granted them: %d %v; want invalid_scope", resp.StatusCode, body)
			}

			// Granted groups, the client gets them, and without the email
			// scope no email.
			if err := e.Directory().SetClientGrants(t.Context(), "proxy", storage.Grants{AllowedScopes: []string{"groups"}}); err != nil {
				t.Fatal(err)
			}
			withGroups := *cfg
			withGroups.Scopes = []string{oidc.ScopeOpenID, "groups"}
			idClaims, userinfo = signIn(t, &withGroups)
			for where, claims := range map[string]map[string]any{"ID token": idClaims, "userinfo": userinfo} {
				if groups, _ := claims["groups"].([]any); len(groups) != 2 || groups[0] != "readers" || groups[1] != "ops" {
					t.Errorf("%s with openid groups: groups %v", where, claims["groups"])
				}
				for _, absent := range []string{"email", "email_verified", "name", "preferred_username"} {
					if _, has := claims[absent]; has {
						t.Errorf("%s states %s, whose scope was not asked for: %v", where, absent, claims)
					}
				}
			}
		})
	}
}

// refusedAtAuthorize checks that the sign-in page does not offer a sign-in
// for authURL: it answers an error page or sends the browser back with
// invalid_scope.
func refusedAtAuthorize(t *testing.T, e *servertest.Env, authURL string) {
	t.Helper()
	browser := e.NewBrowser(t)
	browser.Client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	page := browser.Open(t, authURL)
	if location, err := url.Parse(page.Header.Get("Location")); err == nil && page.Header.Get("Location") != "" {
		if location.Query().Get("error") != "invalid_scope" || location.Query().Get("code") != "" {
			t.Fatalf("authorize sent the browser to %v; want error=invalid_scope", location)
		}
		return
	}
	if page.Status != http.StatusBadRequest || !page.Contains(`"groups"`) {
		t.Fatalf("authorize answered %d %s; want a 400 naming the scope", page.Status, page.Body)
	}
}

// The password grant and a refresh answer ID tokens with the profile claims
// the login's scopes ask for, as the code flow's does: a relying party that
// refreshes (kubelogin, oauth2-proxy) keeps the person's email and name.
// Over /oauth2/token, on both stores.
func TestPasswordAndRefreshIDTokensStateTheProfile(t *testing.T) {
	t.Parallel()
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := servertest.StartOn(t, backend)
			if err := e.Directory().SetUserProfile(t.Context(), servertest.UserName, aliceProfile, accounts.AllProfileFields); err != nil {
				t.Fatal(err)
			}
			secret := e.CreateClient(t, "backend", []string{"https://backend.example/cb"}, true, storage.Grants{})
			idClaims := func(t *testing.T, grant string, body map[string]any) map[string]any {
				t.Helper()
				raw, _ := body["id_token"].(string)
				token, err := jwt.ParseInsecure([]byte(raw))
				if err != nil {
					t.Fatalf("%s answered no readable ID token: %v (%v)", grant, err, body)
				}
				claims, err := token.AsMap(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				return claims
			}
			resp, body := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"password"}, "username": {servertest.UserName},
				"password": {servertest.UserPassword}, "scope": {"openid email profile"}}, "backend", secret)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("password grant: %d %v", resp.StatusCode, body)
			}
			refreshToken, _ := body["refresh_token"].(string)
			if claims := idClaims(t, "password", body); claims["email"] != "alice@example.com" || claims["email_verified"] != true || claims["name"] != "Alice Liddell" {
				t.Errorf("password ID token with openid email profile: %v", claims)
			}
			resp, body = postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}, "backend", secret)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("refresh: %d %v", resp.StatusCode, body)
			}
			claims := idClaims(t, "refresh", body)
			if claims["email"] != "alice@example.com" || claims["email_verified"] != true || claims["name"] != "Alice Liddell" {
				t.Errorf("refresh ID token with openid email profile: %v", claims)
			}
			if _, has := claims["groups"]; has {
				t.Errorf("refresh ID token states groups, which were not asked for: %v", claims)
			}
		})
	}
}
