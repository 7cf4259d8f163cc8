package oauth2http_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

// A confidential client authenticates with its secret on every grant, with
// golang.org/x/oauth2; a made-up or missing secret is invalid_client, and
// its refresh token refreshes through it only.
func TestConfidentialClientWithXOAuth2(t *testing.T) {
	onEachBackend(t, func(t *testing.T, e *servertest.Env) {
		ctx := context.Background()
		secret := e.CreateClient(t, "reports", []string{"https://reports.example/cb"}, true,
			storage.Grants{AllowedScopes: []string{"read", "offline_access"}})
		for name, style := range map[string]oauth2.AuthStyle{"basic": oauth2.AuthStyleInHeader, "form": oauth2.AuthStyleInParams} {
			t.Run(name, func(t *testing.T) {
				cfg := &oauth2.Config{ClientID: "reports", ClientSecret: secret, Endpoint: endpoint(e, style), Scopes: []string{"read"}}
				token, err := cfg.PasswordCredentialsToken(ctx, servertest.UserName, servertest.UserPassword)
				if err != nil {
					t.Fatal(err)
				}
				if token.Extra("scope") != "read" || token.RefreshToken == "" {
					t.Fatalf("token = %+v", token)
				}
				refreshed, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: token.RefreshToken}).Token()
				if err != nil || refreshed.RefreshToken == token.RefreshToken {
					t.Fatalf("refresh through its own client: %v", err)
				}

				for what, wrong := range map[string]*oauth2.Config{
					"a made-up secret": {ClientID: "reports", ClientSecret: "chit_cs_madeup", Endpoint: endpoint(e, style)},
					"no secret":        {ClientID: "reports", Endpoint: endpoint(e, oauth2.AuthStyleInParams)},
				} {
					if _, err := wrong.PasswordCredentialsToken(ctx, servertest.UserName, servertest.UserPassword); err == nil || !strings.Contains(err.Error(), "invalid_client") {
						t.Fatalf("password grant with %s: %v, want invalid_client", what, err)
					}
					if _, err := wrong.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshed.RefreshToken}).Token(); err == nil || !strings.Contains(err.Error(), "invalid_client") {
						t.Fatalf("refresh with %s: %v, want invalid_client", what, err)
					}
				}
				// Another client, or Chit's own, cannot refresh the client's token.
				for _, other := range []*oauth2.Config{
					{ClientID: "chit-cli", Endpoint: endpoint(e, oauth2.AuthStyleInParams)},
					{ClientID: servertest.ServiceName, ClientSecret: e.ServiceSecret, Endpoint: endpoint(e, style)},
				} {
					if _, err := other.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshed.RefreshToken}).Token(); err == nil ||
						!(strings.Contains(err.Error(), "invalid_grant") || strings.Contains(err.Error(), "unauthorized_client")) {
						t.Fatalf("refresh of reports' token by %s: %v", other.ClientID, err)
					}
				}
				// A scope the client does not allow is invalid_scope.
				wide := *cfg
				wide.Scopes = []string{"read", "write"}
				if _, err := wide.PasswordCredentialsToken(ctx, servertest.UserName, servertest.UserPassword); err == nil || !strings.Contains(err.Error(), "invalid_scope") {
					t.Fatalf("a scope the client does not allow: %v, want invalid_scope", err)
				}
			})
		}
	})
}

