package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/possession"
)

// MaxRequestBytes bounds a REST request body; no Chit request comes close.
const MaxRequestBytes = 1 << 20

// DefaultMaxHeaderBytes is the default bound on one call's headers, on
// both ports and in process. A Chit call needs about 9 KiB at most: the
// largest token it accepts (8 KiB) with gRPC's own headers and the trace
// context. 64 KiB leaves room for what proxies, tracing (W3C baggage, up to
// 8 KiB) and a browser's cookies add, more than Envoy (60 KiB) or nginx
// (32 KiB) pass on by default, yet a 256th of grpc-go's 16 MiB and a 16th
// of Go's HTTP 1 MiB.
const DefaultMaxHeaderBytes = 64 << 10

// Options are what the HTTP port serves besides the gateway.
type Options struct {
	// JWKS returns the current JSON Web Key Set document.
	JWKS func() []byte
	// OpenAPI is the OpenAPI v2 document.
	OpenAPI []byte
	// Pages registers the HTML pages served beside the API (the sign-in page).
	Pages func(mux *http.ServeMux)
	// AdminAudit, when set, wraps the Admin API's REST handler: it audits
	// the requests refused before they reach the gRPC interceptors (which
	// audit the others).
	AdminAudit func(http.Handler) http.Handler
	// Discovery is the OpenID Provider metadata served at
	// /.well-known/openid-configuration and, as RFC 8414's authorization
	// server metadata, at /.well-known/oauth-authorization-server.
	Discovery func() Discovery
}

// The metadata documents' paths: OpenID Connect Discovery 1.0 §4 and
// RFC 8414 §3.
const (
	OpenIDConfigurationPath         = "/.well-known/openid-configuration"
	AuthorizationServerMetadataPath = "/.well-known/oauth-authorization-server"
)

// issuerPath is the path of issuer without its terminating "/", which RFC
// 8414 §3.1 removes: "" for an issuer at the root of its host.
func issuerPath(issuer string) string {
	parsed, err := url.Parse(issuer)
	if err != nil {
		return ""
	}
	return strings.TrimRight(parsed.EscapedPath(), "/")
}

