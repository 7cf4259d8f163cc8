package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/oauth2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/chit-auth/chit/pkg/dpop"
)

// TokenTypeDPoP is the token_type of a DPoP-bound access token (RFC 9449
// §5).
const TokenTypeDPoP = "DPoP"

// ErrDowngrade is returned when a token endpoint answered a bearer token
// to a request that sent a DPoP proof: the token would not be bound, and a
// client that asked for binding must not use it as if it were.
var ErrDowngrade = errors.New("chit: asked for a DPoP-bound token, the token endpoint answered another token_type")

type signerKey struct{}

// WithDPoP returns a ctx in which the token sources of this package
// (ClientCredentials, Password, FederatedTokenFile, FederatedToken) bind
// their tokens to signer's key: every token request, and every refresh,
// carries a DPoP proof (retried once with the server's nonce on
// use_dpop_nonce), and an answer whose token_type is not DPoP fails with
// ErrDowngrade. It works like x/oauth2's oauth2.HTTPClient context value,
// whose client (when ctx has one) still sends the requests. Use the tokens
// with dpop.Transport (HTTP) or DPoPPerRPCCredentials (gRPC) and the same
// signer.
func WithDPoP(ctx context.Context, signer *dpop.Signer) context.Context {
	return context.WithValue(ctx, signerKey{}, signer)
}

// dpopContext is ctx with an oauth2.HTTPClient that sends proofs with the
// signer WithDPoP put in ctx; ok is false when there is none.
func dpopContext(ctx context.Context) (_ context.Context, ok bool) {
	signer, _ := ctx.Value(signerKey{}).(*dpop.Signer)
	if signer == nil {
		return ctx, false
	}
	proving := &http.Client{}
	if existing, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && existing != nil {
		copied := *existing
		proving = &copied
	}
	proving.Transport = &dpop.Transport{Base: proving.Transport, Signer: signer}
	return context.WithValue(ctx, oauth2.HTTPClient, proving), true
}

// requireDPoP refuses the tokens of source that are not DPoP-bound.
type requireDPoP struct{ source oauth2.TokenSource }

func (r requireDPoP) Token() (*oauth2.Token, error) {
	token, err := r.source.Token()
	if err != nil {
		return nil, err
	}
	if err := checkTokenType(token.TokenType); err != nil {
		return nil, err
	}
	return token, nil
}

func checkTokenType(tokenType string) error {
	if !strings.EqualFold(tokenType, TokenTypeDPoP) {
		return fmt.Errorf("%w (%q)", ErrDowngrade, tokenType)
	}
	return nil
}

// DPoPCredentials are gRPC per-RPC credentials for DPoP-bound tokens: each
// call gets metadata `authorization: DPoP <token>` and `dpop: <proof>`,
// the proof naming the call's method as dpop.MethodURL maps it (a Chit RPC
// as its REST form, any other as POST base + full method name). Add
// UnaryClientInterceptor to the connection too, for servers that demand
// nonces.
type DPoPCredentials struct {
	source        oauth2.TokenSource
	signer        *dpop.Signer
	base          string
	allowInsecure bool

	mu    sync.Mutex
	nonce string
}

// DPoPPerRPCCredentials sends source's tokens with proofs by signer for
// the service whose public URL is base (for Chit, its issuer URL: proofs
// name the URL clients know, not the address dialled). Unless
// allowInsecure is set (tests, loopback), gRPC refuses to send them
// without TLS.
func DPoPPerRPCCredentials(source oauth2.TokenSource, signer *dpop.Signer, base string, allowInsecure bool) *DPoPCredentials {
	return &DPoPCredentials{source: source, signer: signer, base: base, allowInsecure: allowInsecure}
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (c *DPoPCredentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	info, ok := credentials.RequestInfoFromContext(ctx)
	if !ok {
		return nil, errors.New("chit: no gRPC method to prove a call of")
	}
	token, err := c.source.Token()
	if err != nil {
		return nil, err
	}
	method, url, _ := dpop.MethodURL(c.base, info.Method)
	c.mu.Lock()
	nonce := c.nonce
	c.mu.Unlock()
	proof, err := c.signer.Proof(method, url, token.AccessToken, nonce)
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "DPoP " + token.AccessToken, "dpop": proof}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (c *DPoPCredentials) RequireTransportSecurity() bool { return !c.allowInsecure }

// useNonceReason and nonceMetadata are how Chit's gRPC refusals ask for a
// nonce: ErrorInfo reason USE_DPOP_NONCE with the nonce in metadata
// dpop_nonce (docs/sender-constrained-tokens.md).
const (
	useNonceReason = "USE_DPOP_NONCE"
	nonceMetadata  = "dpop_nonce"
)

// UnaryClientInterceptor retries a call once when the server refused its
// proof with use_dpop_nonce, with the nonce it named, and remembers that
// nonce for later calls.
func (c *DPoPCredentials) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		nonce := requestedNonce(err)
		if nonce == "" {
			return err
		}
		// The refused call did not run (its proof was refused first), so
		// trying it again is safe; once, whatever nonce it had used, since
		// concurrent calls may have moved c.nonce meanwhile.
		c.mu.Lock()
		c.nonce = nonce
		c.mu.Unlock()
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// requestedNonce is the nonce a use_dpop_nonce refusal names, or "".
func requestedNonce(err error) string {
	if err == nil {
		return ""
	}
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, detail := range st.Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok && info.GetReason() == useNonceReason {
			return info.GetMetadata()[nonceMetadata]
		}
	}
	return ""
}
