package oauth2http_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"google.golang.org/grpc/metadata"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

func endpoint(e *servertest.Env, style oauth2.AuthStyle) oauth2.Endpoint {
	return oauth2.Endpoint{AuthURL: e.HTTPBase() + "/oauth2/authorize", TokenURL: e.HTTPBase() + "/oauth2/token", AuthStyle: style}
}

func checkSubject(t *testing.T, e *servertest.Env, accessToken string) string {
	t.Helper()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+accessToken)
	claims, err := authv1.NewAuthServiceClient(e.Conn).CheckToken(ctx, &authv1.CheckTokenRequest{})
	if err != nil {
		t.Fatalf("CheckToken: %v", err)
	}
	return claims.GetSubject()
}

// The password and refresh grants through golang.org/x/oauth2.
func TestXOAuth2PasswordAndRefresh(t *testing.T) {
	e := servertest.Start(t)
	cfg := &oauth2.Config{ClientID: "chit-cli", Endpoint: endpoint(e, oauth2.AuthStyleInParams), Scopes: []string{"read"}}
	ctx := context.Background()
	token, err := cfg.PasswordCredentialsToken(ctx, servertest.UserName, servertest.UserPassword)
	if err != nil {
		t.Fatal(err)
	}
	if token.TokenType != "Bearer" || token.RefreshToken == "" || token.Expiry.IsZero() || token.Extra("scope") != "read" {
		t.Fatalf("token = %+v", token)
	}
	if sub := checkSubject(t, e, token.AccessToken); sub != servertest.UserName {
		t.Fatalf("sub %q", sub)
	}
	// An expired token makes the TokenSource refresh, rotating the refresh token.
	stale := *token
	stale.Expiry = time.Now().Add(-time.Minute)
	refreshed, err := cfg.TokenSource(ctx, &stale).Token()
	if err != nil {
		t.Fatal(err)
	}
	if refreshed.AccessToken == token.AccessToken || refreshed.RefreshToken == token.RefreshToken {
		t.Fatal("the token source did not refresh")
	}
	if _, err := cfg.PasswordCredentialsToken(ctx, servertest.UserName, "wrong password"); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("wrong password: %v, want invalid_grant", err)
	}
}

// The client credentials grant, with Basic and with form authentication.
func TestXOAuth2ClientCredentials(t *testing.T) {
	e := servertest.Start(t)
	for name, style := range map[string]oauth2.AuthStyle{"basic": oauth2.AuthStyleInHeader, "form": oauth2.AuthStyleInParams} {
		t.Run(name, func(t *testing.T) {
			cfg := clientcredentials.Config{ClientID: servertest.ServiceName, ClientSecret: e.ServiceSecret, TokenURL: e.HTTPBase() + "/oauth2/token", AuthStyle: style}
			token, err := cfg.Token(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if token.RefreshToken != "" || checkSubject(t, e, token.AccessToken) != "service:"+servertest.ServiceName {
				t.Fatalf("token = %+v", token)
			}
			cfg.ClientSecret = "chit_cs_wrong"
			if _, err := cfg.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "invalid_client") {
				t.Fatalf("wrong secret: %v, want invalid_client", err)
			}
		})
	}
}

// rewritingClient sends requests for the test issuer to the test server: the
// issuer names a host that does not exist here.
func rewritingClient(e *servertest.Env) *http.Client {
	base, _ := url.Parse(e.HTTPBase())
	return &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.URL.Scheme, r.URL.Host = base.Scheme, base.Host
		return http.DefaultTransport.RoundTrip(r)
	})}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The authorization code grant with PKCE through x/oauth2, and the ID token
// and access token verified by github.com/coreos/go-oidc through discovery.
func TestAuthorizationCodeWithXOAuth2AndGoOIDC(t *testing.T) {
	e := servertest.Start(t)
	ctx := oidc.ClientContext(context.Background(), rewritingClient(e))
	provider, err := oidc.NewProvider(ctx, servertest.Issuer)
	if err != nil {
		t.Fatalf("OIDC discovery: %v", err)
	}
	cfg := &oauth2.Config{
		ClientID: "chit-cli", Endpoint: provider.Endpoint(), RedirectURL: "http://127.0.0.1:43120/callback",
		Scopes: []string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess},
	}
	verifier := oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL("xyz-state", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-123"))

	token, err := cfg.Exchange(ctx, signInCode(t, e, authURL), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	rawIDToken, _ := token.Extra("id_token").(string)
	idToken, err := provider.Verifier(&oidc.Config{ClientID: "chit-cli", Now: e.Clock.Now}).Verify(ctx, rawIDToken)
	if err != nil {
		t.Fatalf("go-oidc ID token verification: %v", err)
	}
	if idToken.Subject != servertest.UserName || idToken.Nonce != "n-123" {
		t.Fatalf("ID token sub %q nonce %q", idToken.Subject, idToken.Nonce)
	}
	access, err := provider.Verifier(&oidc.Config{ClientID: servertest.Audience, Now: e.Clock.Now}).Verify(ctx, token.AccessToken)
	if err != nil || access.Subject != servertest.UserName {
		t.Fatalf("go-oidc access token verification: %v", err)
	}
	// The code is bound to chit-cli: another (registered) client cannot
	// redeem one, and an unregistered client id fails authentication.
	e.CreateClient(t, "dashboard", []string{"https://dash.example/cb"}, false, storage.Grants{AllowedScopes: []string{"openid"}})
	other := *cfg
	other.ClientID = "dashboard"
	code2 := signInCode(t, e, cfg.AuthCodeURL("s2", oauth2.S256ChallengeOption(verifier)))
	if _, err := other.Exchange(ctx, code2, oauth2.VerifierOption(verifier)); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("a code redeemed by another client: %v", err)
	}
	other.ClientID = "unregistered"
	code3 := signInCode(t, e, cfg.AuthCodeURL("s3", oauth2.S256ChallengeOption(verifier)))
	if _, err := other.Exchange(ctx, code3, oauth2.VerifierOption(verifier)); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("a code redeemed by an unregistered client: %v", err)
	}
	// A wrong verifier is refused by the standard endpoint too.
	if _, err := cfg.Exchange(ctx, "made-up-code", oauth2.VerifierOption(verifier)); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("unknown code: %v", err)
	}
}

