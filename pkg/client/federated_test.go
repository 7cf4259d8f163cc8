package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// A fake /oauth2/token: it answers jwt-bearer requests with a token naming
// the assertion it got, for two minutes.
func fakeTokenEndpoint(t *testing.T, exchanges *atomic.Int32) *httptest.Server {
	t.Helper()
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/oauth2/token" || r.PostFormValue("grant_type") != JWTBearerGrant {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.PostFormValue("assertion") == "refused" {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": "assertion refused: claim \"sub\" does not match its rule"})
			return
		}
		exchanges.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "for:" + r.PostFormValue("assertion") + ":" + r.PostFormValue("scope"),
			"token_type": "Bearer", "expires_in": 120})
	}))
	t.Cleanup(server.Close)
	return server
}

func TestFederatedTokenFile(t *testing.T) {
	var exchanges atomic.Int32
	server := fakeTokenEndpoint(t, &exchanges)
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("first-jwt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	source := FederatedTokenFile(context.Background(), server.URL, path, "deploy").(*federatedSource)
	source.now = func() time.Time { return now }
	token, err := source.Token()
	if err != nil || token.AccessToken != "for:first-jwt:deploy" || !token.Expiry.Equal(now.Add(2*time.Minute)) {
		t.Fatalf("token %+v, %v", token, err)
	}
	// Reused while it is fresh; the file is not even read.
	now = now.Add(80 * time.Second)
	if again, _ := source.Token(); again != token || exchanges.Load() != 1 {
		t.Fatalf("exchanged again while fresh (%d exchanges)", exchanges.Load())
	}
	// The platform rotated the file; once the token nears expiry (within a
	// quarter of its life) the new file's token is exchanged.
	if err := os.WriteFile(path, []byte("second-jwt"), 0o600); err != nil {
		t.Fatal(err)
	}
	now = now.Add(11 * time.Second)
	token, err = source.Token()
	if err != nil || token.AccessToken != "for:second-jwt:deploy" || exchanges.Load() != 2 {
		t.Fatalf("after rotation: %+v, %v (%d exchanges)", token, err, exchanges.Load())
	}
}

func TestFederatedTokenErrors(t *testing.T) {
	var exchanges atomic.Int32
	server := fakeTokenEndpoint(t, &exchanges)
	_, err := FederatedToken(context.Background(), server.URL, func() (string, error) { return "refused", nil }).Token()
	var retrieve *oauth2.RetrieveError
	if !errors.As(err, &retrieve) || retrieve.ErrorCode != "invalid_grant" {
		t.Fatalf("a refusal: %v", err)
	}
	if _, err := FederatedTokenFile(context.Background(), server.URL, filepath.Join(t.TempDir(), "missing")).Token(); err == nil {
		t.Fatal("a missing token file gave a token")
	}
	empty := filepath.Join(t.TempDir(), "empty")
	_ = os.WriteFile(empty, nil, 0o600)
	if _, err := FederatedTokenFile(context.Background(), server.URL, empty).Token(); err == nil {
		t.Fatal("an empty token file was sent")
	}
}
