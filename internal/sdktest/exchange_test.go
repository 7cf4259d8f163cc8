package sdktest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/pkg/verifier"
)

func tokenForm(t *testing.T, e *servertest.Env, form url.Values, user, password string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.HTTPBase()+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		t.Fatalf("%s: %d %v", form.Get("grant_type"), resp.StatusCode, err)
	}
	return body.AccessToken
}

// The service a chain of exchanges ends at reads the actors from the
// token offline, with the SDK's verifier: the latest first.
func TestVerifierShowsTheActorChain(t *testing.T) {
	e := servertest.Start(t)
	ctx := context.Background()
	directory := e.Directory()
	secrets := map[string]string{}
	for name, audience := range map[string]string{"gateway": "orders", "orders": "ledger"} {
		secret, err := directory.AddServiceAccount(ctx, accounts.NewServiceAccount{Name: name, TokenExchange: storage.TokenExchange{Audiences: []string{audience}}})
		if err != nil {
			t.Fatal(err)
		}
		secrets[name] = secret
	}
	portal := e.CreateClient(t, "portal", []string{"https://portal.example/cb"}, true, storage.Grants{AllowedScopes: []string{"read"}, AllowedAudiences: []string{"gateway"}})
	token := tokenForm(t, e, url.Values{"grant_type": {"password"}, "username": {servertest.UserName}, "password": {servertest.UserPassword}, "resource": {"gateway"}}, "portal", portal)
	for _, hop := range []struct{ service, audience string }{{"gateway", "orders"}, {"orders", "ledger"}} {
		token = tokenForm(t, e, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {token},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "audience": {hop.audience}}, hop.service, secrets[hop.service])
	}
	runCtx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	ledger, err := verifier.New(runCtx, verifier.Config{Issuer: servertest.Issuer, Audience: "ledger", HTTPClient: rewrite(e, nil), Now: e.Clock.Now, MinRefetchInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := ledger.Verify(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if claims.Subject != servertest.UserName || claims.Actor == nil || claims.Actor.Subject != "service:orders" ||
		claims.Actor.Actor == nil || claims.Actor.Actor.Subject != "service:gateway" || claims.Actor.Actor.Actor != nil {
		t.Fatalf("claims = %+v, actor %+v", claims, claims.Actor)
	}
	plain, err := newVerifier(t, e, nil).Verify(ctx, serviceToken(t, e))
	if err != nil || plain.Actor != nil {
		t.Fatalf("a client-credentials token: %+v, %v", plain, err)
	}
}

// A token whose act is not a chain of at most four subjects, though Chit's
// key signed it, is refused by the verifier rather than half-read.
func TestVerifierRefusesAMalformedActorChain(t *testing.T) {
	e := servertest.Start(t)
	v := newVerifier(t, e, nil)
	deep := map[string]any{"sub": "service:a"}
	for range 4 {
		deep = map[string]any{"sub": "service:a", "act": deep}
	}
	for name, act := range map[string]any{"five deep": deep, "no sub": map[string]any{"act": map[string]any{"sub": "x"}}, "a string": "service:a"} {
		token := servertest.ServerAccessToken(t, e)
		if err := token.Set("act", act); err != nil {
			t.Fatal(err)
		}
		signed := servertest.SignWithServerKey(t, e, jwa.ES256, token, "at+jwt")
		if _, err := v.Verify(context.Background(), signed); !errors.Is(err, verifier.ErrInvalidToken) {
			t.Errorf("%s: %v, want ErrInvalidToken", name, err)
		}
	}
	// Four deep is Chit's bound, and is read whole.
	four := map[string]any{"sub": "service:d", "act": map[string]any{"sub": "service:c", "act": map[string]any{"sub": "service:b", "act": map[string]any{"sub": "service:a"}}}}
	token := servertest.ServerAccessToken(t, e)
	_ = token.Set("act", four)
	claims, err := v.Verify(context.Background(), servertest.SignWithServerKey(t, e, jwa.ES256, token, "at+jwt"))
	if err != nil || claims.Actor.Actor.Actor.Actor.Subject != "service:a" {
		t.Fatalf("a chain of four: %+v, %v", claims, err)
	}
}
