package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/ssf"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/pkg/dpop"
)

// Whatever a receiver sends, the poll answers a 4xx naming the problem and
// moves no stream: malformed JSON, wrong types, numbers out of range,
// another stream's or an unknown stream's jtis, cursors out of range, odd
// stream ids.
func TestSharedSignalsPollOddInput(t *testing.T) {
	e := servertest.Start(t)
	risk := serviceToken(t, e, "risk", ssf.Scope)
	ctx := t.Context()
	for _, spec := range []ssf.StreamSpec{
		{ID: "risk", Delivery: "poll", Receiver: "risk", Audience: "risk-engine"},
		{ID: "risk2", Delivery: "poll", Receiver: "risk", Audience: "risk-engine"},
	} {
		if _, err := e.Server.SecurityEvents().CreateStream(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Store.RevokeRefreshFamily(ctx, "family-1", e.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	before := waitStream(t, e, "risk", func(storage.SecurityEventStream) bool { return true }).Position
	for _, c := range []struct{ name, stream, body string }{
		{"empty body", "risk", ``},
		{"an array", "risk", `[]`},
		{"a string", "risk", `"x"`},
		{"a huge maxEvents", "risk", `{"maxEvents":1e400,"returnImmediately":true}`},
		{"maxEvents beyond int64", "risk", `{"maxEvents":99999999999999999999,"returnImmediately":true}`},
		{"a fractional maxEvents", "risk", `{"maxEvents":1.5,"returnImmediately":true}`},
		{"a negative maxEvents", "risk", `{"maxEvents":-1,"returnImmediately":true}`},
		{"a duplicate key ending negative", "risk", `{"maxEvents":1,"maxEvents":-1,"returnImmediately":true}`},
		{"ack an object", "risk", `{"ack":{"a":1}}`},
		{"ack numbers", "risk", `{"ack":[1]}`},
		{"setErrs an array", "risk", `{"setErrs":["x"]}`},
		{"a setErr null", "risk", `{"setErrs":{"risk:1-0-1":null}}`},
		{"another stream's jti", "risk", `{"ack":["risk2:1-0-1"],"returnImmediately":true}`},
		{"a jti ahead of the head", "risk", `{"ack":["risk:1-0-99999"],"returnImmediately":true}`},
		{"a cursor beyond uint64", "risk", `{"ack":["risk:1-99999999999999999999-1"],"returnImmediately":true}`},
		{"a negative cursor", "risk", `{"ack":["risk:-1-0-1"],"returnImmediately":true}`},
		{"an empty jti", "risk", `{"ack":[""],"returnImmediately":true}`},
		{"two JSON values", "risk", `{"returnImmediately":true}{}`},
		{"deep nesting", "risk", `{"x":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`},
		{"a body too large", "risk", `{"ack":["` + strings.Repeat("a", 300<<10) + `"]}`},
		{"an unknown stream", "nope", `{"returnImmediately":true}`},
		{"a NUL and quote in the id", "%00%22", `{"returnImmediately":true}`},
		{"an escaped traversal", "..%2Frisk", `{"returnImmediately":true}`},
		{"a very long id", strings.Repeat("a", 4000), `{"returnImmediately":true}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, answer, _ := pollStream(t, e, c.stream, risk, c.body)
			if status < 400 || status >= 500 {
				t.Fatalf("answered %d %v, want a 4xx", status, answer)
			}
			if description, _ := answer["description"].(string); description == "" || answer["err"] == "" {
				t.Fatalf("answered %d %v: no err and description", status, answer)
			}
		})
	}
	if after := waitStream(t, e, "risk", func(storage.SecurityEventStream) bool { return true }).Position; after != before {
		t.Fatalf("refused polls moved the stream from %v to %v", before, after)
	}
}

// One receiver's token cannot hold more than ssf.MaxLongPolls long polls of
// its stream waiting on a replica: the next is 429, so a flood of
// connections does not turn every revocation into as many store reads.
func TestSharedSignalsLongPollsAreBounded(t *testing.T) {
	e := servertest.Start(t)
	risk := serviceToken(t, e, "risk", ssf.Scope)
	if _, err := e.Server.SecurityEvents().CreateStream(t.Context(), ssf.StreamSpec{ID: "risk", Delivery: "poll", Receiver: "risk", Audience: "risk-engine"}); err != nil {
		t.Fatal(err)
	}
	// One more than the bound at once: the first answer, long before a
	// long poll's 25 s, is the one refused.
	ctx, cancel := context.WithCancel(t.Context())
	var waiting sync.WaitGroup
	t.Cleanup(func() { cancel(); waiting.Wait() })
	type answer struct {
		status int
		body   map[string]any
	}
	answers := make(chan answer, ssf.MaxLongPolls+1)
	for range ssf.MaxLongPolls + 1 {
		waiting.Add(1)
		go func() {
			defer waiting.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.HTTPBase()+"/ssf/poll/risk", strings.NewReader(`{}`))
			req.Header.Set("Authorization", "Bearer "+risk)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			answers <- answer{resp.StatusCode, body}
		}()
	}
	select {
	case got := <-answers:
		if description, _ := got.body["description"].(string); got.status != http.StatusTooManyRequests || !strings.Contains(description, "returnImmediately") {
			t.Fatalf("with %d long polls waiting, another answered %d %v, want 429 naming returnImmediately", ssf.MaxLongPolls, got.status, got.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%d long polls of one stream all wait", ssf.MaxLongPolls+1)
	}
	if status, answer, _ := pollStream(t, e, "risk", risk, `{"returnImmediately":true}`); status != http.StatusOK {
		t.Fatalf("a poll that returns at once: %d %v", status, answer)
	}
}

// With DPoP nonces on, a poll with a proof is answered with the current
// nonce, as every other endpoint's answer is (RFC 9449 §8.2).
func TestSharedSignalsPollNamesTheDPoPNonce(t *testing.T) {
	e := servertest.Start(t, func(cfg *server.Config) {
		source, err := dpop.NewNonceSource(5*time.Minute, cfg.Now)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DPoP.Nonces = source
	})
	secret, err := e.Directory().CreateServiceAccount(t.Context(), "risk", storage.Grants{AllowedScopes: []string{ssf.Scope}, DefaultScopes: []string{ssf.Scope}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Server.SecurityEvents().CreateStream(t.Context(), ssf.StreamSpec{ID: "risk", Delivery: "poll", Receiver: "risk", Audience: "risk-engine"}); err != nil {
		t.Fatal(err)
	}
	signer := newSigner(t)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"risk"}, "client_secret": {secret}}
	nonce := oauthToken(t, e, form, proof(t, signer, http.MethodPost, "/oauth2/token", "", "")).header.Get("DPoP-Nonce")
	answer := oauthToken(t, e, form, proof(t, signer, http.MethodPost, "/oauth2/token", "", nonce))
	access, _ := answer.body["access_token"].(string)
	if answer.status != http.StatusOK || access == "" {
		t.Fatalf("a DPoP-bound token: %d %v", answer.status, answer.body)
	}
	status, got, header := pollStreamWith(t, e, "risk", "DPoP "+access, proof(t, signer, http.MethodPost, "/ssf/poll/risk", access, nonce), `{"returnImmediately":true}`)
	if status != http.StatusOK || header.Get("DPoP-Nonce") != nonce {
		t.Fatalf("a poll: %d %v, DPoP-Nonce %q, want %q", status, got, header.Get("DPoP-Nonce"), nonce)
	}
}
