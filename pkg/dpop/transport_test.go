package dpop

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// nonceServer checks every request's proof and demands its nonces, as
// Chit does with --dpop-nonce: a resource path answers 401 with a DPoP
// challenge, /token answers 400 with an OAuth error.
type nonceServer struct {
	*httptest.Server
	nonces   *NonceSource
	requests atomic.Int32
	bodies   chan string
}

func newNonceServer(t *testing.T, accessToken string) *nonceServer {
	t.Helper()
	nonces, err := NewNonceSource(time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &nonceServer{nonces: nonces, bodies: make(chan string, 10)}
	verifier := NewVerifier(Config{Nonces: nonces})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		body, _ := io.ReadAll(r.Body)
		req := Request{Method: r.Method, URL: "http://" + r.Host + r.URL.Path}
		tokenRequest := r.URL.Path == "/token"
		if !tokenRequest {
			req.AccessToken = accessToken
			if r.Header.Get("Authorization") != "DPoP "+accessToken {
				http.Error(w, "no DPoP token", http.StatusUnauthorized)
				return
			}
		}
		_, err := verifier.Verify(r.Header.Get(ProofHeader), req)
		if refusal, ok := err.(*Error); ok {
			if refusal.Nonce != "" {
				w.Header().Set(NonceHeader, refusal.Nonce)
			}
			if tokenRequest {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, `{"error":%q,"error_description":%q}`, refusal.Code, refusal.Description)
				return
			}
			w.Header().Set("WWW-Authenticate", `DPoP error="`+refusal.Code+`"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		s.bodies <- string(body)
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

func TestTransportRetriesOnceWithTheServersNonce(t *testing.T) {
	const accessToken = "access-token"
	server := newNonceServer(t, accessToken)
	signer, err := GenerateSigner()
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &Transport{Signer: signer, Tokens: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: accessToken})}}
	for i, want := range []int32{2, 3} { // the first call meets the nonce demand, the second knows the nonce
		resp, err := client.Post(server.URL+"/orders?page=2", "text/plain", strings.NewReader("body"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("call %d: %s", i, resp.Status)
		}
		if got := server.requests.Load(); got != want {
			t.Fatalf("call %d: %d requests in all, want %d", i, got, want)
		}
		if body := <-server.bodies; body != "body" {
			t.Fatalf("call %d: the server read %q", i, body)
		}
	}
}

func TestTransportTokenRequestNonce(t *testing.T) {
	server := newNonceServer(t, "")
	signer, _ := GenerateSigner()
	client := &http.Client{Transport: &Transport{Signer: signer}}
	resp, err := client.Post(server.URL+"/token", "application/x-www-form-urlencoded", strings.NewReader("grant_type=client_credentials"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || server.requests.Load() != 2 || <-server.bodies != "grant_type=client_credentials" {
		t.Fatalf("%s after %d requests", resp.Status, server.requests.Load())
	}
}

// TestTransportDoesNotRetry: a body that cannot be read again, or a
// refusal for another reason, is answered as it came.
func TestTransportDoesNotRetry(t *testing.T) {
	server := newNonceServer(t, "access-token")
	signer, _ := GenerateSigner()
	transport := &Transport{Signer: signer, Tokens: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "access-token"})}
	req, _ := http.NewRequest(http.MethodPost, server.URL+"/orders", io.NopCloser(strings.NewReader("once")))
	resp, err := transport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || server.requests.Load() != 1 {
		t.Fatalf("%s after %d requests, want the 401 after 1", resp.Status, server.requests.Load())
	}

	// A token the server does not take: 401 without a nonce demand.
	wrong := &Transport{Signer: signer, Tokens: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "other"})}
	resp, err = (&http.Client{Transport: wrong}).Get(server.URL + "/orders")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || server.requests.Load() != 2 {
		t.Fatalf("%s after %d requests, want the 401 after 2", resp.Status, server.requests.Load())
	}
}

// TestTransportKeepsTheErrorBody: the 400 read for its error reaches the
// caller whole.
func TestTransportKeepsTheErrorBody(t *testing.T) {
	long := `{"error":"invalid_grant","error_description":"` + strings.Repeat("x", maxErrorBody) + `"}`
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(NonceHeader, "n")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, long)
	}))
	t.Cleanup(server.Close)
	signer, _ := GenerateSigner()
	resp, err := (&http.Client{Transport: &Transport{Signer: signer}}).Post(server.URL, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != long {
		t.Fatalf("body of %d bytes, want %d", len(body), len(long))
	}
}
