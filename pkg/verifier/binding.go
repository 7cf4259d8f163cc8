package verifier

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwt"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/chit-auth/chit/pkg/dpop"
)

// Confirmation is what a sender-constrained token is bound to (its cnf
// claim, RFC 7800): the thumbprint of a DPoP key (RFC 9449 §6) or of a TLS
// client certificate (RFC 8705 §3.1). Both are empty for a bearer token.
type Confirmation struct {
	// JKT is the RFC 7638 thumbprint of the key whose DPoP proofs must
	// come with the token.
	JKT string
	// X5TS256 is the base64url SHA-256 of the client certificate the
	// caller's TLS connection must present.
	X5TS256 string
}

// Bound reports whether the token is sender-constrained.
func (c Confirmation) Bound() bool { return c.JKT != "" || c.X5TS256 != "" }

// parseConfirmation reads a token's cnf: absent, or an object whose jkt
// and x5t#S256 members, when present, are strings. A cnf of another shape
// is refused rather than read as no binding.
func parseConfirmation(token jwt.Token) (Confirmation, error) {
	raw, ok := token.Get("cnf")
	if !ok {
		return Confirmation{}, nil
	}
	object, ok := raw.(map[string]any)
	if !ok {
		return Confirmation{}, errors.New("cnf is not an object")
	}
	var c Confirmation
	for member, dst := range map[string]*string{"jkt": &c.JKT, "x5t#S256": &c.X5TS256} {
		if value, present := object[member]; present {
			text, isString := value.(string)
			if !isString || text == "" {
				return Confirmation{}, fmt.Errorf("cnf %s is not a thumbprint", member)
			}
			*dst = text
		}
	}
	if !c.Bound() {
		// A cnf with only members we do not know binds to something we
		// cannot check: refuse it rather than take it as a bearer token.
		return Confirmation{}, errors.New("cnf names no binding this verifier can check")
	}
	return c, nil
}

// ErrorInvalidToken is the error code of a refused token (RFC 6750 §3.1).
const ErrorInvalidToken = "invalid_token"

// RequestError is how VerifyRequest refuses a request: it wraps
// ErrInvalidToken, and says how to challenge the caller (RFC 6750 §3,
// RFC 9449 §7.1).
type RequestError struct {
	// Code is ErrorInvalidToken, dpop.CodeInvalidProof or dpop.CodeUseNonce.
	Code string
	// DPoP: challenge with the DPoP scheme (the token came with it, is
	// DPoP-bound, or the refusal is about its proof), else Bearer.
	DPoP bool
	// Nonce is set with dpop.CodeUseNonce: the nonce the caller must use,
	// sent as the DPoP-Nonce header.
	Nonce string
	// Reason says what failed, for people.
	Reason string
}

func (e *RequestError) Error() string { return ErrInvalidToken.Error() + ": " + e.Reason }

func (e *RequestError) Unwrap() error { return ErrInvalidToken }

// Challenge is the WWW-Authenticate value of the refusal.
func (e *RequestError) Challenge() string {
	if !e.DPoP {
		return `Bearer error="` + e.Code + `"`
	}
	return `DPoP error="` + e.Code + `", algs="` + strings.Join(dpop.Algorithms(), " ") + `"`
}

// presentation is what a request offers: its Authorization value(s), its
// DPoP proofs, the method and URL those must name, and the TLS client
// certificate.
type presentation struct {
	authorization []string
	proofs        []string
	method, url   string
	certificate   *x509.Certificate
}

// newProofVerifier is the DPoP policy of cfg: nil when DPoP is off.
func newProofVerifier(cfg Config) (*dpop.Verifier, error) {
	if cfg.DPoP == nil {
		return nil, nil
	}
	if cfg.PublicURL == "" {
		return nil, errors.New("verifier: DPoP needs PublicURL, the URL clients' proofs name")
	}
	policy := *cfg.DPoP
	if policy.Now == nil {
		policy.Now = cfg.Now
	}
	return dpop.NewVerifier(policy), nil
}

