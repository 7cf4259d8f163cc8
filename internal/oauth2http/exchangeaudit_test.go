package oauth2http_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

// Each token exchange writes one audit line, granted or refused: the
// exchanging service, the audience, the subject and scopes when granted,
// the reason when refused; never a token.
func TestTokenExchangesWriteAuditLines(t *testing.T) {
	e := servertest.Start(t)
	secret, subject := exchangeSetup(t, e)
	form := url.Values{"grant_type": {tokenExchangeGrant}, "subject_token": {subject}, "subject_token_type": {accessTokenType}, "audience": {"ledger"}}
	resp, body := postForm(t, e, "/oauth2/token", form, "gateway", secret)
	if resp.StatusCode != 200 {
		t.Fatalf("exchange: %d %v", resp.StatusCode, body)
	}
	exchanged := body["access_token"].(string)
	form.Set("audience", "payroll")
	if resp, body := postForm(t, e, "/oauth2/token", form, "gateway", secret); resp.StatusCode != 400 {
		t.Fatalf("an audience outside the policy: %d %v", resp.StatusCode, body)
	}
	var granted, refused []map[string]any
	for _, text := range strings.Split(e.Logs.String(), "\n") {
		var line map[string]any
		if json.Unmarshal([]byte(text), &line) != nil || line["audit"] != true {
			continue
		}
		switch line["event"] {
		case "token_exchange":
			granted = append(granted, line)
		case "token_exchange_refused":
			refused = append(refused, line)
		}
	}
	if len(granted) != 1 || granted[0]["service"] != "gateway" || granted[0]["audience"] != "ledger" || granted[0]["subject"] != servertest.UserName {
		t.Fatalf("granted exchanges' audit lines: %v", granted)
	}
	if len(refused) != 1 || refused[0]["service"] != "gateway" || refused[0]["audience"] != "payroll" || refused[0]["reason"] == "" {
		t.Fatalf("refused exchanges' audit lines: %v", refused)
	}
	for _, token := range []string{subject, exchanged} {
		if strings.Contains(e.Logs.String(), token[strings.LastIndex(token, ".")+1:]) {
			t.Fatal("a token is in the logs")
		}
	}
}

// An exchange is never addressed to a registered OAuth client, even one its
// policy names (registered before or after the policy was set): the token
// would carry the person's sub with the client's id as aud, as the client's
// ID tokens do.
func TestTokenExchangeIsNeverAddressedToAClient(t *testing.T) {
	onEachBackend(t, func(t *testing.T, e *servertest.Env) {
		secret, subject := exchangeSetup(t, e)
		// ledger is in gateway's policy; it becomes a client's id.
		e.CreateClient(t, "ledger", []string{"https://ledger.example/cb"}, false, storage.Grants{})
		for _, audience := range []string{"ledger", "portal"} {
			form := url.Values{"grant_type": {tokenExchangeGrant}, "subject_token": {subject}, "subject_token_type": {accessTokenType}, "audience": {audience}}
			resp, body := postForm(t, e, "/oauth2/token", form, "gateway", secret)
			if resp.StatusCode != 400 || body["error"] != "invalid_target" {
				t.Fatalf("an exchange for client %s: %d %v", audience, resp.StatusCode, body)
			}
		}
		// Chit's own audience, which the policy names, still works.
		form := url.Values{"grant_type": {tokenExchangeGrant}, "subject_token": {subject}, "subject_token_type": {accessTokenType}}
		if resp, body := postForm(t, e, "/oauth2/token", form, "gateway", secret); resp.StatusCode != 200 {
			t.Fatalf("an exchange for Chit's audience: %d %v", resp.StatusCode, body)
		}
	})
}
