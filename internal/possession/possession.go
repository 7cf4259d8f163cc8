// Package possession finds what the caller of a request proves it holds,
// for sender-constrained tokens: the key of a DPoP proof (RFC 9449) and the
// TLS client certificate (RFC 8705), presented on the connection or named
// by a trusted proxy's Client-Cert header (RFC 9440). Every transport asks
// it the same way, so gRPC, REST and /oauth2/* bind and check tokens alike;
// what a token is bound to, and whether a request may use it, is the token
// core's (tokens.Binding, tokens.Claims.CheckBinding).
package possession

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/pkg/dpop"
)

// Verifier checks DPoP proofs against this server's URLs.
type Verifier struct {
	// base is the issuer: a proof's htu is base plus the request's path.
	base string
	// tokenProofs and resourceProofs hold apart the replay records of the
	// two uses. A token request's proof is checked before its client
	// authenticates, so anyone may send self-signed ones until the replay
	// memory is full, which then refuses every new proof for a proof
	// lifetime; a resource request's proof is checked only once its access
	// token verified. Apart, such a flood can hold up DPoP token requests
	// but never the use of the tokens already issued.
	tokenProofs, resourceProofs *dpop.Verifier
}

// NewVerifier checks proofs addressed to issuer's URLs: those of token
// requests with tokenProofs, those of resource requests with
// resourceProofs (each holds its replay records; both the nonce policy).
func NewVerifier(issuer string, tokenProofs, resourceProofs *dpop.Verifier) *Verifier {
	return &Verifier{base: strings.TrimSuffix(issuer, "/"), tokenProofs: tokenProofs, resourceProofs: resourceProofs}
}

// URL is the htu of a request for path on this server: the issuer's URL
// (the address clients know, whatever proxy stands in front) and the path.
func (v *Verifier) URL(path string) string { return v.base + path }

// Nonce is the nonce proofs must carry now, "" without --dpop-nonce (both
// uses share the nonce policy).
func (v *Verifier) Nonce() string {
	if v == nil || v.tokenProofs == nil {
		return ""
	}
	return v.tokenProofs.Nonce()
}

// Use says what a proof is checked for: a token request (whose refusals are
// the request's fault, RFC 9449 §5) or the use of an access token at a
// resource (a 401 with a DPoP challenge, §7.1).
type Use int

const (
	TokenRequest Use = iota
	ResourceRequest
)

// MaxProofs is how many DPoP headers a request may carry: one (RFC 9449
// §4.3 check 1).
const MaxProofs = 1

// Proof verifies the DPoP proofs a request carried (none, or one) for
// method and path, and, for a resource request, the access token it came
// with (ath). It returns the proof key's thumbprint, "" when no proof came.
func (v *Verifier) Proof(proofs []string, method, path, accessToken string, use Use) (string, error) {
	switch {
	case len(proofs) == 0:
		return "", nil
	case len(proofs) > MaxProofs:
		return "", refusal(use, chiterr.New(chiterr.InvalidArgument, "send one DPoP proof, not %d", len(proofs)), nil)
	case v == nil || v.tokenProofs == nil || v.resourceProofs == nil:
		return "", refusal(use, chiterr.New(chiterr.InvalidArgument, "DPoP is not enabled on this server"), nil)
	}
	verifier := v.tokenProofs
	if use == ResourceRequest {
		verifier = v.resourceProofs
	}
	proof, err := verifier.Verify(proofs[0], dpop.Request{Method: method, URL: v.URL(path), AccessToken: accessToken})
	if err != nil {
		var refused *dpop.Error
		if !errors.As(err, &refused) {
			return "", err
		}
		return "", refusal(use, chiterr.New(chiterr.InvalidArgument, "DPoP proof: %s", refused.Description), refused)
	}
	return proof.JKT, nil
}

// refusal gives a refused proof its kind and reason for use: a token
// request's is InvalidArgument (400), a resource request's Unauthenticated
// (401); the reason is use_dpop_nonce with the nonce to send, or
// invalid_dpop_proof.
func refusal(use Use, err *chiterr.Error, refused *dpop.Error) error {
	if use == ResourceRequest {
		err.Kind = chiterr.Unauthenticated
	}
	if refused != nil && refused.Code == dpop.CodeUseNonce {
		return err.WithReason(chiterr.ReasonUseDPoPNonce).WithDPoPNonce(refused.Nonce)
	}
	return err.WithReason(chiterr.ReasonInvalidDPoPProof)
}

// CertificateThumbprint is a certificate's cnf x5t#S256 (RFC 8705 §3.1):
// the base64url SHA-256 of its DER encoding.
func CertificateThumbprint(certificate *x509.Certificate) string {
	sum := sha256.Sum256(certificate.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

type certificateKey struct{}

// certificateRecord is what the HTTP layer found of a request's client
// certificate: its thumbprint, or why a trusted proxy's Client-Cert could
// not be read.
type certificateRecord struct {
	thumbprint string
	err        error
}

// WithCertificate records in ctx the thumbprint of the client certificate
// the HTTP layer verified (the TLS connection's, or a trusted proxy's
// Client-Cert), for the gRPC handlers the REST gateway calls in process.
// Only code of this process can set a context value: a caller cannot.
func WithCertificate(ctx context.Context, thumbprint string) context.Context {
	if thumbprint == "" {
		return ctx
	}
	return context.WithValue(ctx, certificateKey{}, certificateRecord{thumbprint: thumbprint})
}

// withCertificateError records that a trusted proxy's Client-Cert could
// not be read: the requests that bind or check a certificate are refused
// with err, and the others (health checks, discovery) never look.
func withCertificateError(ctx context.Context, err error) context.Context {
	return context.WithValue(ctx, certificateKey{}, certificateRecord{err: err})
}

// certificateFromContext returns what WithCertificate or
// withCertificateError recorded.
func certificateFromContext(ctx context.Context) (string, error) {
	record, _ := ctx.Value(certificateKey{}).(certificateRecord)
	return record.thumbprint, record.err
}
