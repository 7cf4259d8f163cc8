package interop_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/testenv/browsertest"
)

// A person in Chromium answers x/oauth2's device flow: opens the
// verification URI, types the code (in lower case, without its dash), reads
// which client asks for what from where, signs in and approves; x/oauth2's
// poll then gets the tokens. A second request, opened by its
// verification_uri_complete in the same browser, shows who is signed in
// (the sign-in session) and is denied: its poll ends with access_denied.
func TestDeviceFlowInChromium(t *testing.T) {
	t.Parallel()
	_, issuer := startDeviceIssuer(t)
	browser := browsertest.Browser(t, 2*time.Minute)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cfg := oauth2.Config{ClientID: "chit-cli", Scopes: []string{"openid"},
		Endpoint: oauth2.Endpoint{TokenURL: issuer + "/oauth2/token", DeviceAuthURL: issuer + "/oauth2/device_authorization", AuthStyle: oauth2.AuthStyleInParams}}

	authorization, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	typed := strings.ToLower(strings.ReplaceAll(authorization.UserCode, "-", ""))
	if err := chromedp.Do(browser,
		chromedp.Navigate(authorization.VerificationURI),
		chromedp.WaitVisible(chromedp.CSS(`#user_code`)),
		chromedp.SendKeys(chromedp.CSS(`#user_code`), typed),
		chromedp.Click(chromedp.CSS(`button[value="lookup"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#username`)),
	); err != nil {
		t.Fatalf("enter the code: %v", err)
	}
	// The confirmation names the client, the scopes, the address and time.
	for selector, want := range map[string]string{"#user-code": authorization.UserCode, "#client": "the Chit command line",
		"#scopes": "openid", "#requested-from": "127.0.0.1"} {
		got, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(selector)))
		if err != nil || !strings.Contains(got, want) {
			t.Fatalf("%s says %q (%v), want %q", selector, got, err, want)
		}
	}
	if at, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(`#requested-at`))); err != nil || !strings.Contains(at, "UTC") {
		t.Fatalf("requested at %q: %v", at, err)
	}
	if err := chromedp.Do(browser,
		chromedp.SendKeys(chromedp.CSS(`#username`), servertest.UserName),
		chromedp.SendKeys(chromedp.CSS(`#password`), servertest.UserPassword),
		chromedp.Click(chromedp.CSS(`button[value="approve"]`)),
	); err != nil {
		t.Fatalf("approve: %v", err)
	}
	waitForTitle(t, browser, "Device approved · Chit")
	token, err := cfg.DeviceAccessToken(ctx, authorization)
	if err != nil {
		t.Fatal(err)
	}
	if token.AccessToken == "" || token.Extra("id_token") == nil {
		t.Fatalf("token = %+v", token)
	}

	denied, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(browser,
		chromedp.Navigate(denied.VerificationURIComplete),
		chromedp.WaitVisible(chromedp.CSS(`#signed-in-as`)),
	); err != nil {
		t.Fatalf("open verification_uri_complete: %v", err)
	}
	if who, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(`#signed-in-as`))); err != nil || who != servertest.UserName {
		t.Fatalf("signed in as %q: %v", who, err)
	}
	if err := chromedp.Do(browser, chromedp.Click(chromedp.CSS(`button[value="deny"]`))); err != nil {
		t.Fatal(err)
	}
	waitForTitle(t, browser, "Request denied · Chit")
	_, err = cfg.DeviceAccessToken(ctx, denied)
	var retrieve *oauth2.RetrieveError
	if !errors.As(err, &retrieve) || retrieve.ErrorCode != "access_denied" {
		t.Fatalf("polling a denied request: %v", err)
	}
}