// VerifyRequest validates the access token of r and that r proves what the
// token is bound to: a token with cnf.jkt must come as `Authorization: DPoP`
// with one valid DPoP proof for r (htm r.Method, htu Config.PublicURL +
// r's path, ath the token; its jti then is used up), and a token with
// cnf.x5t#S256 over a TLS connection whose client certificate has that
// thumbprint. A DPoP-bound token sent as Bearer is refused, and so is a
// bearer token sent with the DPoP scheme: a client that believes its token
// bound should learn that it is not (Chit's server does the same).
// Refusals are *RequestError. The Middleware calls it for every request.
func (v *Verifier) VerifyRequest(ctx context.Context, r *http.Request) (Claims, error) {
	p := presentation{authorization: r.Header.Values("Authorization"), proofs: r.Header.Values(dpop.ProofHeader),
		method: r.Method, url: strings.TrimSuffix(v.cfg.PublicURL, "/") + r.URL.EscapedPath()}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		// The TLS handshake proved the client holds the certificate's key;
		// whether its chain was verified does not matter to the binding,
		// which names this very certificate (RFC 8705 §2.2 binds
		// self-signed ones too).
		p.certificate = r.TLS.PeerCertificates[0]
	} else if values := r.Header.Values(ClientCertHeader); len(values) > 0 && v.trustsPeer(r.RemoteAddr) {
		certificate, err := ParseClientCert(values)
		if err != nil {
			return Claims{}, &RequestError{Code: ErrorInvalidToken, Reason: err.Error()}
		}
		p.certificate = certificate
	}
	return v.verifyPresentation(ctx, p)
}

// ClientCertHeader carries the client certificate a TLS-terminating proxy
// verified (RFC 9440 §2.2): a structured-field byte sequence, ":" base64 of
// the DER ":".
const ClientCertHeader = "Client-Cert"

// maxClientCert bounds a Client-Cert value: a certificate of a few KiB.
const maxClientCert = 16 << 10

// ParseClientCert reads the Client-Cert values (RFC 9440 §2.2) of a
// trusted proxy: exactly one certificate, or an error naming the header
// (the proxy is broken, and taking no certificate would hide it). Chit's
// server reads the header with it too, so the two agree.
func ParseClientCert(values []string) (*x509.Certificate, error) {
	if len(values) != 1 {
		return nil, fmt.Errorf("%s: send one certificate, not %d", ClientCertHeader, len(values))
	}
	value := strings.TrimSpace(values[0])
	if len(value) > maxClientCert || len(value) < 2 || value[0] != ':' || value[len(value)-1] != ':' {
		return nil, fmt.Errorf("%s is not a byte sequence (RFC 9440 §2.2: :base64:)", ClientCertHeader)
	}
	der, err := base64.StdEncoding.DecodeString(value[1 : len(value)-1])
	if err != nil {
		return nil, fmt.Errorf("%s is not base64", ClientCertHeader)
	}
	certificate, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%s is not a DER certificate", ClientCertHeader)
	}
	return certificate, nil
}

// parseProxies reads Config.ClientCertProxies: CIDR prefixes or single
// addresses.
func parseProxies(proxies []string) ([]netip.Prefix, error) {
	var prefixes []netip.Prefix
	for _, proxy := range proxies {
		proxy = strings.TrimSpace(proxy)
		if prefix, err := netip.ParsePrefix(proxy); err == nil {
			prefixes = append(prefixes, prefix.Masked())
			continue
		}
		addr, err := netip.ParseAddr(proxy)
		if err != nil {
			return nil, fmt.Errorf("verifier: ClientCertProxies: %q is neither an address nor a CIDR prefix", proxy)
		}
		addr = addr.Unmap()
		prefixes = append(prefixes, netip.PrefixFrom(addr, addr.BitLen()))
	}
	return prefixes, nil
}

// trustsPeer reports whether remoteAddr (an http.Request's RemoteAddr,
// host:port) is one of the ClientCertProxies.
func (v *Verifier) trustsPeer(remoteAddr string) bool {
	if len(v.certProxies) == 0 {
		return false
	}
	addrPort, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	addr := addrPort.Addr().Unmap()
	for _, prefix := range v.certProxies {
		if prefix.Contains(addr) {
			return true
		}
	}
	return false
}

