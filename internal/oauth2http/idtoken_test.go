package oauth2http_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"golang.org/x/oauth2"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

// idTokenClaims are the claims go-oidc's IDToken does not decode itself.
type idTokenClaims struct {
	AuthorizedParty string  `json:"azp"`
	AuthTime        *int64  `json:"auth_time"`
	Nonce           *string `json:"nonce"`
}

// discover is go-oidc's provider of e, found through discovery.
func discover(t *testing.T, e *servertest.Env) (context.Context, *oidc.Provider) {
	t.Helper()
	ctx := oidc.ClientContext(context.Background(), rewritingClient(e))
	provider, err := oidc.NewProvider(ctx, servertest.Issuer)
	if err != nil {
		t.Fatalf("OIDC discovery: %v", err)
	}
	return ctx, provider
}

// verifyIDToken checks the id_token of token as go-oidc does for clientID,
// its at_hash against token's access token, and its azp.
func verifyIDToken(t *testing.T, ctx context.Context, e *servertest.Env, provider *oidc.Provider, clientID string, token *oauth2.Token) (*oidc.IDToken, idTokenClaims) {
	t.Helper()
	raw, _ := token.Extra("id_token").(string)
	if raw == "" {
		t.Fatalf("no id_token in the answer (scope %v)", token.Extra("scope"))
	}
	idToken, err := provider.Verifier(&oidc.Config{ClientID: clientID, Now: e.Clock.Now}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("go-oidc refuses the ID token: %v", err)
	}
	if err := idToken.VerifyAccessToken(token.AccessToken); err != nil {
		t.Fatalf("go-oidc VerifyAccessToken: %v", err)
	}
	var claims idTokenClaims
	if err := idToken.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idToken.Subject != servertest.UserName || claims.AuthorizedParty != clientID {
		t.Fatalf("ID token sub %q azp %q, want %s and %s", idToken.Subject, claims.AuthorizedParty, servertest.UserName, clientID)
	}
	return idToken, claims
}

// kubelogin's flow, with its libraries (x/oauth2 and go-oidc) and its
// defaults: code with PKCE for openid (with offline_access for a refresh
// token), then a refresh that must answer an ID token go-oidc accepts,
// whose at_hash is the new access token's (OIDC Core §12.2).
func TestRefreshAnswersAnIDTokenToGoOIDC(t *testing.T) {
	onEachBackend(t, func(t *testing.T, e *servertest.Env) {
		ctx, provider := discover(t, e)
		cfg := &oauth2.Config{ClientID: "chit-cli", Endpoint: provider.Endpoint(), RedirectURL: "http://127.0.0.1:43120/callback",
			Scopes: []string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess}}
		verifier := oauth2.GenerateVerifier()
		signedInAt := e.Clock.Now()
		token, err := cfg.Exchange(ctx, signInCode(t, e, cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-1"))), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		first, claims := verifyIDToken(t, ctx, e, provider, "chit-cli", token)
		if first.Nonce != "n-1" || claims.AuthTime == nil || *claims.AuthTime != signedInAt.Unix() {
			t.Fatalf("the code's ID token: nonce %q auth_time %v", first.Nonce, claims.AuthTime)
		}

		e.Clock.Advance(20 * time.Minute)
		stale := *token
		stale.Expiry = time.Now().Add(-time.Minute)
		refreshed, err := cfg.TokenSource(ctx, &stale).Token()
		if err != nil {
			t.Fatal(err)
		}
		if refreshed.AccessToken == token.AccessToken {
			t.Fatal("the token source did not refresh")
		}
		idToken, claims := verifyIDToken(t, ctx, e, provider, "chit-cli", refreshed)
		if idToken.Subject != first.Subject || idToken.Nonce != "" || claims.Nonce != nil || claims.AuthTime != nil ||
			!idToken.IssuedAt.Equal(e.Clock.Now().Truncate(time.Second)) {
			t.Fatalf("the refresh's ID token: sub %q nonce %v auth_time %v iat %v", idToken.Subject, claims.Nonce, claims.AuthTime, idToken.IssuedAt)
		}
		// go-oidc notices an at_hash that is not the access token's.
		if err := idToken.VerifyAccessToken(token.AccessToken); err == nil {
			t.Fatal("the refresh's at_hash matches the earlier access token")
		}
		if err := idToken.VerifyAccessToken(refreshed.AccessToken + "x"); err == nil {
			t.Fatal("the at_hash matches an altered access token")
		}

		// A refresh narrowed to offline_access keeps no openid: no ID token.
		resp, body := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"chit-cli"},
			"refresh_token": {refreshed.RefreshToken}, "scope": {"offline_access"}}, "", "")
		if resp.StatusCode != http.StatusOK || body["scope"] != "offline_access" || body["id_token"] != nil {
			t.Fatalf("a refresh without openid: %d %v, want no id_token", resp.StatusCode, body)
		}
		// A login granted no openid gets no ID token on refresh either.
		plain := *cfg
		plain.Scopes = []string{oidc.ScopeOfflineAccess}
		verifier = oauth2.GenerateVerifier()
		token, err = plain.Exchange(ctx, signInCode(t, e, plain.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier))), oauth2.VerifierOption(verifier))
		if err != nil || token.Extra("id_token") != nil {
			t.Fatalf("a code without openid: %v, id_token %v", err, token.Extra("id_token"))
		}
		resp, body = postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"chit-cli"}, "refresh_token": {token.RefreshToken}}, "", "")
		if resp.StatusCode != http.StatusOK || body["id_token"] != nil {
			t.Fatalf("the refresh of a login without openid: %d %v, want no id_token", resp.StatusCode, body)
		}
	})
}