// Discovery is the OpenID Provider metadata (OpenID Connect Discovery 1.0,
// RFC 8414). Chit's own JSON endpoints have chit_ names beside the standard
// form-encoded ones.
type Discovery struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	// DeviceAuthorizationEndpoint is RFC 8628 §4's.
	DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint,omitempty"`
	RevocationEndpoint          string `json:"revocation_endpoint"`
	IntrospectionEndpoint       string `json:"introspection_endpoint"`
	UserinfoEndpoint            string `json:"userinfo_endpoint"`
	// OpenID Connect RP-Initiated Logout 1.0 §2.1, Back-Channel Logout 1.0
	// §2.1: logout tokens carry sid.
	EndSessionEndpoint                string   `json:"end_session_endpoint,omitempty"`
	BackchannelLogoutSupported        bool     `json:"backchannel_logout_supported,omitempty"`
	BackchannelLogoutSessionSupported bool     `json:"backchannel_logout_session_supported,omitempty"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	JWKSURI                           string   `json:"jwks_uri"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthSigningAlgValues []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	ScopesSupported                   []string `json:"scopes_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	// RFC 9207 §3: every authorization response carries iss.
	AuthorizationResponseIssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
	ClaimsSupported                            []string `json:"claims_supported"`
	ChitTokenEndpoint                          string   `json:"chit_token_endpoint"`
	ChitRefreshEndpoint                        string   `json:"chit_refresh_endpoint"`
	ChitRevocationEndpoint                     string   `json:"chit_revocation_endpoint"`
	ChitCheckEndpoint                          string   `json:"chit_check_endpoint"`
	// RFC 9449 §5.1 and RFC 8705 §3.3: the proof algorithms accepted, and
	// that tokens are bound to the client certificates they come over.
	DPoPSigningAlgValuesSupported         []string `json:"dpop_signing_alg_values_supported"`
	TLSClientCertificateBoundAccessTokens bool     `json:"tls_client_certificate_bound_access_tokens"`
}

// New returns the HTTP handler of the REST port; conn reaches the gRPC
// handlers (the server passes an in-process channel).
func New(ctx context.Context, conn grpc.ClientConnInterface, opts Options) (http.Handler, error) {
	newMux := func(discardUnknown bool, extra ...runtime.ServeMuxOption) *runtime.ServeMux {
		return runtime.NewServeMux(append([]runtime.ServeMuxOption{
			// Unset fields are left out, as protojson does by default: the
			// providers' bulk answers then match the UCloud examples exactly.
			runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
				MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: false},
				UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: discardUnknown},
			}),
			runtime.WithErrorHandler(errorHandler),
			runtime.WithRoutingErrorHandler(routingErrorHandler),
			runtime.WithIncomingHeaderMatcher(forwardedHeader),
		}, extra...)...)
	}
	// The token API ignores fields it does not know, as it always has:
	// clients written for a later version keep working.
	gatewayMux := newMux(true, runtime.WithHealthzEndpoint(grpc_health_v1.NewHealthClient(conn)))
	if err := authv1.RegisterAuthServiceHandlerClient(ctx, gatewayMux, authv1.NewAuthServiceClient(conn)); err != nil {
		return nil, fmt.Errorf("register AuthService gateway: %w", err)
	}
	// The Admin API refuses them: an operator who misspells a field must not
	// believe it was applied.
	// Nor does it take a form-encoded POST for a GET (grpc-gateway's "path
	// length fallback"): a request reaches the method it names.
	adminMux := newMux(false, runtime.WithDisablePathLengthFallback())
	if err := adminv1.RegisterAdminServiceHandlerClient(ctx, adminMux, adminv1.NewAdminServiceClient(conn)); err != nil {
		return nil, fmt.Errorf("register AdminService gateway: %w", err)
	}
	if err := authv1.RegisterAuthProvidersHandlerClient(ctx, gatewayMux, authv1.NewAuthProvidersClient(conn)); err != nil {
		return nil, fmt.Errorf("register AuthProviders gateway: %w", err)
	}

	mux := http.NewServeMux()
	mux.Handle("/", noStore(limitBody(gatewayMux)))
	admin := limitBody(strictAdmin(adminMux))
	if opts.AdminAudit != nil {
		admin = opts.AdminAudit(admin)
	}
	mux.Handle("/v1/admin/", noStore(admin))
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		// Verifiers may cache the set briefly; rotation publishes new keys
		// before they sign.
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(opts.JWKS())
	})
	if opts.Discovery != nil {
		metadata := func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "public, max-age=300")
			_ = json.NewEncoder(w).Encode(opts.Discovery())
		}
		mux.HandleFunc("GET "+OpenIDConfigurationPath, metadata)
		// RFC 8414 §3.1 puts the well-known segment before the issuer's
		// path: an issuer https://h/tenant is described at
		// https://h/.well-known/oauth-authorization-server/tenant. The root
		// one is served too, for a proxy that strips the issuer's path from
		// https://h/tenant/.well-known/oauth-authorization-server, as it does
		// for openid-configuration. Both are the same document.
		mux.HandleFunc("GET "+AuthorizationServerMetadataPath, metadata)
		if suffix := issuerPath(opts.Discovery().Issuer); suffix != "" {
			mux.HandleFunc("GET "+AuthorizationServerMetadataPath+"/", func(w http.ResponseWriter, r *http.Request) {
				if r.URL.EscapedPath() != AuthorizationServerMetadataPath+suffix {
					http.NotFound(w, r)
					return
				}
				metadata(w, r)
			})
		}
	}
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(opts.OpenAPI)
	})
	if opts.Pages != nil {
		opts.Pages(mux)
	}
	return mux, nil
}

// forwardedHeader picks the HTTP headers the calls see as metadata: the
// W3C trace context, so a REST caller's trace continues in Chit, and a
// DPoP proof (RFC 9449 §4.1), checked as a gRPC call's metadata dpop. The
// gateway adds Authorization and X-Forwarded-For itself; nothing else
// reaches the handlers, which saves a map entry per header per call.
func forwardedHeader(key string) (string, bool) {
	switch key = strings.ToLower(key); key {
	case "traceparent", "tracestate", possession.ProofMetadata:
		return key, true
	}
	return "", false
}

// noStore forbids caching every answer of the API, refusals included. Many
// carry tokens or secrets (Token, LoginCli, CreateApiKey, a provider's
// claim, CreateClient, the secret rotations...), which RFC 6749 §5.1 says
// must not be cached; marking them all keeps a new method from being
// forgotten, and nothing else the API answers is worth a cache's copy.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		next.ServeHTTP(w, r)
	})
}

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxRequestBytes {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			_, _ = w.Write([]byte(`{"code":8,"message":"request body too large"}`))
			return
		}
		// Query parameters become proto strings, which must be UTF-8; found
		// by FuzzRequestDecoders (an invalid one answered 500).
		for _, values := range r.URL.Query() {
			for _, value := range values {
				if !utf8.ValidString(value) {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusBadRequest)
					_, _ = w.Write([]byte(`{"code":3,"message":"query parameters must be UTF-8"}`))
					return
				}
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
		next.ServeHTTP(w, r)
	})
}

// errorHandler is grpc-gateway's default, plus a Retry-After header when the
// server sent a retry hint (throttling answers 429 with it).
func errorHandler(ctx context.Context, mux *runtime.ServeMux, marshaler runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if st, ok := status.FromError(err); ok {
		for _, detail := range st.Details() {
			if info, ok := detail.(*errdetails.RetryInfo); ok {
				seconds := math.Ceil(info.GetRetryDelay().AsDuration().Seconds())
				w.Header().Set("Retry-After", strconv.Itoa(int(max(seconds, 1))))
			}
		}
	}
	var tooLarge headerListTooLargeError
	if errors.As(err, &tooLarge) {
		// RFC 6585 §5, as the HTTP server itself answers headers beyond
		// its bound.
		body, _ := marshaler.Marshal(tooLarge.GRPCStatus().Proto())
		w.Header().Set("Content-Type", marshaler.ContentType(nil))
		w.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
		_, _ = w.Write(body)
		return
	}
	if st, ok := status.FromError(err); ok {
		for _, detail := range st.Details() {
			if info, ok := detail.(*errdetails.ErrorInfo); ok && info.GetMetadata()[possession.NonceMetadata] != "" {
				w.Header().Set(possession.NonceHeader, info.GetMetadata()[possession.NonceMetadata])
			}
		}
	}
	if status.Code(err) == codes.Unauthenticated {
		w = bearerChallenge{ResponseWriter: w, challenge: challengeFor(r, err)}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, marshaler, w, r, err)
}

// routingErrorHandler answers a request no route takes. grpc-gateway maps a
// known path with another method to UNIMPLEMENTED, a 501; it is the
// client's mistake, 405 Method Not Allowed.
func routingErrorHandler(ctx context.Context, mux *runtime.ServeMux, marshaler runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if httpStatus != http.StatusMethodNotAllowed {
		runtime.DefaultRoutingErrorHandler(ctx, mux, marshaler, w, r, httpStatus)
		return
	}
	body, _ := marshaler.Marshal(status.New(codes.Unimplemented, "method "+r.Method+" is not allowed on "+r.URL.Path).Proto())
	w.Header().Set("Content-Type", marshaler.ContentType(nil))
	w.WriteHeader(http.StatusMethodNotAllowed)
	_, _ = w.Write(body)
}

// challengeFor is the RFC 6750 challenge of a 401: with the error code only
// when the request presented a token; a DPoP one (RFC 9449 §7.1) when the
// token came with the DPoP scheme or the refusal is about its proof.
func challengeFor(r *http.Request, err error) string {
	token, dpopScheme := possession.AccessToken(r.Header.Get("Authorization"))
	code := ""
	if token != "" {
		code = "invalid_token"
	}
	if st, ok := status.FromError(err); ok {
		for _, detail := range st.Details() {
			if info, ok := detail.(*errdetails.ErrorInfo); ok {
				switch reason := strings.ToLower(info.GetReason()); reason {
				case chiterr.ReasonInvalidDPoPProof, chiterr.ReasonUseDPoPNonce:
					code, dpopScheme = reason, true
				}
			}
		}
	}
	return possession.Challenge(dpopScheme, nil, code)
}

// bearerChallenge replaces the WWW-Authenticate header grpc-gateway's
// default handler writes (the error message, which is no challenge) as the
// status line goes out.
type bearerChallenge struct {
	http.ResponseWriter
	challenge string
}

func (w bearerChallenge) WriteHeader(code int) {
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", w.challenge)
	}
	w.ResponseWriter.WriteHeader(code)
}

// errorMarshaler writes error answers outside the gateway's mux as the mux
// writes them.
var errorMarshaler = &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: false}}

// WriteError answers err, a gRPC status error, as the REST API answers its
// errors (the status as JSON, a challenge with a 401, Retry-After with a
// retry hint), for HTTP endpoints that are not gRPC methods. A nonzero
// httpStatus replaces the one err's code maps to.
func WriteError(w http.ResponseWriter, r *http.Request, err error, httpStatus int) {
	if httpStatus == 0 {
		errorHandler(r.Context(), runtime.NewServeMux(), errorMarshaler, w, r, err)
		return
	}
	body, _ := errorMarshaler.Marshal(status.Convert(err).Proto())
	w.Header().Set("Content-Type", errorMarshaler.ContentType(nil))
	w.WriteHeader(httpStatus)
	_, _ = w.Write(body)
}
