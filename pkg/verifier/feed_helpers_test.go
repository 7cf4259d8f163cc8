package verifier_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/oauth2"

	"github.com/chit-auth/chit/pkg/verifier"
)

const testAudience = "chit"

// fakeClock is the verifier's clock in these tests: staleness, expiry and
// token times move only when a test says so.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testIssuer is a fake Chit: a JWKS with two signing keys, and a revocation
// feed whose every connection the test drives.
type testIssuer struct {
	server *httptest.Server
	clock  *fakeClock
	keys   map[string]jwk.Key
	conns  chan *feedConn
	closed chan struct{}
}

func newTestIssuer(tb testing.TB) *testIssuer {
	tb.Helper()
	ti := &testIssuer{
		clock:  &fakeClock{now: time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)},
		keys:   map[string]jwk.Key{},
		conns:  make(chan *feedConn),
		closed: make(chan struct{}),
	}
	public := jwk.NewSet()
	for _, kid := range []string{"kid-1", "kid-2"} {
		_, private, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		key, err := jwk.FromRaw(private)
		if err != nil {
			tb.Fatal(err)
		}
		_ = key.Set(jwk.KeyIDKey, kid)
		_ = key.Set(jwk.AlgorithmKey, jwa.EdDSA)
		ti.keys[kid] = key
		pub, err := key.PublicKey()
		if err != nil {
			tb.Fatal(err)
		}
		_ = public.AddKey(pub)
	}
	jwks, err := json.Marshal(public)
	if err != nil {
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(jwks) })
	mux.HandleFunc("GET /v1/revocations/events", ti.serveFeed)
	ti.server = httptest.NewServer(mux)
	tb.Cleanup(ti.server.Close)
	tb.Cleanup(func() { close(ti.closed) }) // runs first: handlers return, then the server closes
	return ti
}

// feedConn is one connection to the feed, as the server saw it.
type feedConn struct {
	LastEventID   string
	HasCursor     bool
	Authorization string
	actions       chan func(http.ResponseWriter) bool
	gone          chan struct{}
}

func (ti *testIssuer) serveFeed(w http.ResponseWriter, r *http.Request) {
	conn := &feedConn{
		LastEventID:   r.Header.Get("Last-Event-ID"),
		Authorization: r.Header.Get("Authorization"),
		actions:       make(chan func(http.ResponseWriter) bool),
		gone:          make(chan struct{}),
	}
	_, conn.HasCursor = r.Header["Last-Event-Id"]
	defer close(conn.gone)
	select {
	case ti.conns <- conn:
	case <-ti.closed:
		return
	case <-r.Context().Done():
		return
	}
	for {
		select {
		case action := <-conn.actions:
			if !action(w) {
				return
			}
		case <-ti.closed:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// accept waits for the verifier's next connection.
func (ti *testIssuer) accept(tb testing.TB) *feedConn {
	tb.Helper()
	select {
	case conn := <-ti.conns:
		return conn
	case <-time.After(20 * time.Second):
		tb.Fatal("the verifier did not connect to the feed")
		return nil
	}
}

// do runs action in the connection's handler; false if it is gone.
func (c *feedConn) do(action func(http.ResponseWriter) bool) bool {
	select {
	case c.actions <- action:
		return true
	case <-c.gone:
		return false
	}
}

// open answers 200 with an event stream.
func (c *feedConn) open() {
	c.do(func(w http.ResponseWriter) bool {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		return true
	})
}

// refuse answers status and ends the connection.
func (c *feedConn) refuse(status int) {
	c.do(func(w http.ResponseWriter) bool {
		http.Error(w, http.StatusText(status), status)
		return false
	})
}

// send writes raw stream text.
func (c *feedConn) send(text ...string) {
	c.do(func(w http.ResponseWriter) bool {
		for _, t := range text {
			_, _ = w.Write([]byte(t))
		}
		w.(http.Flusher).Flush()
		return true
	})
}

// end closes the stream from the server's side.
func (c *feedConn) end() {
	c.do(func(http.ResponseWriter) bool { return false })
	<-c.gone
}

// revocation is an `event: revocation` record.
func revocation(cursor string, fields map[string]any) string {
	fields["cursor"] = cursor
	data, _ := json.Marshal(fields)
	return fmt.Sprintf("id: %s\nevent: revocation\ndata: %s\n\n", cursor, data)
}

func heartbeat(cursor string, at time.Time) string {
	data, _ := json.Marshal(map[string]string{"cursor": cursor, "time": at.Format(time.RFC3339Nano)})
	return fmt.Sprintf("event: heartbeat\ndata: %s\n\n", data)
}

func stamp(t time.Time) string { return t.Format(time.RFC3339Nano) }

type staticToken string

func (s staticToken) Token() (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: string(s), TokenType: "Bearer"}, nil
}

// revocationConfig waits for nothing in New, so that the test serves the
// first connection, and retries at once: tests wait on connections, not on
// time.
func revocationConfig() *verifier.RevocationConfig {
	return &verifier.RevocationConfig{
		TokenSource: staticToken("feed-token"),
		InitialWait: -1,
		ReadTimeout: time.Minute,
		RetryMin:    time.Millisecond,
		RetryMax:    5 * time.Millisecond,
		Logger:      slog.New(slog.DiscardHandler),
	}
}

func (ti *testIssuer) newVerifier(tb testing.TB, revocations *verifier.RevocationConfig) *verifier.Verifier {
	tb.Helper()
	v, err := verifier.New(context.Background(), verifier.Config{
		Issuer: ti.server.URL, Audience: testAudience, Now: ti.clock.Now, Revocations: revocations,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = v.Close() })
	return v
}

// token signs an access token issued now by the fake clock; claims add to
// or replace the defaults (a nil value removes one).
func (ti *testIssuer) token(tb testing.TB, kid string, claims map[string]any) string {
	tb.Helper()
	now := ti.clock.Now()
	all := map[string]any{
		"iss": ti.server.URL, "aud": testAudience, "sub": "user:someone", "role": "USER",
		"iat": now.Unix(), "iat_us": now.UnixMicro(), "exp": now.Add(time.Hour).Unix(),
	}
	for name, value := range claims {
		if value == nil {
			delete(all, name)
		} else {
			all[name] = value
		}
	}
	builder := jwt.NewBuilder()
	for name, value := range all {
		builder = builder.Claim(name, value)
	}
	token, err := builder.Build()
	if err != nil {
		tb.Fatal(err)
	}
	headers := jws.NewHeaders()
	_ = headers.Set(jws.TypeKey, "at+jwt")
	signed, err := jwt.Sign(token, jwt.WithKey(jwa.EdDSA, ti.keys[kid], jws.WithProtectedHeaders(headers)))
	if err != nil {
		tb.Fatal(err)
	}
	return string(signed)
}

// eventually polls cond with a generous deadline: the feed is read on its
// own goroutine.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func fresh(v *verifier.Verifier) func() bool {
	return func() bool { return !v.RevocationStatus().Stale }
}
