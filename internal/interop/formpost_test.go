package interop_test

import (
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

// response_mode=form_post in Chromium: after the sign-in, the page's script
// (allowed by its CSP nonce, nothing else is) posts the code, state and iss
// to the client's redirect URI, and the posted code exchanges for tokens.
func TestFormPostInChromium(t *testing.T) {
	t.Parallel()
	e, issuer := startIssuer(t)
	browser := browsertest.Browser(t, 2*time.Minute)
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	redirectURI := "http://127.0.0.1:" + strconv.Itoa(listener.Addr().(*net.TCPAddr).Port) + "/cb"
	e.CreateClient(t, "web", []string{redirectURI}, false, storage.Grants{})
	posted := make(chan url.Values, 1)
	receiver := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.ParseForm() != nil {
			http.Error(w, "want a form post", http.StatusBadRequest)
			return
		}
		select {
		case posted <- r.PostForm:
		default:
		}
		_, _ = w.Write([]byte("<!doctype html><title>done</title><p id=done>signed in</p>"))
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = receiver.Serve(listener) }()
	t.Cleanup(func() { receiver.Close() })

	provider, err := oidc.NewProvider(t.Context(), issuer)
	if err != nil {
		t.Fatal(err)
	}
	config := oauth2.Config{ClientID: "web", Endpoint: provider.Endpoint(), RedirectURL: redirectURI, Scopes: []string{oidc.ScopeOpenID}}
	verifier := oauth2.GenerateVerifier()
	authURL := config.AuthCodeURL("form-state", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("response_mode", "form_post"))
	if err := chromedp.Do(browser,
		chromedp.Navigate(authURL),
		chromedp.WaitVisible(chromedp.CSS(`#username`)),
		chromedp.SendKeys(chromedp.CSS(`#username`), servertest.UserName),
		chromedp.SendKeys(chromedp.CSS(`#password`), servertest.UserPassword),
		chromedp.Click(chromedp.CSS(`button[value="sign-in"]`)),
	); err != nil {
		t.Fatalf("sign in in Chromium: %v", err)
	}
	var form url.Values
	select {
	case form = <-posted:
	case <-browser.Done():
		t.Fatal("the browser never posted the response to the redirect URI")
	}
	if form.Get("state") != "form-state" || form.Get("iss") != issuer || form.Get("code") == "" {
		t.Fatalf("the form posted %v", form)
	}
	token, err := config.Exchange(t.Context(), form.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange the posted code: %v", err)
	}
	if raw, _ := token.Extra("id_token").(string); raw == "" {
		t.Fatal("no ID token")
	}
}
