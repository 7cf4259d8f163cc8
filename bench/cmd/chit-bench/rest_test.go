package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// echo answers with what it was sent: method, path, headers and body.
func echo(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		if r.URL.Path == "/fail" {
			http.Error(w, `{"code":16,"message":"no"}`, http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, strings.Join([]string{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(body)}, "|"))
	}
}

func TestRESTClientSendsMethodPathHeadersAndBody(t *testing.T) {
	server := httptest.NewServer(echo(t))
	defer server.Close()
	client := newRESTClient(server.Listener.Addr().String(), nil, 2)

	got, err := client.call(context.Background(), http.MethodPost, "/v1/auth/token", []byte(`{"a":1}`), "Bearer abc")
	if err != nil {
		t.Fatal(err)
	}
	if want := `POST|/v1/auth/token|Bearer abc|application/json|{"a":1}`; string(got) != want {
		t.Fatalf("server saw %q, want %q", got, want)
	}
	got, err = client.call(context.Background(), http.MethodGet, "/v1/auth/check", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := "GET|/v1/auth/check|||"; string(got) != want {
		t.Fatalf("server saw %q, want %q", got, want)
	}
}

func TestRESTClientReportsAnErrorStatusWithItsBody(t *testing.T) {
	server := httptest.NewServer(echo(t))
	defer server.Close()
	client := newRESTClient(server.Listener.Addr().String(), nil, 1)

	_, err := client.call(context.Background(), http.MethodGet, "/fail", nil, "")
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") || !strings.Contains(err.Error(), `"message":"no"`) {
		t.Fatalf("got %v, want the status and the body", err)
	}
}

// The connections are kept alive: many calls from few callers open no more
// connections than there are callers.
func TestRESTClientReusesConnections(t *testing.T) {
	var opened atomic.Int32
	server := httptest.NewUnstartedServer(echo(t))
	server.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			opened.Add(1)
		}
	}
	server.Start()
	defer server.Close()
	client := newRESTClient(server.Listener.Addr().String(), nil, 2)
	for range 50 {
		if _, err := client.call(context.Background(), http.MethodGet, "/", nil, ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := opened.Load(); n != 1 {
		t.Fatalf("50 sequential calls opened %d connections, want 1", n)
	}
}

func TestRESTClientCallsOverTLS(t *testing.T) {
	server := httptest.NewUnstartedServer(echo(t))
	// The refused handshake below would be logged.
	server.Config.ErrorLog = log.New(io.Discard, "", 0)
	server.StartTLS()
	defer server.Close()
	roots := x509.NewCertPool()
	roots.AddCert(server.Certificate())

	client := newRESTClient(server.Listener.Addr().String(), &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, 1)
	if _, err := client.call(context.Background(), http.MethodGet, "/", nil, ""); err != nil {
		t.Fatal(err)
	}
	// Without the CA the server is not trusted.
	untrusting := newRESTClient(server.Listener.Addr().String(), &tls.Config{MinVersion: tls.VersionTLS12}, 1)
	if _, err := untrusting.call(context.Background(), http.MethodGet, "/", nil, ""); err == nil {
		t.Fatal("a server signed by an unknown CA was trusted")
	}
}

func TestRESTClientDoesNotCallWithADoneContext(t *testing.T) {
	var calls atomic.Int32
	server := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
	defer server.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := newRESTClient(server.Listener.Addr().String(), nil, 1).call(ctx, http.MethodGet, "/", nil, ""); err == nil {
		t.Fatal("a call with a canceled context succeeded")
	}
	if calls.Load() != 0 {
		t.Fatal("a call with a canceled context reached the server")
	}
}
