package signinpage_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/testenv/browsertest"
)

// TestSignInInARealBrowser drives the sign-in page in headless Chromium: it
// types the credentials, submits, and follows the redirect to a loopback
// listener, as `chit login` would receive it.
func TestSignInInARealBrowser(t *testing.T) {
	t.Parallel()
	browsertest.Chromium(t)
	e := servertest.Start(t)

	type arrival struct{ code, state string }
	arrived := make(chan arrival, 1)
	listener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- arrival{r.URL.Query().Get("code"), r.URL.Query().Get("state")}:
		default:
		}
		_, _ = w.Write([]byte("<!doctype html><title>done</title><h1>Login finished</h1>"))
	}))
	t.Cleanup(listener.Close)
	redirectURI := listener.URL + "/callback"

	verifier := servertest.NewVerifier(t)
	req := servertest.AuthorizeRequest(verifier, "openid")
	req.RedirectUri = redirectURI
	resp, err := authv1.NewAuthServiceClient(e.Conn).GetAuthorizeUrl(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	pageURL, _ := url.Parse(resp.GetUrl())
	base, _ := url.Parse(e.HTTPBase())
	pageURL.Scheme, pageURL.Host = base.Scheme, base.Host

	ctx := browsertest.Browser(t, 60*time.Second)

	err = chromedp.Do(ctx,
		chromedp.Navigate(pageURL.String()),
		chromedp.WaitVisible(chromedp.CSS(`#username`)),
	)
	if err != nil {
		t.Fatalf("open the sign-in page in Chromium: %v", err)
	}
	// The username field has focus first, for keyboard users.
	focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#username`), servertest.UserName),
		chromedp.SendKeys(chromedp.CSS(`#password`), servertest.UserPassword),
	); err != nil {
		t.Fatalf("fill the form: %v", err)
	}
	screenshot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[value="sign-in"]`))); err != nil {
		t.Fatalf("submit: %v", err)
	}
	if focused != "username" {
		t.Errorf("first focused element is %q, want username", focused)
	}
	shot := filepath.Join(t.TempDir(), "signin.png")
	if dir := os.Getenv("CHIT_SCREENSHOT_DIR"); dir != "" {
		shot = filepath.Join(dir, "signin.png")
	}
	if len(screenshot) == 0 {
		t.Fatal("empty screenshot")
	}
	if err := os.WriteFile(shot, screenshot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the sign-in page: %s", shot)

	var got arrival
	select {
	case got = <-arrived:
	case <-ctx.Done():
		t.Fatal("the browser never reached the loopback redirect")
	}
	if got.state != "state-123" || got.code == "" {
		t.Fatalf("redirect carried state %q code %q", got.state, got.code)
	}
	token, err := authv1.NewAuthServiceClient(e.Conn).LoginCli(context.Background(),
		&authv1.LoginCliRequest{Code: got.code, RedirectUri: redirectURI, CodeVerifier: verifier})
	if err != nil || token.GetAccessToken().GetIdToken() == "" {
		t.Fatalf("LoginCli after the browser sign-in: %v, %v", token, err)
	}
}

// TestSecondClientInTheSameBrowserSkipsTheForm signs in to one client in
// headless Chromium, then opens another client's authorization request in
// the same browser profile: the session cookie signs it in without the
// form, and both ID tokens name the same session (sid).
func TestSecondClientInTheSameBrowserSkipsTheForm(t *testing.T) {
	t.Parallel()
	browsertest.Chromium(t)
	e := servertest.Start(t)

	type arrival struct{ code, state string }
	listen := func() (chan arrival, string) {
		arrived := make(chan arrival, 1)
		listener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case arrived <- arrival{r.URL.Query().Get("code"), r.URL.Query().Get("state")}:
			default:
			}
			_, _ = w.Write([]byte("<!doctype html><title>done</title><h1>Signed in</h1>"))
		}))
		t.Cleanup(listener.Close)
		return arrived, listener.URL + "/callback"
	}
	firstArrived, firstRedirect := listen()
	secondArrived, secondRedirect := listen()
	grants := storage.Grants{AllowedScopes: []string{"openid"}}
	// Registered on the loopback address without a port: any port matches
	// (RFC 8252 §7.3).
	e.RegisterClient(t, accounts.ClientRegistration{ID: "first-app", RedirectURIs: []string{"http://127.0.0.1/callback"}, Grants: grants})
	e.RegisterClient(t, accounts.ClientRegistration{ID: "second-app", RedirectURIs: []string{"http://127.0.0.1/callback"}, Grants: grants})
	config := func(id, redirect string) *oauth2.Config {
		cfg := &oauth2.Config{ClientID: id, Endpoint: xoauth2Endpoint(e), RedirectURL: redirect, Scopes: []string{"openid"}}
		cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
		return cfg
	}
	first, second := config("first-app", firstRedirect), config("second-app", secondRedirect)
	firstVerifier, secondVerifier := oauth2.GenerateVerifier(), oauth2.GenerateVerifier()

	ctx := browsertest.Browser(t, 2*time.Minute)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(first.AuthCodeURL("one", oauth2.S256ChallengeOption(firstVerifier))),
		chromedp.WaitVisible(chromedp.CSS(`#username`)),
		chromedp.SendKeys(chromedp.CSS(`#username`), servertest.UserName),
		chromedp.SendKeys(chromedp.CSS(`#password`), servertest.UserPassword),
		chromedp.Click(chromedp.CSS(`button[value="sign-in"]`)),
	); err != nil {
		t.Fatalf("sign in to the first client: %v", err)
	}
	var one, two arrival
	select {
	case one = <-firstArrived:
	case <-ctx.Done():
		t.Fatal("the browser never reached the first client")
	}
	// The first client's page must have loaded: a navigation started while
	// the redirect to it is still under way aborts.
	for {
		title, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.readyState === "complete" ? document.title : ""`))
		if err != nil {
			t.Fatalf("the first client's page: %v", err)
		}
		if title == "done" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(second.AuthCodeURL("two", oauth2.S256ChallengeOption(secondVerifier)))); err != nil {
		t.Fatalf("open the second client's sign-in: %v", err)
	}
	select {
	case two = <-secondArrived:
	case <-ctx.Done():
		t.Fatal("the second client's sign-in did not come back without the form")
	}
	// The browser ended on the second client's page, never the form.
	landed, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.origin + location.pathname + " " + document.title`))
	if err != nil || landed != secondRedirect+" done" {
		t.Fatalf("the browser is at %q (%v), want the second client's callback", landed, err)
	}
	if one.state != "one" || two.state != "two" || one.code == "" || two.code == "" {
		t.Fatalf("arrivals %+v %+v", one, two)
	}
	firstToken := exchange(t, e, first, one.code, firstVerifier)
	secondToken := exchange(t, e, second, two.code, secondVerifier)
	firstID := verifyIDToken(t, e, firstToken.Extra("id_token").(string))
	secondID := verifyIDToken(t, e, secondToken.Extra("id_token").(string))
	firstSID, _ := firstID.Get("sid")
	secondSID, _ := secondID.Get("sid")
	if firstSID == nil || firstSID != secondSID || secondID.Subject() != servertest.UserName {
		t.Fatalf("sid %v and %v, sub %q: want one session of %s", firstSID, secondSID, secondID.Subject(), servertest.UserName)
	}
}
