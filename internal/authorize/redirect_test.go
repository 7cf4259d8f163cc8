package authorize

import (
	"strings"
	"testing"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
)

// A loopback redirect names a port a listener can have (1 to 65535, in
// plain decimal) or none, and no fragment at all: RFC 6749 §3.1.2 forbids a
// fragment component, and an empty one ("#") is still one.
func TestLoopbackRedirects(t *testing.T) {
	for uri, want := range map[string]bool{
		"http://127.0.0.1:1/cb":      true,
		"http://127.0.0.1:65535/cb":  true,
		"http://127.0.0.1/cb":        true,
		"http://[::1]:43110/cb":      true,
		"http://127.0.0.1:9/cb?x=1":  true,
		"http://127.0.0.1:0/cb":      false,
		"http://[::1]:0/cb":          false,
		"http://127.0.0.1:65536/cb":  false,
		"http://127.0.0.1:99999/cb":  false,
		"http://127.0.0.1:08080/cb":  false,
		"http://127.0.0.1:00001/cb":  false,
		"http://127.0.0.1:+80/cb":    false,
		"http://127.0.0.1:-1/cb":     false,
		"http://127.0.0.1:/cb":       false,
		"http://127.0.0.1:9/cb#":     false,
		"http://127.0.0.1:9/cb#x":    false,
		"http://127.0.0.1:9/cb?a;b":  false,
		"http://127.0.0.1:9/cb?a=%g": false,
		"http://127.0.0.1:9#":        false,
		"http://localhost:9/cb":      false,
		"http://127.0.0.1:9@evil/cb": false,
		"HTTP://127.0.0.1:9/cb":      false,
	} {
		if got := IsLoopbackRedirect(uri); got != want {
			t.Errorf("IsLoopbackRedirect(%q) = %v, want %v", uri, got, want)
		}
	}
}

// A client's registered redirect URIs follow the same rules, and the
// authorize request is refused naming redirect_uri even when a URI with a
// fragment was registered before it was refused.
func TestRegisteredRedirects(t *testing.T) {
	for uri, want := range map[string]bool{
		"https://app.example/cb":         true,
		"https://app.example:8443/cb":    true,
		"http://127.0.0.1:9/cb":          true,
		"http://localhost:8000":          true,
		"http://localhost":               true,
		"http://localhost/cb?x=1":        true,
		"http://[::1]/cb":                true,
		"http://localhost.evil/cb":       false,
		"http://localhost:0/cb":          false,
		"http://user@localhost:80/cb":    false,
		"http://app.example/cb":          false,
		"https://app.example/cb#":        false,
		"https://app.example/cb#x":       false,
		"https://app.example:0/cb":       false,
		"https://app.example:65536/cb":   false,
		"https://app.example:08443/cb":   false,
		"https://app.example:/cb":        false,
		"http://127.0.0.1:0/cb":          false,
		"http://127.0.0.1:9/cb#":         false,
		"https://app.example/cb?a=1;b=2": false,
		"https://app.example/cb?a=%zz":   false,
		"http://localhost/cb?a=%":        false,
		"https://app.example/cb?a=%20&b": true,
	} {
		err := ValidateRedirectURIs([]string{uri})
		if want && err != nil {
			t.Errorf("ValidateRedirectURIs(%q) refused: %v", uri, err)
		}
		if !want && chiterr.KindOf(err) != chiterr.InvalidArgument {
			t.Errorf("ValidateRedirectURIs(%q) = %v, want INVALID_ARGUMENT", uri, err)
		}
	}
	for _, uri := range []string{"https://app.example/cb#", "https://app.example:0/cb"} {
		legacy := accounts.Client{ID: "legacy", RedirectURIs: []string{uri}}
		if err := checkRedirect(legacy, uri); chiterr.KindOf(err) != chiterr.InvalidArgument || !strings.Contains(err.Error(), "redirect_uri") {
			t.Errorf("a registered %q asked for: %v, want INVALID_ARGUMENT naming redirect_uri", uri, err)
		}
	}
}

// RFC 8252 §7.3: a registered loopback redirect matches any port, with the
// same host, path and query; everything else matches exactly.
func TestLoopbackRedirectsMatchAnyPort(t *testing.T) {
	for _, tc := range []struct {
		registered, asked string
		match             bool
	}{
		{"http://localhost:8000", "http://localhost:8000", true},
		{"http://localhost:8000", "http://localhost:18000", true},
		{"http://localhost", "http://localhost:18000", true},
		{"http://localhost:8000", "http://localhost", true},
		{"http://127.0.0.1/cb", "http://127.0.0.1:53111/cb", true},
		{"http://127.0.0.1:8080/cb", "http://127.0.0.1:53111/cb", true},
		{"http://[::1]/cb", "http://[::1]:53111/cb", true},
		{"http://127.0.0.1/cb?app=1", "http://127.0.0.1:5/cb?app=1", true},
		// Path and query must match exactly.
		{"http://localhost:8000", "http://localhost:8000/", false},
		{"http://127.0.0.1/cb", "http://127.0.0.1:5/cb/", false},
		{"http://127.0.0.1/cb", "http://127.0.0.1:5/CB", false},
		{"http://127.0.0.1/cb", "http://127.0.0.1:5/cb?x=1", false},
		{"http://127.0.0.1/cb?app=1", "http://127.0.0.1:5/cb?app=2", false},
		// A loopback host matches only itself.
		{"http://localhost:8000", "http://127.0.0.1:8000", false},
		{"http://127.0.0.1/cb", "http://[::1]:5/cb", false},
		{"http://127.0.0.1/cb", "http://localhost:5/cb", false},
		// Not a loopback redirect: tricks and other hosts.
		{"http://localhost:8000", "http://localhost.evil.example:8000", false},
		{"http://localhost:8000", "http://localhost:8000@evil.example", false},
		{"http://localhost:8000", "http://evil@localhost:8000", false},
		{"http://localhost:8000", "https://localhost:8000", false},
		{"http://localhost:8000", "http://localhost:0", false},
		{"http://localhost:8000", "http://localhost:8000#x", false},
		{"http://127.0.0.1/cb", "http://127.0.0.2:5/cb", false},
		// Other redirects match exactly: no port is ignored.
		{"https://app.example/cb", "https://app.example:8443/cb", false},
		{"https://app.example:8443/cb", "https://app.example:8443/cb", true},
		{"https://127.0.0.1/cb", "https://127.0.0.1:5/cb", false},
	} {
		client := accounts.Client{ID: "app", RedirectURIs: []string{tc.registered}}
		err := checkRedirect(client, tc.asked)
		if tc.match != (err == nil) {
			t.Errorf("registered %q, asked %q: %v, want match %v", tc.registered, tc.asked, err, tc.match)
		}
	}
}
