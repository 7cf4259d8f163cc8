package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/pkg/dpop"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/pkg/verifier"
)

// End to end: a service verifying tokens offline with the SDK verifier,
// subscribed to one PostgreSQL replica's revocation feed, refuses a
// person's token once their login is revoked on the other replica, with
// no call to Chit per token.
func TestSDKVerifierRefusesATokenRevokedOnAnotherReplica(t *testing.T) {
	t.Parallel()
	a := servertest.StartOn(t, servertest.Postgres)
	b := a.StartReplica(t)
	secret, err := a.Directory().CreateServiceAccount(t.Context(), "edge", storage.Grants{AllowedScopes: []string{"chit:revocations"}})
	if err != nil {
		t.Fatal(err)
	}
	feedToken, err := authv1.NewAuthServiceClient(b.Conn).Token(context.Background(), &authv1.TokenRequest{Scope: "chit:revocations",
		Credential: &authv1.TokenRequest_ClientCredential{ClientCredential: &authv1.ClientCredential{ClientId: "edge", ClientSecret: secret}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := verifier.New(ctx, verifier.Config{Issuer: servertest.Issuer, Audience: servertest.Audience,
		JWKSURL: b.HTTPBase() + "/.well-known/jwks.json",
		Revocations: &verifier.RevocationConfig{URL: b.HTTPBase() + "/v1/revocations/events",
			TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: feedToken.GetAccessToken()})}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })

	person, err := authv1.NewAuthServiceClient(a.Conn).Token(context.Background(), servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, person.GetAccessToken()); err != nil {
		t.Fatalf("before the revocation: %v", err)
	}
	if err := a.Directory().CreateUser(t.Context(), "bystander", "a bystander's password", accounts.RoleUser, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	other, err := authv1.NewAuthServiceClient(a.Conn).Token(context.Background(), servertest.PasswordRequest("bystander", "a bystander's password"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authv1.NewAuthServiceClient(a.Conn).Revoke(context.Background(), &authv1.RevokeRequest{Token: person.GetAccessToken()}); err != nil {
		t.Fatal(err)
	}
	// Generous: the bench measures how soon (the target is 1 s at p99).
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := v.Verify(ctx, person.GetAccessToken())
		if errors.Is(err, verifier.ErrRevoked) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the verifier still takes the revoked token: %v (feed %+v)", err, v.RevocationStatus())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := v.Verify(ctx, other.GetAccessToken()); err != nil {
		t.Fatalf("another login's token is refused too: %v", err)
	}
}

// A verifier whose service account must use DPoP subscribes with its bound
// token: RevocationConfig.Signer sends each connection's proof (and retries
// with the server's nonce), and the verifier then refuses a revoked login's
// token. Without the signer the same token is refused by the feed, and the
// set stays stale.
func TestSDKVerifierSubscribesWithADPoPBoundToken(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t, func(cfg *server.Config) {
		source, err := dpop.NewNonceSource(5*time.Minute, cfg.Now)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DPoP.Nonces = source
	})
	secret, err := e.Directory().AddServiceAccount(t.Context(), accounts.NewServiceAccount{Name: "bound-edge", RequireDPoP: true,
		Grants: storage.Grants{AllowedScopes: []string{"chit:revocations"}, DefaultScopes: []string{"chit:revocations"}}})
	if err != nil {
		t.Fatal(err)
	}
	signer := newSigner(t)
	// Proofs name the issuer's URLs, as clients know them; the requests
	// then go to the test server's listener.
	toListener := listenerTransport{base: e.HTTPBase()}
	tokenClient := &http.Client{Transport: &dpop.Transport{Signer: signer, Base: toListener}}
	resp, err := tokenClient.PostForm(servertest.Issuer+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"bound-edge"}, "client_secret": {secret}})
	if err != nil {
		t.Fatal(err)
	}
	var issued struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	err = json.NewDecoder(resp.Body).Decode(&issued)
	resp.Body.Close()
	if err != nil || issued.TokenType != "DPoP" {
		t.Fatalf("the bound verifier's token: %d %+v %v", resp.StatusCode, issued, err)
	}
	subscribe := func(signer *dpop.Signer, wait time.Duration) *verifier.Verifier {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		v, err := verifier.New(ctx, verifier.Config{Issuer: servertest.Issuer, Audience: servertest.Audience, HTTPClient: &http.Client{Transport: toListener},
			Revocations: &verifier.RevocationConfig{Signer: signer, InitialWait: wait,
				TokenSource: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: issued.AccessToken, TokenType: "DPoP"})}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = v.Close() })
		return v
	}
	v := subscribe(signer, 10*time.Second)
	if status := v.RevocationStatus(); status.Stale {
		t.Fatalf("with the signer the set is stale: %+v", status)
	}
	unsigned := subscribe(nil, -1)
	for deadline := time.Now().Add(10 * time.Second); unsigned.RevocationStatus().LastError == nil && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if status := unsigned.RevocationStatus(); !status.Stale || status.LastError == nil || !strings.Contains(status.LastError.Error(), "refused") {
		t.Errorf("without the signer: %+v, want a stale set and the feed's refusal", status)
	}

	person, err := authv1.NewAuthServiceClient(e.Conn).Token(context.Background(), servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authv1.NewAuthServiceClient(e.Conn).Revoke(context.Background(), &authv1.RevokeRequest{Token: person.GetAccessToken()}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := v.Verify(context.Background(), person.GetAccessToken())
		if errors.Is(err, verifier.ErrRevoked) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the verifier still takes the revoked token: %v (feed %+v)", err, v.RevocationStatus())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// listenerTransport sends requests for the issuer's URLs to the test
// server's listener at base ("http://127.0.0.1:port").
type listenerTransport struct{ base string }

func (l listenerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	target, err := url.Parse(l.base)
	if err != nil {
		return nil, err
	}
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host, out.Host = target.Scheme, target.Host, ""
	return http.DefaultTransport.RoundTrip(out)
}