func postForm(t *testing.T, e *servertest.Env, path string, form url.Values, basicUser, basicPassword string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.HTTPBase()+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPassword))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp, body
}

func TestRevokeIntrospectUserinfo(t *testing.T) {
	e := servertest.Start(t)
	resp, grant := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"wonderland"}, "scope": {"openid"}}, "", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token: %d %v", resp.StatusCode, grant)
	}
	access, refresh := grant["access_token"].(string), grant["refresh_token"].(string)

	resp, body := postForm(t, e, "/oauth2/introspect", url.Values{"token": {access}}, "", "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous introspection: %d %v", resp.StatusCode, body)
	}
	resp, body = postForm(t, e, "/oauth2/introspect", url.Values{"token": {access}}, servertest.ServiceName, e.ServiceSecret)
	if resp.StatusCode != http.StatusOK || body["active"] != true || body["sub"] != "alice" || body["scope"] != "openid" {
		t.Fatalf("introspection: %d %v", resp.StatusCode, body)
	}
	_, body = postForm(t, e, "/oauth2/introspect", url.Values{"token": {"not.a.token"}}, servertest.ServiceName, e.ServiceSecret)
	if body["active"] != false || len(body) != 1 {
		t.Fatalf("introspecting garbage: %v, want only active=false", body)
	}

	req, _ := http.NewRequest(http.MethodGet, e.HTTPBase()+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+access)
	userinfo, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]any
	_ = json.NewDecoder(userinfo.Body).Decode(&info)
	userinfo.Body.Close()
	if userinfo.StatusCode != http.StatusOK || info["sub"] != "alice" {
		t.Fatalf("userinfo: %d %v", userinfo.StatusCode, info)
	}

	// Without the openid scope, no userinfo.
	_, plain := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"wonderland"}}, "", "")
	req, _ = http.NewRequest(http.MethodGet, e.HTTPBase()+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+plain["access_token"].(string))
	noScope, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	noScope.Body.Close()
	if noScope.StatusCode != http.StatusForbidden {
		t.Fatalf("userinfo without openid: %d, want 403", noScope.StatusCode)
	}

	resp, _ = postForm(t, e, "/oauth2/revoke", url.Values{"token": {refresh}}, "", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
		t.Fatalf("revoke: %d, Cache-Control %q, Pragma %q", resp.StatusCode, resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"))
	}
	resp, _ = postForm(t, e, "/oauth2/revoke", url.Values{"token": {"unknown"}}, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoking an unknown token: %d, want 200 (RFC 7009)", resp.StatusCode)
	}
	_, body = postForm(t, e, "/oauth2/introspect", url.Values{"token": {access}}, servertest.ServiceName, e.ServiceSecret)
	if body["active"] != false {
		t.Fatalf("an access token of a revoked login is active: %v", body)
	}
	resp, body = postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, "", "")
	if resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("refresh after revoke: %d %v", resp.StatusCode, body)
	}
	resp, body = postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"implicit"}}, "", "")
	if resp.StatusCode != http.StatusBadRequest || body["error"] != "unsupported_grant_type" {
		t.Fatalf("unknown grant: %d %v", resp.StatusCode, body)
	}
}

// signInCode plays the browser on the sign-in page and returns the code the
// redirect carries.
func signInCode(t *testing.T, e *servertest.Env, authURL string) string {
	t.Helper()
	browser := e.NewBrowser(t)
	browser.Client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	page := browser.Open(t, authURL)
	if page.Status != http.StatusOK {
		t.Fatalf("sign-in page: %d %s", page.Status, page.Body)
	}
	resp := browser.Submit(t, page, url.Values{"username": {servertest.UserName}, "password": {servertest.UserPassword}, "action": {"sign-in"}})
	resp.Body.Close()
	location, err := resp.Location()
	if err != nil || location.Query().Get("code") == "" {
		t.Fatalf("redirect %v, %v", location, err)
	}
	state, _ := url.ParseQuery(location.RawQuery)
	if auth, _ := url.Parse(authURL); auth.Query().Get("state") != state.Get("state") {
		t.Fatalf("state %q came back for %q", state.Get("state"), auth.Query().Get("state"))
	}
	return location.Query().Get("code")
}
