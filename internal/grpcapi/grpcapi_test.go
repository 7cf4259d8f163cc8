package grpcapi

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/chiterr"
)

// Every RPC of every service Chit registers has a rule: a new RPC cannot be
// served without someone deciding who may call it.
func TestEveryMethodHasAnAccessRule(t *testing.T) {
	for _, desc := range []grpc.ServiceDesc{authv1.AuthService_ServiceDesc, authv1.AuthProviders_ServiceDesc, grpc_health_v1.Health_ServiceDesc} {
		for _, method := range desc.Methods {
			full := "/" + desc.ServiceName + "/" + method.MethodName
			if _, ok := AccessRules[full]; !ok {
				t.Errorf("%s has no access rule", full)
			}
		}
	}
}

func TestUnlistedMethodIsRefused(t *testing.T) {
	_, err := NewGatekeeper(Config{}, Dependencies{}).authorize(context.Background(), "/chit.auth.v1.AuthService/Backdoor")
	if chiterr.KindOf(err) != chiterr.PermissionDenied {
		t.Fatalf("got %v, want PermissionDenied", err)
	}
}

func TestToStatus(t *testing.T) {
	for _, tc := range []struct {
		name        string
		err         error
		wantCode    codes.Code
		wantMessage string
	}{
		{"invalid argument", chiterr.New(chiterr.InvalidArgument, "username is required"), codes.InvalidArgument, "username is required"},
		{"unauthenticated", chiterr.New(chiterr.Unauthenticated, "bad token"), codes.Unauthenticated, "bad token"},
		{"permission denied", chiterr.New(chiterr.PermissionDenied, "no"), codes.PermissionDenied, "no"},
		{"not found", chiterr.New(chiterr.NotFound, "gone"), codes.NotFound, "gone"},
		{"already exists", chiterr.New(chiterr.AlreadyExists, "dup"), codes.AlreadyExists, "dup"},
		{"exhausted", chiterr.New(chiterr.ResourceExhausted, "slow down"), codes.ResourceExhausted, "slow down"},
		{"unimplemented", chiterr.New(chiterr.Unimplemented, "later"), codes.Unimplemented, "later"},
		{"unavailable", chiterr.New(chiterr.Unavailable, "try again shortly"), codes.Unavailable, "try again shortly"},
		{"wrapped cause stays private", chiterr.Wrap(chiterr.Unauthenticated, errors.New("SELECT * FROM secrets"), "bad token"), codes.Unauthenticated, "bad token"},
		{"unclassified is internal", errors.New("sql: database is locked"), codes.Internal, "internal error"},
		{"canceled", context.Canceled, codes.Canceled, "request canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := status.Convert(toStatus(tc.err))
			if st.Code() != tc.wantCode || st.Message() != tc.wantMessage {
				t.Fatalf("got %v %q, want %v %q", st.Code(), st.Message(), tc.wantCode, tc.wantMessage)
			}
		})
	}
}

func TestToStatusCarriesRetryHint(t *testing.T) {
	err := &chiterr.Error{Kind: chiterr.ResourceExhausted, Message: "busy", RetryAfter: 3 * time.Second}
	st := status.Convert(toStatus(err))
	for _, detail := range st.Details() {
		if info, ok := detail.(*errdetails.RetryInfo); ok && info.GetRetryDelay().AsDuration() == 3*time.Second {
			return
		}
	}
	t.Fatalf("no RetryInfo of 3s in %v", st.Details())
}

// A panicking handler answers INTERNAL without its detail and the server lives on.
func TestPanicBecomesInternal(t *testing.T) {
	var logs bytes.Buffer
	unary, _ := Interceptors(InterceptorConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Gatekeeper: NewGatekeeper(Config{}, Dependencies{}), Transport: TransportGRPC})
	info := &grpc.UnaryServerInfo{FullMethod: authv1.AuthService_GetAuthStatus_FullMethodName}
	_, err := unary(context.Background(), nil, info, func(context.Context, any) (any, error) {
		panic("secret detail")
	})
	st := status.Convert(err)
	if st.Code() != codes.Internal || strings.Contains(st.Message(), "secret detail") {
		t.Fatalf("got %v %q, want Internal without the panic value", st.Code(), st.Message())
	}
	if !strings.Contains(logs.String(), "panic in handler") {
		t.Fatalf("panic not logged: %s", logs.String())
	}
}

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		header, want string
	}{
		{"Bearer abc", "abc"},
		{"bearer abc", "abc"},
		{"Basic abc", ""},
		{"abc", ""},
	} {
		ctx := metadataContext("authorization", tc.header)
		if got := bearerToken(ctx); got != tc.want {
			t.Errorf("bearerToken(%q) = %q, want %q", tc.header, got, tc.want)
		}
	}
}

func metadataContext(key, value string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs(key, value))
}

// A handler that outlives the configured timeout is cut off with
// DEADLINE_EXCEEDED, whether the caller set a later deadline of its own or
// none.
func TestTimeoutBoundsEveryCall(t *testing.T) {
	unary, _ := Interceptors(InterceptorConfig{Logger: slog.New(slog.DiscardHandler), Gatekeeper: NewGatekeeper(Config{}, Dependencies{}),
		Transport: TransportREST, Timeout: 20 * time.Millisecond})
	info := &grpc.UnaryServerInfo{FullMethod: authv1.AuthService_GetAuthStatus_FullMethodName}
	later, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, ctx := range map[string]context.Context{"no deadline": context.Background(), "a later deadline": later} {
		start := time.Now()
		var deadline time.Time
		_, err := unary(ctx, nil, info, func(ctx context.Context, _ any) (any, error) {
			deadline, _ = ctx.Deadline()
			<-ctx.Done()
			return nil, ctx.Err()
		})
		if status.Code(err) != codes.DeadlineExceeded || deadline.After(start.Add(30*time.Second)) {
			t.Fatalf("%s: got %v with the handler's deadline %v after the call began, want DeadlineExceeded within the timeout",
				name, err, deadline.Sub(start))
		}
	}
}
