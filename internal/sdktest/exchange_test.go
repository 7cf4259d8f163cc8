package sdktest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

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
