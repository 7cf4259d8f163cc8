package authorize

import (
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
)

// hostPattern is what a redirect URI's host may be: a DNS name or an IPv4
// address, or an IPv6 address (without its brackets). Nothing else, so the
// origin can go into a header (the sign-in page's Content-Security-Policy)
// as it is.
var hostPattern = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|[0-9A-Fa-f:.]+)$`)

// Origin returns the scheme, host and port of a redirect URI, or "" when
// its host is not a plain name or address.
func Origin(redirectURI string) string {
	u, err := url.Parse(redirectURI)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || !hostPattern.MatchString(u.Hostname()) {
		return ""
	}
	if strings.HasSuffix(u.Host, ":") || !validPort(u.Port()) {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// validPort reports whether a URI's port is absent or one a listener can
// have, in plain decimal: 1 to 65535, without sign or leading zero. Redirect
// URIs are compared as strings, so each must have one spelling.
func validPort(port string) bool {
	if port == "" {
		return true
	}
	number, err := strconv.Atoi(port)
	return err == nil && number >= 1 && number <= 65535 && strconv.Itoa(number) == port
}

// hasFragment reports whether uri has a fragment component, an empty one
// ("...#") included, which url.URL does not record: RFC 6749 §3.1.2 forbids
// it in a redirection endpoint's URI.
func hasFragment(uri string) bool { return strings.Contains(uri, "#") }

// plainQuery reports whether u's query, if any, is name=value pairs joined
// by '&' with valid %-escapes: the response adds code, state and iss to it,
// and a query Go's parser cannot read whole (a ';' separator, a bad escape)
// would lose the parts it drops, so the client would not get back the
// query it registered.
func plainQuery(u *url.URL) bool {
	_, err := url.ParseQuery(u.RawQuery)
	return err == nil
}

// MaxRedirectURILength bounds a redirect URI, registered or asked for.
const MaxRedirectURILength = 2048

// Loopback hosts (RFC 8252 §7.3, §8.3). The CLI uses the IP literals only;
// a registered client may also register localhost, which §8.3 discourages
// (a name can resolve elsewhere, and a firewall may treat it differently)
// but which tools such as kubelogin use by default.
const (
	loopbackIPv4 = "127.0.0.1"
	loopbackIPv6 = "::1"
	localhost    = "localhost"
)

// loopback splits an http URI on a loopback host into that host and what
// follows the authority (path and query), leaving out the port: RFC 8252
// §7.3 says the server MUST allow any port for a loopback redirect, since a
// native app listens on whatever port the system gives it. ok is false for
// anything else, and for userinfo, a fragment or an invalid port.
func loopback(uri string) (host, rest string, ok bool) {
	// The scheme in lower case as written: the rest is compared as a string.
	const scheme = "http://"
	if !strings.HasPrefix(uri, scheme) {
		return "", "", false
	}
	u, err := url.Parse(uri)
	if err != nil || u.User != nil || hasFragment(uri) || u.Opaque != "" || !validPort(u.Port()) || !plainQuery(u) {
		return "", "", false
	}
	// u.Host must be exactly the host with an optional port: this refuses
	// tricks such as "127.0.0.1@evil.example" or "127.0.0.1.evil.example".
	host = u.Hostname()
	if host != loopbackIPv4 && host != loopbackIPv6 && host != localhost {
		return "", "", false
	}
	want := host
	if host == loopbackIPv6 {
		want = "[" + loopbackIPv6 + "]"
	}
	if port := u.Port(); port != "" {
		want += ":" + port
	}
	if u.Host != want {
		return "", "", false
	}
	return host, uri[len(scheme)+len(u.Host):], true
}

// IsLoopbackRedirect reports whether uri is an http URI on a loopback IP
// literal, with a valid port or none, without userinfo or fragment (RFC
// 8252 §7.3): what the CLI may use.
func IsLoopbackRedirect(uri string) bool {
	host, _, ok := loopback(uri)
	return ok && host != localhost
}

// redirectMatches reports whether a redirect URI asked for is the one
// registered: the same string (RFC 6749 §3.1.2.3, RFC 9700 §4.1.1), or, for
// a loopback URI, the same host, path and query on any port (RFC 8252
// §7.3). A loopback host matches only itself: 127.0.0.1 is not localhost.
func redirectMatches(registered, asked string) bool {
	if registered == asked {
		return true
	}
	registeredHost, registeredRest, registeredLoopback := loopback(registered)
	askedHost, askedRest, askedLoopback := loopback(asked)
	return registeredLoopback && askedLoopback && registeredHost == askedHost && registeredRest == askedRest
}

// checkRedirect applies RFC 8252 for the CLI (loopback IP literals, any
// port) and registration for other clients: exact matching, any port for
// a registered loopback URI.
func checkRedirect(client accounts.Client, redirectURI string) error {
	if redirectURI == "" {
		return chiterr.New(chiterr.InvalidArgument, "redirect_uri is required")
	}
	if len(redirectURI) > MaxRedirectURILength {
		return chiterr.New(chiterr.InvalidArgument, "redirect_uri is longer than %d characters", MaxRedirectURILength)
	}
	if client.ID == CLIClientID {
		if !IsLoopbackRedirect(redirectURI) {
			return chiterr.New(chiterr.InvalidArgument,
				"redirect_uri %q is not allowed: the CLI must redirect to http://127.0.0.1:PORT/... or http://[::1]:PORT/... (PORT from 1 to 65535), without a fragment", redirectURI)
		}
		return nil
	}
	// The rules of registration hold for what is asked for too: a URI
	// registered before a rule was added is not used once it breaks it.
	if !validRegisteredRedirect(redirectURI) {
		return chiterr.New(chiterr.InvalidArgument, "redirect_uri %s is not allowed: "+redirectRule, chiterr.Quote(redirectURI))
	}
	if !slices.ContainsFunc(client.RedirectURIs, func(registered string) bool { return redirectMatches(registered, redirectURI) }) {
		return chiterr.New(chiterr.InvalidArgument, "redirect_uri %q is not registered for client %q", redirectURI, client.ID)
	}
	return nil
}

// ValidateRedirectURIs checks the redirect URIs of a new client.
func ValidateRedirectURIs(redirectURIs []string) error {
	if len(redirectURIs) == 0 {
		return chiterr.New(chiterr.InvalidArgument, "a client needs at least one redirect URI")
	}
	if len(redirectURIs) > 16 {
		return chiterr.New(chiterr.InvalidArgument, "a client has at most 16 redirect URIs")
	}
	for _, uri := range redirectURIs {
		if len(uri) > MaxRedirectURILength {
			return chiterr.New(chiterr.InvalidArgument, "redirect URI is longer than %d characters", MaxRedirectURILength)
		}
		if !validRegisteredRedirect(uri) {
			return chiterr.New(chiterr.InvalidArgument, "redirect URI %s is not allowed: "+redirectRule, chiterr.Quote(uri))
		}
	}
	return nil
}

// redirectRule is what validRegisteredRedirect checks, for people.
const redirectRule = "it must be an absolute https URI (or an http URI on 127.0.0.1, [::1] or localhost) with a host name or address and a port from 1 to 65535 if any, without userinfo or fragment, and a query (if any) of name=value pairs joined by '&' with valid percent-escapes"

// validRegisteredRedirect reports whether uri may be a registered client's
// redirect URI.
func validRegisteredRedirect(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || !u.IsAbs() || Origin(uri) == "" || u.User != nil || hasFragment(uri) || !plainQuery(u) {
		return false
	}
	_, _, isLoopback := loopback(uri)
	return u.Scheme == "https" || isLoopback
}
