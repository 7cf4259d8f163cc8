package interop_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/chit-auth/chit/internal/device"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// startDeviceIssuer is an issuer on the wall clock with a one-second poll
// interval: x/oauth2 waits the interval between polls for real.
func startDeviceIssuer(t *testing.T) (*servertest.Env, string) {
	t.Helper()
	return startIssuer(t, func(cfg *server.Config) {
		cfg.Now = time.Now
		cfg.Device.Interval = time.Second
	})
}

// golang.org/x/oauth2's device flow with its defaults (Config.DeviceAuth,
// DeviceAccessToken) against discovery's device_authorization_endpoint: the
// person approves on the verification page (its forms posted by an HTTP
// client), x/oauth2 polls until it gets the tokens, go-oidc verifies the ID
// token. A denied request ends its polling with access_denied.
func TestDeviceFlowWithXOAuth2(t *testing.T) {
	t.Parallel()
	e, issuer := startDeviceIssuer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatal(err)
	}
	var metadata struct {
		DeviceAuthorization string `json:"device_authorization_endpoint"`
	}
	if err := provider.Claims(&metadata); err != nil || metadata.DeviceAuthorization != issuer+"/oauth2/device_authorization" {
		t.Fatalf("discovery's device_authorization_endpoint = %q, %v", metadata.DeviceAuthorization, err)
	}
	// go-oidc fills DeviceAuthURL from discovery.
	cfg := oauth2.Config{ClientID: "chit-cli", Endpoint: provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "profile"}}
	if cfg.Endpoint.DeviceAuthURL != metadata.DeviceAuthorization {
		cfg.Endpoint.DeviceAuthURL = metadata.DeviceAuthorization
	}
	cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams

	t.Run("approved", func(t *testing.T) {
		authorization, err := cfg.DeviceAuth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if authorization.VerificationURI != issuer+device.VerificationPath || authorization.VerificationURIComplete == "" ||
			authorization.Interval != 1 || authorization.Expiry.IsZero() {
			t.Fatalf("DeviceAuth = %+v", authorization)
		}
		type result struct {
			token *oauth2.Token
			err   error
		}
		polled := make(chan result, 1)
		go func() {
			token, err := cfg.DeviceAccessToken(ctx, authorization)
			polled <- result{token, err}
		}()
		page := e.AnswerDevice(t, e.NewBrowser(t), authorization.UserCode, servertest.UserPassword, true)
		if !page.Contains("Device approved") {
			t.Fatalf("approval page: %d %s", page.Status, page.Body)
		}
		got := <-polled
		if got.err != nil {
			t.Fatal(got.err)
		}
		if got.token.RefreshToken == "" || got.token.Extra("scope") != "openid profile" {
			t.Fatalf("token = %+v", got.token)
		}
		raw, _ := got.token.Extra("id_token").(string)
		idToken, err := provider.Verifier(&oidc.Config{ClientID: "chit-cli"}).Verify(ctx, raw)
		if err != nil || idToken.Subject != servertest.UserName {
			t.Fatalf("ID token %v: %v", idToken, err)
		}
		// The tokens refresh like any login's.
		if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: got.token.RefreshToken}).Token(); err != nil {
			t.Fatalf("refresh: %v", err)
		}
	})

	t.Run("denied", func(t *testing.T) {
		authorization, err := cfg.DeviceAuth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		page := e.AnswerDevice(t, e.NewBrowser(t), authorization.UserCode, "", false)
		if !page.Contains("Request denied") {
			t.Fatalf("deny page: %d %s", page.Status, page.Body)
		}
		_, err = cfg.DeviceAccessToken(ctx, authorization)
		var retrieve *oauth2.RetrieveError
		if !errors.As(err, &retrieve) || retrieve.ErrorCode != "access_denied" {
			t.Fatalf("polling a denied request: %v", err)
		}
	})
}
