package oauth2http_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"golang.org/x/oauth2"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

// jwtHeader is the alg and kid a compact token names.
func jwtHeader(t *testing.T, token string) (alg, kid string) {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var header struct{ Alg, Kid string }
	if err := json.Unmarshal(raw, &header); err != nil {
		t.Fatal(err)
	}
	return header.Alg, header.Kid
}

// activeKid is the kid of the store's active key of algorithm.
func activeKid(t *testing.T, e *servertest.Env, algorithm string) string {
	t.Helper()
	stored, err := e.Store.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range stored {
		if key.Algorithm == algorithm && key.State == storage.KeyActive {
			return key.ID
		}
	}
	t.Fatalf("no active %s key", algorithm)
	return ""
}

// A client registered with id_token_signed_response_alg RS256 gets RS256 ID
// tokens from the code, refresh and password grants, which go-oidc accepts
// with its defaults (the algorithms discovery lists); its access tokens, and
// every other client's ID tokens, stay ES256. Discovery (both documents)
// lists exactly the algorithms ID tokens are signed with.
func TestIDTokensSignedWithTheClientsAlgorithm(t *testing.T) {
	onEachBackend(t, func(t *testing.T, e *servertest.Env) {
		for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
			status, body := servertest.Get(t, e.HTTPBase()+path)
			var doc struct {
				IDTokenAlgorithms []string `json:"id_token_signing_alg_values_supported"`
			}
			if err := json.Unmarshal([]byte(body), &doc); err != nil || status != http.StatusOK {
				t.Fatalf("%s: %d %v", path, status, err)
			}
			if !slices.Equal(doc.IDTokenAlgorithms, []string{"ES256", "RS256"}) {
				t.Fatalf("%s: id_token_signing_alg_values_supported %v, want [ES256 RS256]", path, doc.IDTokenAlgorithms)
			}
		}
		ctx, provider := discover(t, e)
		esKid, rsKid := activeKid(t, e, "ES256"), activeKid(t, e, "RS256")
		secret := e.RegisterClient(t, accounts.ClientRegistration{ID: "kube", RedirectURIs: []string{"http://127.0.0.1/callback"}, Confidential: true,
			IDTokenSignedResponseAlg: "RS256", Grants: storage.Grants{AllowedScopes: []string{"openid", "offline_access"}}})
		kube := &oauth2.Config{ClientID: "kube", ClientSecret: secret, Endpoint: provider.Endpoint(), RedirectURL: "http://127.0.0.1:8000/callback",
			Scopes: []string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess}}
		wantSigned := func(what string, token *oauth2.Token, clientID, wantAlg, wantKid string) {
			t.Helper()
			verifyIDToken(t, ctx, e, provider, clientID, token)
			if alg, kid := jwtHeader(t, token.Extra("id_token").(string)); alg != wantAlg || kid != wantKid {
				t.Fatalf("%s: ID token signed %s by %s, want %s by %s", what, alg, kid, wantAlg, wantKid)
			}
			if alg, kid := jwtHeader(t, token.AccessToken); alg != "ES256" || kid != esKid {
				t.Fatalf("%s: access token signed %s by %s, want ES256 by %s", what, alg, kid, esKid)
			}
		}

		verifier := oauth2.GenerateVerifier()
		code, err := kube.Exchange(ctx, signInCode(t, e, kube.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier))), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		wantSigned("the code grant", code, "kube", "RS256", rsKid)
		e.Clock.Advance(time.Minute)
		stale := *code
		stale.Expiry = time.Now().Add(-time.Minute)
		refreshed, err := kube.TokenSource(ctx, &stale).Token()
		if err != nil {
			t.Fatal(err)
		}
		wantSigned("the refresh", refreshed, "kube", "RS256", rsKid)
		password, err := kube.PasswordCredentialsToken(ctx, servertest.UserName, servertest.UserPassword)
		if err != nil {
			t.Fatal(err)
		}
		wantSigned("the password grant", password, "kube", "RS256", rsKid)

		// go-oidc told to accept ES256 only refuses the RS256 token: the
		// algorithm really is RS256, not a label.
		strict := provider.Verifier(&oidc.Config{ClientID: "kube", Now: e.Clock.Now, SupportedSigningAlgs: []string{oidc.ES256}})
		if _, err := strict.Verify(ctx, password.Extra("id_token").(string)); err == nil {
			t.Fatal("an ES256-only verifier accepted the RS256 ID token")
		}

		// Another client is served the configured algorithm.
		other := &oauth2.Config{ClientID: "chit-cli", Endpoint: provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID}}
		token, err := other.PasswordCredentialsToken(ctx, servertest.UserName, servertest.UserPassword)
		if err != nil {
			t.Fatal(err)
		}
		wantSigned("another client", token, "chit-cli", "ES256", esKid)

		// Switched back, the client's next ID token is ES256.
		if err := e.Directory().SetClientIDTokenAlgorithm(context.Background(), "kube", "ES256"); err != nil {
			t.Fatal(err)
		}
		password, err = kube.PasswordCredentialsToken(ctx, servertest.UserName, servertest.UserPassword)
		if err != nil {
			t.Fatal(err)
		}
		wantSigned("after switching to ES256", password, "kube", "ES256", esKid)
	})
}

