package oauth2http_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// BenchmarkIntrospect is /oauth2/introspect by a service authenticated with
// Basic, beside GET /healthz (the liveness probe, the bench's reference),
// through the whole HTTP port in this process, as chitd serves by default:
// the service account cache on, info-level logs. Compare the two figures of
// one run (or profile with -cpuprofile); the load generator's scenario of
// the same name measures the ratio under load.
func BenchmarkIntrospect(b *testing.B) {
	e := servertest.Start(b, func(c *server.Config) {
		c.ServiceAccountCacheTTL = accounts.DefaultServiceAccountCacheTTL
		c.Logger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	send := func(b *testing.B, req *http.Request, wantInBody string) {
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), wantInBody) {
			b.Fatalf("%d %s (%v), want 200 with %s", resp.StatusCode, body, err, wantInBody)
		}
	}
	basic := func(req *http.Request) {
		req.SetBasicAuth(url.QueryEscape(servertest.ServiceName), url.QueryEscape(e.ServiceSecret))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	grant, _ := http.NewRequest(http.MethodPost, e.HTTPBase()+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	basic(grant)
	resp, err := client.Do(grant)
	if err != nil {
		b.Fatal(err)
	}
	var token struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&token)
	resp.Body.Close()
	if err != nil || token.AccessToken == "" {
		b.Fatalf("client credentials: %v", err)
	}
	form := "token=" + url.QueryEscape(token.AccessToken)
	b.Run("introspect, Basic", func(b *testing.B) {
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodPost, e.HTTPBase()+"/oauth2/introspect", strings.NewReader(form))
			basic(req)
			send(b, req, `"active":true`)
		}
	})
	b.Run("healthz", func(b *testing.B) {
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodGet, e.HTTPBase()+"/healthz", nil)
			send(b, req, "SERVING")
		}
	})
}