// The token endpoint's refusals, in the OAuth vocabulary.
func TestTokenEndpointRefusals(t *testing.T) {
	onEachBackend(t, func(t *testing.T, e *servertest.Env) {
		e.CreateClient(t, "spa", []string{"https://spa.example/cb"}, false, storage.Grants{AllowedScopes: []string{"read"}})
		password := url.Values{"grant_type": {"password"}, "username": {servertest.UserName}, "password": {servertest.UserPassword}}
		with := func(extra url.Values) url.Values {
			form := url.Values{}
			for k, v := range password {
				form[k] = v
			}
			for k, v := range extra {
				form[k] = v
			}
			return form
		}
		for _, tc := range []struct {
			name, user, secret string
			form               url.Values
			status             int
			code               string
		}{
			{"a scope the person is not granted", "", "", with(url.Values{"scope": {"payments:admin"}}), http.StatusBadRequest, "invalid_scope"},
			{"a public client sending a secret", "spa", "chit_cs_madeup", password, http.StatusUnauthorized, "invalid_client"},
			{"an unknown client", "nobody", "secret", password, http.StatusUnauthorized, "invalid_client"},
			{"a service account on the password grant", servertest.ServiceName, e.ServiceSecret, password, http.StatusBadRequest, "unauthorized_client"},
			{"a resource the person's client does not allow", "", "", with(url.Values{"resource": {"inventory"}}), http.StatusBadRequest, "invalid_target"},
			{"two resources", "", "", with(url.Values{"resource": {"a", "b"}}), http.StatusBadRequest, "invalid_target"},
			{"a service asking an audience not granted", servertest.ServiceName, e.ServiceSecret,
				url.Values{"grant_type": {"client_credentials"}, "resource": {"payments"}}, http.StatusBadRequest, "invalid_target"},
			{"a service asking a scope not granted", servertest.ServiceName, e.ServiceSecret,
				url.Values{"grant_type": {"client_credentials"}, "scope": {"payments:admin"}}, http.StatusBadRequest, "invalid_scope"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := postForm(t, e, "/oauth2/token", tc.form, tc.user, tc.secret)
				if resp.StatusCode != tc.status || body["error"] != tc.code {
					t.Fatalf("%d %v, want %d %s", resp.StatusCode, body, tc.status, tc.code)
				}
			})
		}
		// RFC 6749 §3.2 and §2.3: a parameter once, one authentication method.
		for name, tc := range map[string]struct {
			form         url.Values
			user, secret string
		}{
			"a repeated scope":                 {url.Values{"grant_type": {"client_credentials"}, "scope": {"inventory:read", "inventory:write"}}, servertest.ServiceName, e.ServiceSecret},
			"a repeated grant_type":            {url.Values{"grant_type": {"client_credentials", "password"}}, servertest.ServiceName, e.ServiceSecret},
			"Basic and a form secret":          {url.Values{"grant_type": {"client_credentials"}, "client_secret": {e.ServiceSecret}}, servertest.ServiceName, e.ServiceSecret},
			"Basic and another form client_id": {url.Values{"grant_type": {"client_credentials"}, "client_id": {"spa"}}, servertest.ServiceName, e.ServiceSecret},
		} {
			resp, body := postForm(t, e, "/oauth2/token", tc.form, tc.user, tc.secret)
			if resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_request" {
				t.Fatalf("%s: %d %v, want 400 invalid_request", name, resp.StatusCode, body)
			}
		}

		// The service's allowed audience: a token for that audience only.
		resp, body := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "resource": {servertest.ServiceAudience}}, servertest.ServiceName, e.ServiceSecret)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("allowed resource: %d %v", resp.StatusCode, body)
		}
	})
}

// RFC 7009 §2.1: a client revokes only its own tokens.
func TestRevokeChecksTheOwningClient(t *testing.T) {
	onEachBackend(t, func(t *testing.T, e *servertest.Env) {
		secret := e.CreateClient(t, "reports", []string{"https://reports.example/cb"}, true, storage.Grants{AllowedScopes: []string{"read"}})
		_, grant := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"password"}, "username": {servertest.UserName}, "password": {servertest.UserPassword}}, "reports", secret)
		refreshToken, _ := grant["refresh_token"].(string)
		if refreshToken == "" {
			t.Fatalf("no refresh token: %v", grant)
		}
		// Chit's own API client (no client_id) may not revoke reports' token.
		resp, body := postForm(t, e, "/oauth2/revoke", url.Values{"token": {refreshToken}}, "", "")
		if resp.StatusCode != http.StatusBadRequest || body["error"] != "unauthorized_client" {
			t.Fatalf("revoke by another client: %d %v", resp.StatusCode, body)
		}
		resp, _ = postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}, "reports", secret)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("the refused revocation revoked the token: %d", resp.StatusCode)
		}
	})
}

