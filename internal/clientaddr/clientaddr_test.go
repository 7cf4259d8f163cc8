package clientaddr

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestResolve(t *testing.T) {
	proxies, err := NewResolver([]string{"10.0.0.0/8", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		resolver  *Resolver
		peer      string
		forwarded []string
		want      string
	}{
		{"no proxies: the peer, whatever the header says", nil, "203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5"},
		{"untrusted peer: header ignored", proxies, "203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5"},
		{"trusted proxy names the client", proxies, "10.1.2.3:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"a forged hop before the real client is skipped", proxies, "10.1.2.3:4000", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1"},
		{"a chain of trusted proxies", proxies, "10.1.2.3:4000", []string{"198.51.100.1, 192.0.2.7", "10.9.9.9"}, "198.51.100.1"},
		{"only trusted hops: the leftmost", proxies, "10.1.2.3:4000", []string{"10.0.0.1"}, "10.0.0.1"},
		{"malformed hop: the last vouched-for address", proxies, "10.1.2.3:4000", []string{"198.51.100.1, not-an-ip"}, "10.1.2.3"},
		{"trusted proxy without a header", proxies, "10.1.2.3:4000", nil, "10.1.2.3"},
		{"bare address peer", nil, "203.0.113.5", nil, "203.0.113.5"},
		{"IPv4-mapped IPv6 peer", proxies, "[::ffff:10.1.2.3]:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"not an IP", nil, "pipe", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.resolver.Resolve(tc.peer, tc.forwarded); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNewResolverRefusesNonsense(t *testing.T) {
	if _, err := NewResolver([]string{"10.0.0.0/33"}); err == nil {
		t.Fatal("an invalid prefix was accepted")
	}
	if _, err := NewResolver([]string{"proxy.internal"}); err == nil {
		t.Fatal("a host name was accepted")
	}
}

func TestMiddlewareRecordsTheAddress(t *testing.T) {
	proxies, err := NewResolver([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	handler := proxies.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		got = From(r.Context())
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.RemoteAddr = "10.0.0.9:1234"
	req.Header.Set("X-Forwarded-For", "198.51.100.1")
	handler.ServeHTTP(httptest.NewRecorder(), req)
	if got != "198.51.100.1" {
		t.Fatalf("recorded %q, want the forwarded client", got)
	}
}
