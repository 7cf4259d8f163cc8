package grpcapi

import (
	"context"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/clientaddr"
)

// Interceptors returns the server's unary and stream interceptors: panic
// recovery, access rules, error translation and one log line per call. They
// log methods, codes and durations, never request or response contents,
// which carry passwords and tokens.
func Interceptors(cfg InterceptorConfig) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	logger, gatekeeper := cfg.Logger, cfg.Gatekeeper
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		client := clientAddress(ctx, cfg)
		callCtx := ctx
		defer func() {
			if r := recover(); r != nil {
				logger.ErrorContext(ctx, "panic in handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				err = chiterr.New(chiterr.Internal, "internal error")
			}
			err = finish(ctx, logger, cfg, info.FullMethod, client, start, err)
			cfg.observe(info.FullMethod, start, err)
			if audited(info.FullMethod) {
				audit(callCtx, logger, cfg, info.FullMethod, client, req, err)
			}
		}()
		// A caller's own sooner deadline (the REST layer sets one) already
		// bounds the call; a second timer per call would add nothing.
		if deadline, ok := ctx.Deadline(); cfg.Timeout > 0 && (!ok || time.Until(deadline) > cfg.Timeout) {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
			defer cancel()
		}
		// Taken first: the codec's mark must not reach a handler, whoever
		// the caller.
		malformed := undecodable(req)
		authorized, err := gatekeeper.authorize(clientaddr.With(ctx, client), info.FullMethod)
		if authorized != nil {
			callCtx = authorized
		}
		if err != nil {
			return nil, err
		}
		if malformed != nil {
			return nil, malformed
		}
		if audited(info.FullMethod) {
			if err := refuseUnknownFields(req); err != nil {
				return nil, err
			}
		}
		return handler(callCtx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		start := time.Now()
		ctx := ss.Context()
		defer func() {
			if r := recover(); r != nil {
				logger.ErrorContext(ctx, "panic in handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				err = chiterr.New(chiterr.Internal, "internal error")
			}
			err = finish(ctx, logger, cfg, info.FullMethod, clientAddress(ctx, cfg), start, err)
		}()
		// Chit's own streams (the revocation feed) pass the access table;
		// the standard health and reflection streams are public by design.
		if strings.HasPrefix(info.FullMethod, "/chit.") {
			authorized, err := gatekeeper.authorize(clientaddr.With(ctx, clientAddress(ctx, cfg)), info.FullMethod)
			if err != nil {
				return err
			}
			ss = contextStream{ServerStream: ss, ctx: authorized}
		}
		return handler(srv, ss)
	}
	return unary, stream
}

// contextStream is a stream whose handler runs in ctx (with its caller).
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s contextStream) Context() context.Context { return s.ctx }

// InterceptorConfig configures the interceptors of one gRPC server.
type InterceptorConfig struct {
	Logger     *slog.Logger
	Gatekeeper *Gatekeeper
	// Transport names the calls' way in, for logs and metrics.
	Transport Transport
	// Proxies are the reverse proxies in front of the gRPC port whose
	// x-forwarded-for names the client; nil trusts none.
	Proxies *clientaddr.Resolver
	// Timeout bounds each call; zero means none.
	Timeout time.Duration
	// Observer receives every call's outcome, for metrics. May be nil.
	Observer Observer
}

// Transport is how calls reach the handlers.
type Transport string

// The two transports.
const (
	TransportGRPC Transport = "grpc"
	// TransportREST is the gateway's in-process calls.
	TransportREST Transport = "rest"
)

// Observer records call outcomes.
type Observer interface {
	ObserveRPC(transport, method, code string, took time.Duration)
	SignInThrottled()
}

// signInMethods are the calls whose RESOURCE_EXHAUSTED means a throttled sign-in.
var signInMethods = map[string]bool{
	"/chit.auth.v1.AuthService/Token":    true,
	"/chit.auth.v1.AuthService/LoginCli": true,
}

func (cfg InterceptorConfig) observe(method string, start time.Time, err error) {
	if cfg.Observer == nil {
		return
	}
	code := status.Code(err)
	cfg.Observer.ObserveRPC(string(cfg.Transport), method, code.String(), time.Since(start))
	if code == codes.ResourceExhausted && signInMethods[method] {
		cfg.Observer.SignInThrottled()
	}
}

// clientAddress is the caller's IP address for throttling and logs. REST
// calls carry the one the HTTP layer resolved (clientaddr.Middleware); gRPC
// callers are their connection's peer, or the client a trusted proxy names.
func clientAddress(ctx context.Context, cfg InterceptorConfig) string {
	if cfg.Transport == TransportREST {
		return clientaddr.From(ctx)
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	// One header's values, not a copy of all metadata: this runs on every call.
	forwardedFor := metadata.ValueFromIncomingContext(ctx, "x-forwarded-for")
	if tcp, ok := p.Addr.(*net.TCPAddr); ok {
		return cfg.Proxies.ResolveAddr(tcp.AddrPort().Addr(), forwardedFor)
	}
	return cfg.Proxies.Resolve(p.Addr.String(), forwardedFor)
}

func finish(ctx context.Context, logger *slog.Logger, cfg InterceptorConfig, method, client string, start time.Time, err error) error {
	translated := toStatus(err)
	code := status.Code(translated)
	level := logLevelFor(code)
	if pollingAnswer(err) {
		// A device's poll answers "not yet" every few seconds until the
		// person approves: the normal course, not a warning.
		level = slog.LevelDebug
	}
	if !logger.Enabled(ctx, level) {
		return translated
	}
	attrs := []any{"method", method, "code", code.String(), "duration", time.Since(start), "transport", string(cfg.Transport),
		"client", client}
	if span := trace.SpanContextFromContext(ctx); span.IsValid() {
		attrs = append(attrs, "trace_id", span.TraceID().String())
	}
	if err != nil {
		// The cause may name internals; it stays here and is never sent.
		attrs = append(attrs, "error", err.Error())
	}
	logger.Log(ctx, level, "rpc", attrs...)
	return translated
}
