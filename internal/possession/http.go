package possession

import (
	"net/http"
	"strings"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/clientaddr"
	"github.com/chit-auth/chit/internal/tokens"
	"github.com/chit-auth/chit/pkg/dpop"
	"github.com/chit-auth/chit/pkg/verifier"
)

// ClientCertHeader carries the client certificate a TLS-terminating proxy
// verified (RFC 9440 §2.2): a structured-field byte sequence of its DER.
const ClientCertHeader = verifier.ClientCertHeader

// Certificates finds the client certificate of an HTTP request.
type Certificates struct {
	// proxies may name a client's certificate in ClientCertHeader. A
	// certificate is public: the header proves nothing unless the peer
	// is a proxy that took it from the TLS handshake, and removes the
	// header any client sends.
	proxies *clientaddr.Resolver
}

// NewCertificates trusts Client-Cert from proxies (CIDR prefixes or single
// addresses, parsed as --trusted-proxies are); none trusts only
// certificates on the connection itself.
func NewCertificates(proxies []string) (*Certificates, error) {
	resolver, err := clientaddr.NewResolver(proxies)
	if err != nil {
		return nil, chiterr.Wrap(chiterr.InvalidArgument, err, err.Error())
	}
	return &Certificates{proxies: resolver}, nil
}

// Thumbprint is the x5t#S256 of r's client certificate: the one its TLS
// connection verified, or the one a trusted proxy names in Client-Cert;
// "" when there is none. A Client-Cert from any other peer is ignored, as
// if it had not been sent; a malformed one from a trusted proxy is an
// InvalidArgument (the proxy is broken, and binding nothing would hide
// it). The header is read as pkg/verifier reads it.
func (c *Certificates) Thumbprint(r *http.Request) (string, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0 {
		return CertificateThumbprint(r.TLS.PeerCertificates[0]), nil
	}
	values := r.Header.Values(ClientCertHeader)
	if len(values) == 0 || !c.proxies.TrustsPeer(r.RemoteAddr) {
		return "", nil
	}
	certificate, err := verifier.ParseClientCert(values)
	if err != nil {
		return "", chiterr.Wrap(chiterr.InvalidArgument, err, err.Error())
	}
	return CertificateThumbprint(certificate), nil
}

// Middleware records, for the gRPC handlers the REST gateway calls in
// process, the request's target (its proof's htm and htu path) and client
// certificate. A malformed Client-Cert of a trusted proxy is recorded too:
// the requests that bind or check a certificate are refused with it
// (InvalidArgument, 400 in each endpoint's own error format), and the
// others, such as a health check, are served.
func (c *Certificates) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if thumbprint, err := c.Thumbprint(r); err != nil {
			ctx = withCertificateError(ctx, err)
		} else {
			ctx = WithCertificate(ctx, thumbprint)
		}
		next.ServeHTTP(w, r.WithContext(WithRequestTarget(ctx, r.Method, r.URL.Path)))
	})
}

// NonceMiddleware sends, with every answer to a request that carried a DPoP
// proof, the nonce proofs must carry now (RFC 9449 §8.2), when nonces are
// on: a client moves to each new nonce without first being refused with
// use_dpop_nonce when its nonce expires. A refusal that names a nonce sets
// the same header itself.
func NonceMiddleware(v *Verifier, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(ProofHeader) != "" {
			if nonce := v.Nonce(); nonce != "" {
				w.Header().Set(NonceHeader, nonce)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// ProofHeader is the HTTP header of a DPoP proof (RFC 9449 §4.1).
const ProofHeader = dpop.ProofHeader

// NonceHeader carries the nonce a server asks DPoP proofs to use (RFC 9449
// §8.1).
const NonceHeader = dpop.NonceHeader

// Request is what an HTTP request proves it holds: its DPoP proof's key,
// checked for the request's method and path (and accessToken's ath for a
// resource request), and its client certificate (Certificates.Middleware).
func (v *Verifier) Request(r *http.Request, accessToken string, use Use) (tokens.Binding, error) {
	jkt, err := v.Proof(r.Header.Values(ProofHeader), r.Method, r.URL.Path, accessToken, use)
	if err != nil {
		return tokens.Binding{}, err
	}
	certificate, err := certificateFromContext(r.Context())
	if err != nil {
		return tokens.Binding{}, err
	}
	return tokens.Binding{KeyThumbprint: jkt, CertificateThumbprint: certificate}, nil
}

// Challenge is the WWW-Authenticate value of a refused resource request
// (RFC 6750 §3, RFC 9449 §7.1): DPoP when the token came with that scheme,
// is DPoP-bound, or the refusal is about its proof; Bearer otherwise. code
// is the error ("" for none); a DPoP challenge names the proof algorithms
// accepted (algs).
func Challenge(dpopScheme bool, err error, code string) string {
	reason := chiterr.ReasonOf(err)
	if reason == chiterr.ReasonInvalidDPoPProof || reason == chiterr.ReasonUseDPoPNonce {
		code, dpopScheme = reason, true
	}
	scheme := "Bearer"
	if dpopScheme {
		scheme = "DPoP"
	}
	challenge := scheme + ` realm="chit"`
	if code != "" {
		challenge += `, error="` + code + `"`
	}
	if dpopScheme {
		challenge += `, algs="` + strings.Join(dpop.Algorithms(), " ") + `"`
	}
	return challenge
}