// RFC 7662 for refresh tokens: only the client a refresh token was issued to
// sees it active; a service introspects access tokens, a confidential client
// only its own.
func TestIntrospectionFollowsTheOwningClient(t *testing.T) {
	onEachBackend(t, func(t *testing.T, e *servertest.Env) {
		grants := storage.Grants{AllowedScopes: []string{"read"}}
		reports := e.CreateClient(t, "reports", []string{"https://reports.example/cb"}, true, grants)
		other := e.CreateClient(t, "other", []string{"https://other.example/cb"}, true, grants)
		e.CreateClient(t, "spa", []string{"https://spa.example/cb"}, false, grants)
		_, grant := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"password"}, "username": {servertest.UserName},
			"password": {servertest.UserPassword}, "scope": {"read"}}, "reports", reports)
		refreshToken, _ := grant["refresh_token"].(string)
		accessToken, _ := grant["access_token"].(string)
		_, ownGrant := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"password"}, "username": {servertest.UserName},
			"password": {servertest.UserPassword}}, "", "")
		apiAccessToken, _ := ownGrant["access_token"].(string)
		introspect := func(token, user, secret string) map[string]any {
			t.Helper()
			resp, body := postForm(t, e, "/oauth2/introspect", url.Values{"token": {token}}, user, secret)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("introspect as %s: %d %v", user, resp.StatusCode, body)
			}
			return body
		}
		if body := introspect(refreshToken, "reports", reports); body["active"] != true || body["token_type"] != "refresh_token" ||
			body["client_id"] != "reports" || body["sub"] != servertest.UserName || body["scope"] != "read" {
			t.Fatalf("the owner introspecting its refresh token: %v", body)
		}
		for who, secret := range map[string]string{"other": other, servertest.ServiceName: e.ServiceSecret} {
			if body := introspect(refreshToken, who, secret); body["active"] != false || len(body) != 1 {
				t.Fatalf("%s introspecting reports' refresh token: %v, want only active false", who, body)
			}
		}
		if body := introspect(accessToken, servertest.ServiceName, e.ServiceSecret); body["active"] != true || body["client_id"] != "reports" {
			t.Fatalf("a service introspecting an access token: %v", body)
		}
		if body := introspect(accessToken, "reports", reports); body["active"] != true {
			t.Fatalf("a client introspecting its own access token: %v", body)
		}
		if body := introspect(apiAccessToken, "reports", reports); body["active"] != false {
			t.Fatalf("a client introspecting another client's access token: %v", body)
		}
		if resp, _ := postForm(t, e, "/oauth2/introspect", url.Values{"token": {accessToken}, "client_id": {"spa"}}, "", ""); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a public client introspecting: %d, want 401", resp.StatusCode)
		}
	})
}

// onEachBackend runs test against a server on each store.
func onEachBackend(t *testing.T, test func(t *testing.T, e *servertest.Env)) {
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) { test(t, servertest.StartOn(t, backend)) })
	}
}

// A client-credentials token has no login to end: revoking it says so
// (RFC 7009 §2.2.1) rather than answering a success that changes nothing.
func TestRevokingATokenWithoutALoginIsUnsupported(t *testing.T) {
	onEachBackend(t, func(t *testing.T, e *servertest.Env) {
		_, grant := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, servertest.ServiceName, e.ServiceSecret)
		token, _ := grant["access_token"].(string)
		resp, body := postForm(t, e, "/oauth2/revoke", url.Values{"token": {token}}, servertest.ServiceName, e.ServiceSecret)
		if resp.StatusCode != http.StatusBadRequest || body["error"] != "unsupported_token_type" {
			t.Fatalf("revoking a client-credentials token: %d %v, want 400 unsupported_token_type", resp.StatusCode, body)
		}
		if checkSubject(t, e, token) != "service:"+servertest.ServiceName {
			t.Fatal("the token stopped working")
		}
		// Introspection agrees with the answer: the token is still active.
		if _, body := postForm(t, e, "/oauth2/introspect", url.Values{"token": {token}}, servertest.ServiceName, e.ServiceSecret); body["active"] != true {
			t.Fatalf("introspection after the refused revocation: %v, want active", body)
		}
		// An invalid token still answers 200: it tells nothing.
		if resp, _ := postForm(t, e, "/oauth2/revoke", url.Values{"token": {"not-a-token"}}, "", ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("revoking garbage: %d, want 200", resp.StatusCode)
		}
	})
}

