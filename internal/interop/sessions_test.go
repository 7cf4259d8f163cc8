package interop_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/testenv/browsertest"
)

// Two applications in one Chromium profile, as x/oauth2 and go-oidc clients
// with their defaults: the first signs the person in on the form, the
// second is answered without it (the sign-in session), both ID tokens name
// the same session; then the first asks for RP-initiated logout with its ID
// token as the hint: the browser comes back to its registered
// post_logout_redirect_uri with the state, the second application's
// back-channel receiver gets a logout token for the session that go-oidc
// verifies, and the next sign-in shows the form again.
func TestSignInSessionAndLogoutInChromium(t *testing.T) {
	t.Parallel()
	e, issuer := startIssuer(t)
	browser := browsertest.Browser(t, 2*time.Minute)
	ctx := t.Context()

	arrivals := make(chan *url.URL, 4)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/favicon.ico" {
			http.NotFound(w, r)
			return
		}
		arrivals <- r.URL
		_, _ = w.Write([]byte("<!doctype html><title>" + strings.TrimPrefix(r.URL.Path, "/") + "</title><p>ok</p>"))
	}))
	t.Cleanup(app.Close)
	logoutTokens := make(chan string, 4)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ParseForm() == nil {
			logoutTokens <- r.PostForm.Get("logout_token")
		}
	}))
	t.Cleanup(receiver.Close)

	for _, id := range []string{"first", "second"} {
		e.CreateClient(t, id, []string{app.URL + "/" + id}, false, storage.Grants{})
	}
	directory := e.Directory()
	if err := directory.SetClientLogout(ctx, "first", storage.ClientLogout{PostLogoutRedirectURIs: []string{app.URL + "/signed-out"}}); err != nil {
		t.Fatal(err)
	}
	if err := directory.SetClientLogout(ctx, "second", storage.ClientLogout{BackchannelLogoutURI: receiver.URL + "/backchannel"}); err != nil {
		t.Fatal(err)
	}

	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatal(err)
	}
	var metadata struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := provider.Claims(&metadata); err != nil || metadata.EndSession == "" {
		t.Fatalf("discovery has no end_session_endpoint: %v", err)
	}
	config := func(id string) oauth2.Config {
		return oauth2.Config{ClientID: id, Endpoint: provider.Endpoint(), RedirectURL: app.URL + "/" + id, Scopes: []string{oidc.ScopeOpenID}}
	}
	// signIn runs a code flow for client id in the browser, typing the
	// password only when form is set, and returns the verified ID token
	// and its raw form.
	signIn := func(id string, form bool) (*oidc.IDToken, string) {
		t.Helper()
		cfg := config(id)
		verifier := oauth2.GenerateVerifier()
		steps := []chromedp.Action[chromedp.Void]{chromedp.Navigate(cfg.AuthCodeURL(id+"-state", oauth2.S256ChallengeOption(verifier)))}
		if form {
			steps = append(steps,
				chromedp.WaitVisible(chromedp.CSS(`#username`)),
				chromedp.SendKeys(chromedp.CSS(`#username`), servertest.UserName),
				chromedp.SendKeys(chromedp.CSS(`#password`), servertest.UserPassword),
				chromedp.Click(chromedp.CSS(`button[value="sign-in"]`)))
		}
		if err := chromedp.Do(browser, steps...); err != nil {
			t.Fatalf("sign in to %s: %v", id, err)
		}
		var arrived *url.URL
		select {
		case arrived = <-arrivals:
		case <-browser.Done():
			t.Fatalf("the browser never came back to %s", id)
		}
		if arrived.Path != "/"+id || arrived.Query().Get("state") != id+"-state" || arrived.Query().Get("code") == "" {
			t.Fatalf("%s got %s", id, arrived)
		}
		waitForTitle(t, browser, id)
		token, err := cfg.Exchange(ctx, arrived.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := token.Extra("id_token").(string)
		idToken, err := provider.Verifier(&oidc.Config{ClientID: id}).Verify(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		return idToken, raw
	}
	sessionID := func(token *oidc.IDToken) string {
		var claims struct {
			SID string `json:"sid"`
		}
		_ = token.Claims(&claims)
		return claims.SID
	}

	first, firstRaw := signIn("first", true)
	second, _ := signIn("second", false) // no form: the session answers
	if sessionID(first) == "" || sessionID(first) != sessionID(second) {
		t.Fatalf("the ID tokens name sessions %q and %q; want one", sessionID(first), sessionID(second))
	}

	logoutURL := metadata.EndSession + "?" + url.Values{"id_token_hint": {firstRaw}, "post_logout_redirect_uri": {app.URL + "/signed-out"},
		"state": {"bye"}}.Encode()
	if err := chromedp.Do(browser, chromedp.Navigate(logoutURL)); err != nil {
		t.Fatal(err)
	}
	select {
	case back := <-arrivals:
		if back.Path != "/signed-out" || back.Query().Get("state") != "bye" {
			t.Fatalf("after logout the browser came to %s", back)
		}
	case <-browser.Done():
		t.Fatal("the browser never came back after logout")
	}
	waitForTitle(t, browser, "signed-out")
	select {
	case raw := <-logoutTokens:
		logoutToken, err := provider.Verifier(&oidc.Config{ClientID: "second"}).Verify(ctx, raw)
		if err != nil {
			t.Fatalf("the logout token does not verify: %v", err)
		}
		var claims struct {
			SID    string         `json:"sid"`
			Events map[string]any `json:"events"`
		}
		_ = logoutToken.Claims(&claims)
		if claims.SID != sessionID(second) || logoutToken.Subject != second.Subject {
			t.Fatalf("the logout token names session %q of %q; want %q of %q", claims.SID, logoutToken.Subject, sessionID(second), second.Subject)
		}
		if _, ok := claims.Events["http://schemas.openid.net/event/backchannel-logout"]; !ok {
			t.Fatalf("the logout token's events: %v", claims.Events)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the second application's back-channel receiver got no logout token")
	}

	// The session is over: the next sign-in shows the form.
	cfg := config("second")
	if err := chromedp.Do(browser, chromedp.Navigate(cfg.AuthCodeURL("again", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))),
		chromedp.WaitVisible(chromedp.CSS(`#username`))); err != nil {
		t.Fatalf("after logout, the sign-in page: %v", err)
	}
}

// waitForTitle waits until the browser's page has loaded with title.
func waitForTitle(t *testing.T, browser context.Context, title string) {
	t.Helper()
	for {
		got, err := chromedp.Run(browser, chromedp.Evaluate[string](`document.readyState === "complete" ? document.title : ""`))
		if err != nil {
			t.Fatalf("waiting for the page %q: %v", title, err)
		}
		if got == title {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
