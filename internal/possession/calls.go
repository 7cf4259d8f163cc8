package possession

import (
	"context"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/chit-auth/chit/internal/tokens"
	"github.com/chit-auth/chit/pkg/dpop"
)

// ProofMetadata is the gRPC metadata key of a DPoP proof; the REST gateway
// forwards the DPoP header there.
const ProofMetadata = "dpop"

// NonceMetadata is the key, in the ErrorInfo of a USE_DPOP_NONCE refusal,
// of the nonce the caller must use; REST answers it as DPoP-Nonce.
const NonceMetadata = "dpop_nonce"

type targetKey struct{}

type target struct{ method, path string }

// WithRequestTarget records in ctx the HTTP method and path of a REST
// request, which its proof names, for the gRPC handler the gateway calls.
func WithRequestTarget(ctx context.Context, method, path string) context.Context {
	return context.WithValue(ctx, targetKey{}, target{method, path})
}

// CallTarget is the method and path a call's proof must name: the REST
// request's when the call came through the gateway; for a gRPC call, the
// REST mapping of its method (dpop.ChitMethod, documented in docs/api.md),
// so one proof shape serves both transports; for a method without one,
// POST and the full method name.
func CallTarget(ctx context.Context, fullMethod string) (method, path string) {
	if t, ok := ctx.Value(targetKey{}).(target); ok {
		return t.method, t.path
	}
	if method, path, ok := dpop.ChitMethod(fullMethod); ok {
		return method, path
	}
	return "POST", fullMethod
}

// CallProofs are the DPoP proofs in a call's metadata.
func CallProofs(ctx context.Context) []string {
	return metadata.ValueFromIncomingContext(ctx, ProofMetadata)
}

// CallCertificate is the thumbprint of the client certificate of a call:
// the one the HTTP layer verified for a REST call, or the one of the gRPC
// connection's mutual TLS; "" when none. The error is a trusted proxy's
// Client-Cert that could not be read (InvalidArgument).
func CallCertificate(ctx context.Context) (string, error) {
	if thumbprint, err := certificateFromContext(ctx); thumbprint != "" || err != nil {
		return thumbprint, err
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.PeerCertificates) == 0 {
		// Only a certificate the server verified binds: one merely
		// offered (tls.RequestClientCert) proves nothing.
		return "", nil
	}
	return CertificateThumbprint(info.State.PeerCertificates[0]), nil
}

// Call is what a call proves it holds: its DPoP proof's key (checked for
// the call's method and path, and accessToken's ath for a resource call)
// and its client certificate.
func (v *Verifier) Call(ctx context.Context, fullMethod, accessToken string, use Use) (tokens.Binding, error) {
	method, path := CallTarget(ctx, fullMethod)
	jkt, err := v.Proof(CallProofs(ctx), method, path, accessToken, use)
	if err != nil {
		return tokens.Binding{}, err
	}
	certificate, err := CallCertificate(ctx)
	if err != nil {
		return tokens.Binding{}, err
	}
	return tokens.Binding{KeyThumbprint: jkt, CertificateThumbprint: certificate}, nil
}

// AccessToken is dpop.AccessToken: the access token of an Authorization
// value and whether it came with the DPoP scheme.
func AccessToken(authorization string) (token string, dpopScheme bool) {
	return dpop.AccessToken(authorization)
}