// Second reading of the grants: the holes a review of the change found.
func TestGrantReviewFindings(t *testing.T) {
	onEachBackend(t, func(t *testing.T, e *servertest.Env) {
		ctx := context.Background()
		// An admin's refresh token, introspected by the third-party client
		// it was issued to, shows the role that client's tokens carry.
		user, err := e.Store.GetUser(ctx, servertest.UserName)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Store.CreateUser(ctx, storage.User{Name: "root", PasswordHash: user.PasswordHash, Role: "ADMIN", CreatedAt: e.Clock.Now()}); err != nil {
			t.Fatal(err)
		}
		secret := e.CreateClient(t, "reports", []string{"https://reports.example/cb"}, true, storage.Grants{AllowedScopes: []string{"openid", "offline_access"}})
		_, grant := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"root"},
			"password": {servertest.UserPassword}, "scope": {"openid offline_access"}}, "reports", secret)
		refreshToken, _ := grant["refresh_token"].(string)
		if _, body := postForm(t, e, "/oauth2/introspect", url.Values{"token": {refreshToken}}, "reports", secret); body["active"] != true || body["role"] != "USER" {
			t.Fatalf("an admin's refresh token introspected by a third-party client: %v, want active with role USER", body)
		}
		// A token a third-party client holds may not end its subject's
		// sessions at every client.
		accessToken, _ := grant["access_token"].(string)
		md := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+accessToken)
		if _, err := authv1.NewAuthServiceClient(e.Conn).Revoke(md, &authv1.RevokeRequest{}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("revoke-all with a third-party client's token: %v, want PermissionDenied", err)
		}
		// Taking offline_access from the client ends its logins at their
		// next refresh.
		e.Clock.Advance(time.Second)
		if err := e.Directory().SetClientGrants(ctx, "reports", storage.Grants{AllowedScopes: []string{"openid"}}); err != nil {
			t.Fatal(err)
		}
		if resp, body := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}, "reports", secret); resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("a refresh after offline_access was taken from the client: %d %v, want invalid_grant", resp.StatusCode, body)
		}
		// A malformed scope on client credentials is the request's fault.
		if resp, body := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {`a"b`}}, servertest.ServiceName, e.ServiceSecret); resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_request" {
			t.Fatalf("client credentials with a malformed scope: %d %v, want invalid_request", resp.StatusCode, body)
		}
	})
}

// An audience the client may not ask for is refused before the code is
// used: a retry without it still gets the tokens.
func TestBadResourceDoesNotUseUpTheCode(t *testing.T) {
	e := servertest.Start(t)
	cfg := &oauth2.Config{ClientID: "chit-cli", Endpoint: endpoint(e, oauth2.AuthStyleInParams), RedirectURL: "http://127.0.0.1:5555/cb", Scopes: []string{"openid"}}
	verifier := oauth2.GenerateVerifier()
	code := signInCode(t, e, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
	resp, body := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {"chit-cli"}, "code": {code},
		"redirect_uri": {cfg.RedirectURL}, "code_verifier": {verifier}, "resource": {"inventory"}}, "", "")
	if resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_target" {
		t.Fatalf("a code exchange with a resource the client may not ask for: %d %v", resp.StatusCode, body)
	}
	if _, err := cfg.Exchange(context.Background(), code, oauth2.VerifierOption(verifier)); err != nil {
		t.Fatalf("the retry without the resource: %v", err)
	}
}
