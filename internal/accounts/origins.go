package accounts

import (
	"context"
	"errors"
	"net"
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

const originRule = "write it as a browser sends it, https://host[:port] (http only on localhost or a loopback address), lower-case, without path, default port or trailing slash"

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
	return host == strings.ToLower(host) && origin == u.Scheme+"://"+u.Host
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
// answers with the last set it read, or an error if it has none.
func (d *Directory) OriginRegistered(ctx context.Context, origin string) (bool, error) {
	set, err := d.origins.get(ctx, d.now(), d.store)
	return set[origin], err
}

// originSet is the registered origins as last read.
type originSet struct {
	mu     sync.Mutex
	readAt time.Time
	set    map[string]bool
}

func (o *originSet) get(ctx context.Context, now time.Time, store storage.ClientOrigins) (map[string]bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.set != nil && now.Sub(o.readAt) < OriginsRefresh && !now.Before(o.readAt) {
		return o.set, nil
	}
	origins, err := store.ListClientOrigins(ctx)
	if err != nil {
		if o.set != nil {
			// Keep answering from the last set, and try the store again
			// after another OriginsRefresh rather than on every request.
			o.readAt = now
			return o.set, nil
		}
		return nil, err
	}
	o.set, o.readAt = make(map[string]bool, len(origins)), now
	for _, origin := range origins {
		o.set[origin] = true
	}
	return o.set, nil
}

func (o *originSet) forget() {
	o.mu.Lock()
	o.set = nil
	o.mu.Unlock()
}