func (v *Verifier) verifyPresentation(ctx context.Context, p presentation) (Claims, error) {
	if len(p.authorization) != 1 {
		return Claims{}, &RequestError{Code: ErrorInvalidToken, DPoP: v.proofs != nil && len(p.proofs) > 0,
			Reason: "send one Authorization header"}
	}
	token, dpopScheme := dpop.AccessToken(p.authorization[0])
	refuse := func(code, reason string) (Claims, error) {
		return Claims{}, &RequestError{Code: code, DPoP: dpopScheme, Reason: reason}
	}
	if token == "" {
		return refuse(ErrorInvalidToken, "no Bearer or DPoP access token")
	}
	claims, err := v.Verify(ctx, token)
	if errors.Is(err, ErrRevocationFeedStale) {
		// Not the token's fault: failing closed answers unavailable.
		return Claims{}, err
	}
	if err != nil {
		return refuse(ErrorInvalidToken, strings.TrimPrefix(err.Error(), ErrInvalidToken.Error()+": "))
	}
	bound := claims.Confirmation
	switch {
	case bound.JKT != "" && !dpopScheme:
		dpopScheme = true // the challenge names the scheme the token needs
		return refuse(ErrorInvalidToken, "the token is DPoP-bound: send it as Authorization: DPoP with a proof")
	case bound.JKT == "" && dpopScheme:
		return refuse(ErrorInvalidToken, "the token is not DPoP-bound: send it as Authorization: Bearer")
	case bound.JKT != "" && v.proofs == nil:
		return refuse(ErrorInvalidToken, "this service does not accept DPoP-bound tokens")
	case bound.JKT != "" && len(p.proofs) != 1:
		return refuse(dpop.CodeInvalidProof, fmt.Sprintf("send one DPoP proof, not %d", len(p.proofs)))
	case bound.JKT != "":
		_, err := v.proofs.Verify(p.proofs[0], dpop.Request{Method: p.method, URL: p.url, AccessToken: token, JKT: bound.JKT})
		var refused *dpop.Error
		if errors.As(err, &refused) {
			return Claims{}, &RequestError{Code: refused.Code, DPoP: true, Nonce: refused.Nonce, Reason: "DPoP proof: " + refused.Description}
		}
		if err != nil {
			return refuse(dpop.CodeInvalidProof, "DPoP proof: "+err.Error())
		}
	}
	if bound.X5TS256 != "" && (p.certificate == nil || !sameThumbprint(p.certificate, bound.X5TS256)) {
		return refuse(ErrorInvalidToken, "the token is bound to a client certificate this connection did not present")
	}
	return claims, nil
}

func sameThumbprint(certificate *x509.Certificate, thumbprint string) bool {
	sum := sha256.Sum256(certificate.Raw)
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(thumbprint)) == 1
}

// meets checks claims against req's scopes and roles.
func meets(claims Claims, req Requirement) error {
	for _, scope := range req.Scopes {
		if !claims.HasScope(scope) {
			return fmt.Errorf("%w: scope %q", ErrForbidden, scope)
		}
	}
	if len(req.Roles) > 0 && !slices.Contains(req.Roles, claims.Role) {
		return fmt.Errorf("%w: role %q", ErrForbidden, claims.Role)
	}
	return nil
}

// verifyCall is VerifyRequest for a gRPC call of method: the token in the
// metadata authorization, the proof in dpop naming the method as
// dpop.MethodURL maps it on PublicURL, the client certificate of the
// connection's TLS.
func (v *Verifier) verifyCall(ctx context.Context, fullMethod string) (Claims, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	p := presentation{authorization: md.Get("authorization"), proofs: md.Get(proofMetadata)}
	p.method, p.url, _ = dpop.MethodURL(v.cfg.PublicURL, fullMethod)
	if caller, ok := peer.FromContext(ctx); ok {
		if info, ok := caller.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
			p.certificate = info.State.PeerCertificates[0]
		}
	}
	return v.verifyPresentation(ctx, p)
}

// proofMetadata is the gRPC metadata key of a DPoP proof, as Chit's.
const proofMetadata = "dpop"

// ErrorDomain is the domain of the ErrorInfo a gRPC refusal carries.
const ErrorDomain = "chit.auth"

// grpcStatus is the refusal as a gRPC Unauthenticated status, with an
// ErrorInfo as Chit's server sends (reason INVALID_TOKEN,
// INVALID_DPOP_PROOF or USE_DPOP_NONCE; the nonce in metadata dpop_nonce),
// which pkg/client's DPoPCredentials interceptor reads to retry.
func (e *RequestError) grpcStatus() error {
	st := status.New(codes.Unauthenticated, e.Error())
	info := &errdetails.ErrorInfo{Reason: strings.ToUpper(e.Code), Domain: ErrorDomain}
	if e.Nonce != "" {
		info.Metadata = map[string]string{"dpop_nonce": e.Nonce}
	}
	if detailed, err := st.WithDetails(info); err == nil {
		st = detailed
	}
	return st.Err()
}
