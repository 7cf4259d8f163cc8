package accounts

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// MaxClientOrigins bounds the browser origins of one client, as redirect
// URIs are bounded.
const MaxClientOrigins = 16

// OriginsRefresh is how often a Directory rereads the origins registered on
// clients for the CORS answers: an origin registered or removed through
// another replica is honoured here within this time, through this one at
// once.
const OriginsRefresh = 2 * time.Second

// ValidateOrigins checks the browser origins of a client (the field is
// named allowed_origins): each exactly as a browser sends it in an Origin
// header (RFC 6454 §6.2): https://host[:port], or http on localhost or a
// loopback address for development, with a lower-case host, no default
// port, no path, query, fragment or userinfo.
func ValidateOrigins(origins []string) error {
	if len(origins) > MaxClientOrigins {
		return chiterr.New(chiterr.InvalidArgument, "allowed_origins: a client has at most %d origins", MaxClientOrigins)
	}
	for _, origin := range origins {
		if !validOrigin(origin) {
			return chiterr.New(chiterr.InvalidArgument, "allowed_origins: %s is not an origin: "+originRule, chiterr.Quote(origin))
		}
	}
	return nil
}

const originRule = "write it as a browser sends it, https://host[:port] (http only on localhost or a loopback address), the host in lower-case ASCII (punycode for an internationalized name), without path, default port or trailing slash"

func validOrigin(origin string) bool {
	if len(origin) > 255 {
		return false
	}
	u, err := url.Parse(origin)
	if err != nil || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" ||
		strings.ContainsAny(origin, "?#") || u.Hostname() == "" {
		return false
	}
	host, port := u.Hostname(), u.Port()
	switch u.Scheme {
	case "https":
	case "http":
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return false
		}
	default:
		return false
	}
	if port != "" {
		number, err := strconv.Atoi(port)
		if err != nil || number < 1 || number > 65535 || strconv.Itoa(number) != port ||
			(u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
			return false
		}
	}
	return validOriginHost(host) && origin == u.Scheme+"://"+u.Host
}

// validOriginHost reports whether host is written as a browser serializes
// it in an Origin header (WHATWG URL §3.6): an IPv4 address in dotted
// decimal, an IPv6 address in its compressed form, or a DNS name in ASCII
// lower case (an internationalized name as its punycode). Anything else
// could never match what a browser sends, or would match only through a
// spelling a browser rewrites (127.1, 0x7f.0.0.1, a trailing dot).
func validOriginHost(host string) bool {
	if addr, err := netip.ParseAddr(host); err == nil {
		return addr.Zone() == "" && !addr.Is4In6() && addr.String() == host
	}
	labels := strings.Split(host, ".")
	for _, label := range labels {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	// A name whose last label is a number is an IPv4 address to a browser
	// (127.1, 0x7f.1), which it sends in another spelling.
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" || strings.HasPrefix(last, "0x") {
		return false
	}
	return true
}

// SetClientOrigins replaces the browser origins of client id (see
// ValidateOrigins); this replica honours the change at once.
func (d *Directory) SetClientOrigins(ctx context.Context, id string, origins []string) error {
	if err := ValidateOrigins(origins); err != nil {
		return err
	}
	origins = slices.Compact(slices.Sorted(slices.Values(origins)))
	err := d.store.SetClientOrigins(ctx, id, origins)
	if errors.Is(err, storage.ErrNotFound) {
		return chiterr.New(chiterr.NotFound, "client %q does not exist", id)
	}
	d.origins.forget()
	return err
}

// ClientOrigins returns the browser origins of client id, sorted.
func (d *Directory) ClientOrigins(ctx context.Context, id string) ([]string, error) {
	return d.store.GetClientOrigins(ctx, id)
}

// OriginRegistered reports whether origin is registered on some client. It
// answers from the set of every registered origin, read from the store at
// most once per OriginsRefresh, so that a flood of requests from made-up
// origins costs no store read each. When the store cannot be read it
// answers with the last set it read, or the read's error if it has none;
// either way the store is tried again only after another OriginsRefresh.
func (d *Directory) OriginRegistered(ctx context.Context, origin string) (bool, error) {
	set, err := d.origins.get(ctx, d.now(), d.store)
	return set[origin], err
}

// originSet is the registered origins as last read. One request at a time
// reads the store; the others answer from the last set meanwhile (or, before
// the first read, wait for it), so a slow store holds up no lock.
type originSet struct {
	mu sync.Mutex
	// readAt is when the store was last read or tried; err is that read's
	// error while no set was ever read.
	readAt time.Time
	set    map[string]bool
	err    error
	// stale says a change through this replica came after the last read:
	// the next request rereads, and the old set answers until then.
	stale bool
	// reading is closed when the read under way ends; nil when none is.
	reading chan struct{}
}

func (o *originSet) get(ctx context.Context, now time.Time, store storage.ClientOrigins) (map[string]bool, error) {
	o.mu.Lock()
	fresh := !o.readAt.IsZero() && !o.stale && now.Sub(o.readAt) < OriginsRefresh && !now.Before(o.readAt)
	if fresh || (o.reading != nil && o.set != nil) {
		set, err := o.set, o.err
		o.mu.Unlock()
		return set, err
	}
	if reading := o.reading; reading != nil {
		o.mu.Unlock()
		select {
		case <-reading:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.set, o.err
	}
	reading := make(chan struct{})
	o.reading, o.stale = reading, false
	o.mu.Unlock()

	origins, err := store.ListClientOrigins(ctx)

	o.mu.Lock()
	defer o.mu.Unlock()
	o.reading, o.readAt = nil, now
	close(reading)
	if err != nil {
		if o.set != nil {
			return o.set, nil
		}
		o.err = err
		return nil, err
	}
	// A change made while the read ran leaves the set stale: the read may
	// have missed it.
	o.set, o.err = make(map[string]bool, len(origins)), nil
	for _, origin := range origins {
		o.set[origin] = true
	}
	return o.set, nil
}

// forget makes the next request reread the store; the set read last keeps
// answering if that read fails.
func (o *originSet) forget() {
	o.mu.Lock()
	o.stale = true
	o.mu.Unlock()
}
