package interop_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/testenv/browsertest"
)

// signInInBrowser opens authURL in Chromium, signs the test user in on the
// hosted page and returns the URL the redirect brought the browser to on
// listener, as the relying party's callback receives it.
func signInInBrowser(t *testing.T, ctx context.Context, listener net.Listener, authURL string) *url.URL {
	t.Helper()
	callbacks := make(chan *url.URL, 1)
	server := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		callback := *r.URL
		callback.Scheme, callback.Host = "http", r.Host
		select {
		case callbacks <- &callback:
		default:
		}
		_, _ = w.Write([]byte("<!doctype html><title>done</title><p id=done>signed in</p>"))
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(func() { server.Close() })
	if err := chromedp.Do(ctx,
		chromedp.Navigate(authURL),
		chromedp.WaitVisible(chromedp.CSS(`#username`)),
		chromedp.SendKeys(chromedp.CSS(`#username`), servertest.UserName),
		chromedp.SendKeys(chromedp.CSS(`#password`), servertest.UserPassword),
		chromedp.Click(chromedp.CSS(`button[value="sign-in"]`)),
	); err != nil {
		t.Fatalf("sign in in Chromium: %v", err)
	}
	select {
	case callback := <-callbacks:
		return callback
	case <-ctx.Done():
		t.Fatal("the browser never reached the loopback redirect")
	}
	return nil
}

// A client that behaves as kubelogin (kubectl oidc-login) does with its
// defaults: discovery, a loopback listener on a port of its choosing with
// the redirect http://localhost:PORT (kubelogin tries 8000, then 18000; the
// client is registered with http://localhost:8000, which covers any port,
// RFC 8252 §7.3), PKCE, the scope openid alone, go-oidc's verification; then
// once the ID token has expired, a refresh that answers a new ID token, with
// no browser. (The module proxy does not serve kubelogin itself.)
func TestKubeloginLikeClient(t *testing.T) {
	t.Parallel()
	e, issuer := startIssuer(t)
	browser := browsertest.Browser(t, 2*time.Minute)
	e.CreateClient(t, "kubernetes", []string{"http://localhost:8000"}, false, storage.Grants{AllowedScopes: []string{"openid"}})
	ctx := t.Context()
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	config := oauth2.Config{ClientID: "kubernetes", Endpoint: provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID},
		RedirectURL: "http://localhost:" + strconv.Itoa(listener.Addr().(*net.TCPAddr).Port)}
	verifier := oauth2.GenerateVerifier()
	callback := signInInBrowser(t, browser, listener, config.AuthCodeURL("kubelogin-state", oauth2.S256ChallengeOption(verifier), oidc.Nonce("kubelogin-nonce"))).Query()
	code, state := callback.Get("code"), callback.Get("state")
	if state != "kubelogin-state" || code == "" || callback.Get("error") != "" {
		t.Fatalf("the redirect brought %v", callback)
	}
	token, err := config.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	idTokens := provider.Verifier(&oidc.Config{ClientID: "kubernetes"})
	raw, _ := token.Extra("id_token").(string)
	idToken, err := idTokens.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("the ID token: %v", err)
	}
	if idToken.Nonce != "kubelogin-nonce" {
		t.Fatalf("the ID token's nonce is %q", idToken.Nonce)
	}
	if token.RefreshToken == "" {
		t.Fatal("no refresh token: kubelogin would open the browser again when the ID token expires")
	}
	// kubelogin refreshes once the ID token has expired.
	token.Expiry = time.Now().Add(-time.Minute)
	refreshed, err := config.TokenSource(ctx, token).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	raw, _ = refreshed.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("the refresh answered no ID token (kubelogin: id_token is missing)")
	}
	again, err := idTokens.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("the refreshed ID token: %v", err)
	}
	if again.Subject != idToken.Subject {
		t.Fatalf("the refreshed ID token's sub is %q, want %q", again.Subject, idToken.Subject)
	}
	if err := again.VerifyAccessToken(refreshed.AccessToken); err != nil {
		t.Fatalf("at_hash of the refreshed ID token: %v", err)
	}
}