// The JWKS publishes both families' public keys, the RS256 ones marked as
// signing ID tokens only.
func TestJWKSPublishesBothFamilies(t *testing.T) {
	e := servertest.Start(t)
	status, body := servertest.Get(t, e.HTTPBase()+"/.well-known/jwks.json")
	var doc struct {
		Keys []struct {
			Kid, Alg, Kty, Use string
			N, E, D            string
			IDTokenOnly        bool `json:"chit_id_token_only"`
		}
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || status != http.StatusOK {
		t.Fatalf("JWKS: %d %v", status, err)
	}
	stored, err := e.Store.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != len(stored) || len(stored) != 4 {
		t.Fatalf("JWKS has %d keys, the store %d; want the four (ES256 and RS256, active and next)", len(doc.Keys), len(stored))
	}
	byAlg := map[string]int{}
	for _, key := range doc.Keys {
		byAlg[key.Alg]++
		if key.D != "" {
			t.Fatalf("key %s publishes its private part", key.Kid)
		}
		if key.Use != "sig" || key.IDTokenOnly != (key.Alg == "RS256") {
			t.Fatalf("key %s (%s): use %q, chit_id_token_only %v", key.Kid, key.Alg, key.Use, key.IDTokenOnly)
		}
		if key.Alg == "RS256" {
			modulus, err := base64.RawURLEncoding.DecodeString(key.N)
			if err != nil || key.Kty != "RSA" || len(modulus)*8 != 2048 {
				t.Fatalf("RS256 key %s: kty %s, %d-bit modulus (%v); want RSA 2048", key.Kid, key.Kty, len(modulus)*8, err)
			}
		}
	}
	if byAlg["ES256"] != 2 || byAlg["RS256"] != 2 {
		t.Fatalf("JWKS keys by algorithm %v", byAlg)
	}
}

// Introspection (RFC 7662) answers an access token forged under the RS256
// ID token key as inactive, and the same claims under the ES256 key as
// active.
func TestIntrospectionRefusesAnAccessTokenSignedByTheIDTokenFamily(t *testing.T) {
	onEachBackend(t, func(t *testing.T, e *servertest.Env) {
		for alg, wantActive := range map[jwa.SignatureAlgorithm]bool{jwa.RS256: false, jwa.ES256: true} {
			token := servertest.SignWithServerKey(t, e, alg, servertest.ServerAccessToken(t, e), "at+jwt")
			resp, body := postForm(t, e, "/oauth2/introspect", url.Values{"token": {token}}, servertest.ServiceName, e.ServiceSecret)
			if resp.StatusCode != http.StatusOK || body["active"] != wantActive {
				t.Fatalf("introspecting an access token signed by the %s key: %d %v, want active %v", alg, resp.StatusCode, body, wantActive)
			}
		}
	})
}
