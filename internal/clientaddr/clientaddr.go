// Package clientaddr decides which address a call came from, for
// per-address sign-in throttling and logs: the connection's peer, or, when
// the peer is a reverse proxy the operator trusts, the client that the proxy
// chain names in X-Forwarded-For. Addresses a caller writes into the header
// itself are never believed: the chain is read from the right, and the first
// hop that is not a trusted proxy is the client.
package clientaddr

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver knows the trusted proxies. The zero value and nil trust none.
type Resolver struct {
	trusted []netip.Prefix
}

// NewResolver trusts the given proxies: CIDR prefixes ("10.0.0.0/8") or
// single addresses ("192.0.2.7").
func NewResolver(proxies []string) (*Resolver, error) {
	r := &Resolver{}
	for _, proxy := range proxies {
		proxy = strings.TrimSpace(proxy)
		if proxy == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(proxy)
		if err != nil {
			addr, addrErr := netip.ParseAddr(proxy)
			if addrErr != nil {
				return nil, fmt.Errorf("trusted proxy %q is neither an address nor a CIDR prefix", proxy)
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		r.trusted = append(r.trusted, prefix.Masked())
	}
	return r, nil
}

func (r *Resolver) trusts(addr netip.Addr) bool {
	if r == nil {
		return false
	}
	addr = addr.Unmap()
	for _, prefix := range r.trusted {
		if prefix.Contains(addr) {
			return true
		}
	}
	return false
}

// TrustsPeer reports whether a connection's peer ("host:port" or a bare
// address) is one of the trusted proxies.
func (r *Resolver) TrustsPeer(peer string) bool {
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host
	}
	addr, err := netip.ParseAddr(peer)
	return err == nil && r.trusts(addr)
}

// Resolve returns the client's address given the connection's peer
// ("host:port" or a bare address) and the X-Forwarded-For values that came
// with the call; "" when the peer is not an IP address.
func (r *Resolver) Resolve(peer string, forwardedFor []string) string {
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host
	}
	client, err := netip.ParseAddr(peer)
	if err != nil {
		return ""
	}
	return r.ResolveAddr(client, forwardedFor)
}

// ResolveAddr is Resolve for a peer address already parsed, as a TCP
// connection gives it.
func (r *Resolver) ResolveAddr(peer netip.Addr, forwardedFor []string) string {
	client := peer.Unmap()
	if !r.trusts(client) {
		return client.String()
	}
	for i := len(forwardedFor) - 1; i >= 0; i-- {
		hops := strings.Split(forwardedFor[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[j]))
			if err != nil {
				// A malformed hop ends what the chain can vouch for.
				return client.String()
			}
			client = hop.Unmap()
			if !r.trusts(client) {
				return client.String()
			}
		}
	}
	return client.String()
}

// Middleware records each HTTP request's client address in its context
// (With), where the REST gateway's calls, the sign-in page and the OAuth
// endpoints find it.
func (r *Resolver) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		address := r.Resolve(req.RemoteAddr, req.Header.Values("X-Forwarded-For"))
		next.ServeHTTP(w, req.WithContext(With(req.Context(), address)))
	})
}

type addressKey struct{}

// With records the address a request came from, for the transports: they
// pass it to the core explicitly (sign-in throttling) and log it.
func With(ctx context.Context, address string) context.Context {
	return context.WithValue(ctx, addressKey{}, address)
}

// From is the address With recorded, or "".
func From(ctx context.Context) string {
	address, _ := ctx.Value(addressKey{}).(string)
	return address
}