// The password grant asked for openid answers an ID token for the client
// (aud and azp its id) with the access token's at_hash, as does its
// refresh; asked without openid, neither does.
func TestPasswordGrantAnswersAnIDToken(t *testing.T) {
	onEachBackend(t, func(t *testing.T, e *servertest.Env) {
		ctx, provider := discover(t, e)
		secret := e.CreateClient(t, "reports", []string{"https://reports.example/cb"}, true,
			storage.Grants{AllowedScopes: []string{"openid", "read", "offline_access"}})
		cfg := &oauth2.Config{ClientID: "reports", ClientSecret: secret, Endpoint: provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "read"}}
		token, err := cfg.PasswordCredentialsToken(ctx, servertest.UserName, servertest.UserPassword)
		if err != nil {
			t.Fatal(err)
		}
		_, claims := verifyIDToken(t, ctx, e, provider, "reports", token)
		if claims.AuthTime == nil || *claims.AuthTime != e.Clock.Now().Unix() || claims.Nonce != nil {
			t.Fatalf("the password grant's ID token: auth_time %v nonce %v", claims.AuthTime, claims.Nonce)
		}
		e.Clock.Advance(time.Minute)
		stale := *token
		stale.Expiry = time.Now().Add(-time.Minute)
		refreshed, err := cfg.TokenSource(ctx, &stale).Token()
		if err != nil {
			t.Fatal(err)
		}
		verifyIDToken(t, ctx, e, provider, "reports", refreshed)

		cfg.Scopes = []string{"read"}
		plain, err := cfg.PasswordCredentialsToken(ctx, servertest.UserName, servertest.UserPassword)
		if err != nil || plain.Extra("id_token") != nil {
			t.Fatalf("the password grant without openid: %v, id_token %v", err, plain.Extra("id_token"))
		}
		stale = *plain
		stale.Expiry = time.Now().Add(-time.Minute)
		if refreshed, err := cfg.TokenSource(ctx, &stale).Token(); err != nil || refreshed.Extra("id_token") != nil {
			t.Fatalf("the refresh of a login without openid: %v, id_token %v", err, refreshed.Extra("id_token"))
		}
	})
}

// at_hash follows the algorithm of the key that signs the ID token: the
// left half of SHA-256 for ES256 and RS256, of SHA-512 for EdDSA (OIDC
// Core §3.1.3.6); go-oidc's VerifyAccessToken checks it for each.
func TestAccessTokenHashForEachAlgorithm(t *testing.T) {
	for _, alg := range []jwa.SignatureAlgorithm{jwa.ES256, jwa.RS256, jwa.EdDSA} {
		t.Run(alg.String(), func(t *testing.T) {
			t.Parallel()
			e := servertest.Start(t, func(cfg *server.Config) { cfg.SigningAlgorithm = alg })
			ctx, provider := discover(t, e)
			var algorithms struct {
				IDToken []string `json:"id_token_signing_alg_values_supported"`
			}
			// The configured algorithm, and RS256 beside it.
			if want := keys.FamilyNames(alg); provider.Claims(&algorithms) != nil || !slices.Equal(algorithms.IDToken, want) {
				t.Fatalf("id_token_signing_alg_values_supported %v, want %v", algorithms.IDToken, want)
			}
			cfg := &oauth2.Config{ClientID: "chit-cli", Endpoint: provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID}}
			token, err := cfg.PasswordCredentialsToken(ctx, servertest.UserName, servertest.UserPassword)
			if err != nil {
				t.Fatal(err)
			}
			verifyIDToken(t, ctx, e, provider, "chit-cli", token)
			if got, _ := jwtHeader(t, token.Extra("id_token").(string)); got != alg.String() {
				t.Fatalf("chit-cli's ID token is %s, want the configured %s", got, alg)
			}
			// Whatever the configured algorithm, a client may ask for RS256
			// ID tokens, with at_hash for RS256.
			secret := e.RegisterClient(t, accounts.ClientRegistration{ID: "kube", RedirectURIs: []string{"http://127.0.0.1/cb"}, Confidential: true,
				IDTokenSignedResponseAlg: "RS256", Grants: storage.Grants{AllowedScopes: []string{"openid"}}})
			rs := &oauth2.Config{ClientID: "kube", ClientSecret: secret, Endpoint: provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID}}
			if token, err = rs.PasswordCredentialsToken(ctx, servertest.UserName, servertest.UserPassword); err != nil {
				t.Fatal(err)
			}
			verifyIDToken(t, ctx, e, provider, "kube", token)
			if got, _ := jwtHeader(t, token.Extra("id_token").(string)); got != "RS256" {
				t.Fatalf("kube's ID token is %s, want RS256", got)
			}
			if got, _ := jwtHeader(t, token.AccessToken); got != alg.String() {
				t.Fatalf("kube's access token is %s, want the configured %s", got, alg)
			}
		})
	}
}
