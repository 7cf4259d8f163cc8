package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
)

// routes are every REST route of the API (proto/chit/auth/v1/auth_api.yaml).
var routes = []struct{ method, path string }{
	{http.MethodPost, "/v1/auth/token"},
	{http.MethodPost, "/v1/auth/token/refresh"},
	{http.MethodPost, "/v1/auth/cli/login"},
	{http.MethodPost, "/v1/auth/cli/refresh"},
	{http.MethodGet, "/v1/auth/check"},
	{http.MethodGet, "/v1/auth/authorize-url"},
	{http.MethodGet, "/v1/auth/status"},
	{http.MethodPost, "/v1/auth/revoke"},
	{http.MethodPost, "/auth/providers"},
	{http.MethodPost, "/auth/providers/claim"},
	{http.MethodPost, "/auth/providers/renew"},
	{http.MethodPost, "/auth/providers/refresh"},
	{http.MethodGet, "/auth/providers/retrieveKey"},
	{http.MethodPost, "/auth/providers/refreshAsOrchestrator"},
	{http.MethodPost, "/auth/providers/generateKeyPair"},
}

// unimplemented answers every RPC with UNIMPLEMENTED: the fuzz target is the
// gateway's decoding of requests, not the core.
type unimplemented struct {
	authv1.UnimplementedAuthServiceServer
	authv1.UnimplementedAuthProvidersServer
}

func fuzzHandler(f *testing.F) http.Handler {
	// The server calls the handlers the same way: an in-process channel.
	conn := NewInProcess(nil, nil, 0)
	authv1.RegisterAuthServiceServer(conn, unimplemented{})
	authv1.RegisterAuthProvidersServer(conn, unimplemented{})
	handler, err := New(context.Background(), conn, Options{JWKS: func() []byte { return []byte(`{"keys":[]}`) }, OpenAPI: []byte(`{}`)})
	if err != nil {
		f.Fatal(err)
	}
	return handler
}

// FuzzRequestDecoders sends arbitrary bodies and query strings to every REST
// route: each answer is a JSON error or reaches the backend; none is a panic
// or a 500.
func FuzzRequestDecoders(f *testing.F) {
	handler := fuzzHandler(f)
	f.Add(uint8(0), []byte(`{"passwordCredential":{"username":"alice","password":"x"}}`), "")
	f.Add(uint8(11), []byte(`{"items":[{"refreshToken":"x"}]}`), "")
	f.Add(uint8(5), []byte(nil), "state=s&redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fcb&code_challenge=abc")
	f.Add(uint8(12), []byte(nil), "id=hippo")
	f.Add(uint8(8), []byte(`{"items":[{"id":1}]}`), "")
	f.Add(uint8(1), []byte(`{"refreshToken":`), "")
	f.Fuzz(func(t *testing.T, route uint8, body []byte, query string) {
		r := routes[int(route)%len(routes)]
		req := httptest.NewRequest(r.method, r.path, bytes.NewReader(body))
		req.URL.RawQuery = query
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusBadRequest, http.StatusNotImplemented, http.StatusRequestEntityTooLarge, http.StatusNotFound, http.StatusMethodNotAllowed:
		default:
			t.Fatalf("%s %s?%q with %q: HTTP %d %s", r.method, r.path, query, body, rec.Code, rec.Body)
		}
		if rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("answer is not JSON: %q", rec.Body)
		}
	})
}
