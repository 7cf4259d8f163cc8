// Package client gets Chit tokens for Go programs: golang.org/x/oauth2 token
// sources for password, client-credential and federated workload logins
// (FederatedTokenFile) that refresh before expiry, and gRPC per-RPC
// credentials that attach them to calls; with WithDPoP the tokens are bound
// to a DPoP key (RFC 9449), sent with dpop.Transport or DPoPPerRPCCredentials. It
// depends on x/oauth2, gRPC and pkg/dpop only.
package client

import (
	"context"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"google.golang.org/grpc/credentials"
)

// EarlyRefresh is how long before expiry a token is replaced.
const EarlyRefresh = time.Minute

// TokenURL is Chit's standard token endpoint for an issuer URL.
func TokenURL(issuer string) string { return strings.TrimSuffix(issuer, "/") + "/oauth2/token" }

// ClientCredentials returns a token source for a service account that asks
// for a new token a minute before the current one expires. In a ctx of
// WithDPoP the tokens are DPoP-bound.
func ClientCredentials(ctx context.Context, issuer, clientID, clientSecret string, scopes ...string) oauth2.TokenSource {
	cfg := clientcredentials.Config{ClientID: clientID, ClientSecret: clientSecret, TokenURL: TokenURL(issuer), Scopes: scopes}
	if ctx, bound := dpopContext(ctx); bound {
		return oauth2.ReuseTokenSourceWithExpiry(nil, requireDPoP{cfg.TokenSource(ctx)}, EarlyRefresh)
	}
	return oauth2.ReuseTokenSourceWithExpiry(nil, cfg.TokenSource(ctx), EarlyRefresh)
}

// Password signs a person in and returns a token source that refreshes (with
// the rotating refresh token) a minute before expiry. In a ctx of WithDPoP
// the tokens are DPoP-bound, and so is the refresh token of chit-cli (a
// public client): refreshing takes a proof of the same key.
func Password(ctx context.Context, issuer, username, password string, scopes ...string) (oauth2.TokenSource, error) {
	cfg := &oauth2.Config{ClientID: "chit-cli", Endpoint: oauth2.Endpoint{TokenURL: TokenURL(issuer), AuthStyle: oauth2.AuthStyleInParams}, Scopes: scopes}
	ctx, bound := dpopContext(ctx)
	token, err := cfg.PasswordCredentialsToken(ctx, username, password)
	if err != nil {
		return nil, err
	}
	var refresh oauth2.TokenSource = cfg.TokenSource(ctx, token)
	if bound {
		if err := checkTokenType(token.TokenType); err != nil {
			return nil, err
		}
		refresh = requireDPoP{refresh}
	}
	return oauth2.ReuseTokenSourceWithExpiry(token, refresh, EarlyRefresh), nil
}

// PerRPCCredentials attaches a token source's token to every gRPC call as
// `authorization: Bearer ...`. Tokens are secrets: unless allowInsecure is
// set (tests, loopback), gRPC refuses to send them without TLS.
func PerRPCCredentials(source oauth2.TokenSource, allowInsecure bool) credentials.PerRPCCredentials {
	return perRPC{source: source, allowInsecure: allowInsecure}
}

type perRPC struct {
	source        oauth2.TokenSource
	allowInsecure bool
}

func (p perRPC) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	token, err := p.source.Token()
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + token.AccessToken}, nil
}

func (p perRPC) RequireTransportSecurity() bool { return !p.allowInsecure }
