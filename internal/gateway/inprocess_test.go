package gateway

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
)

// echoServer answers CheckToken with the bearer metadata it received as
// the subject, and sets a header and a trailer.
type echoServer struct {
	authv1.UnimplementedAuthServiceServer
}

func (echoServer) CheckToken(ctx context.Context, _ *authv1.CheckTokenRequest) (*authv1.CheckTokenResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if err := grpc.SetHeader(ctx, metadata.Pairs("x-answer", "header")); err != nil {
		return nil, err
	}
	if err := grpc.SetTrailer(ctx, metadata.Pairs("x-answer", "trailer")); err != nil {
		return nil, err
	}
	return &authv1.CheckTokenResponse{Subject: md.Get("authorization")[0]}, nil
}

func (echoServer) RefreshToken(_ context.Context, req *authv1.RefreshTokenRequest) (*authv1.TokenResponse, error) {
	if req.GetRefreshToken() == "" {
		return nil, status.Error(codes.InvalidArgument, "refresh_token is required")
	}
	return &authv1.TokenResponse{AccessToken: "for " + req.GetRefreshToken()}, nil
}

// recordingStats counts what a stats handler is told.
type recordingStats struct {
	tagged, begun int
	ended         []error
}

func (r *recordingStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	r.tagged++
	return ctx
}

func (r *recordingStats) HandleRPC(_ context.Context, s stats.RPCStats) {
	switch s := s.(type) {
	case *stats.Begin:
		r.begun++
	case *stats.End:
		r.ended = append(r.ended, s.Error)
	}
}

func (r *recordingStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (r *recordingStats) HandleConn(context.Context, stats.ConnStats) {}

func TestInProcessRunsTheInterceptorAndCarriesMetadata(t *testing.T) {
	var intercepted []string
	interceptor := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		intercepted = append(intercepted, info.FullMethod)
		return handler(ctx, req)
	}
	recorder := &recordingStats{}
	conn := NewInProcess(interceptor, recorder, 0)
	authv1.RegisterAuthServiceServer(conn, echoServer{})
	client := authv1.NewAuthServiceClient(conn)

	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer abc")
	var header, trailer metadata.MD
	resp, err := client.CheckToken(ctx, &authv1.CheckTokenRequest{}, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSubject() != "Bearer abc" {
		t.Fatalf("handler saw authorization %q", resp.GetSubject())
	}
	if got := header.Get("x-answer"); len(got) != 1 || got[0] != "header" {
		t.Fatalf("header %v", header)
	}
	if got := trailer.Get("x-answer"); len(got) != 1 || got[0] != "trailer" {
		t.Fatalf("trailer %v", trailer)
	}

	refreshed, err := client.RefreshToken(context.Background(), &authv1.RefreshTokenRequest{RefreshToken: "r1"})
	if err != nil || refreshed.GetAccessToken() != "for r1" {
		t.Fatalf("RefreshToken = %v, %v", refreshed, err)
	}
	_, err = client.RefreshToken(context.Background(), &authv1.RefreshTokenRequest{})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a handler's error: got %v, want InvalidArgument unchanged", err)
	}
	if len(intercepted) != 3 || intercepted[0] != authv1.AuthService_CheckToken_FullMethodName {
		t.Fatalf("interceptor saw %v", intercepted)
	}
	if recorder.tagged != 3 || recorder.begun != 3 || len(recorder.ended) != 3 || recorder.ended[0] != nil || recorder.ended[2] == nil {
		t.Fatalf("stats handler: tagged %d, begun %d, ended %v", recorder.tagged, recorder.begun, recorder.ended)
	}
}

func TestInProcessRefusesWhatIsNotRegistered(t *testing.T) {
	conn := NewInProcess(nil, nil, 0)
	_, err := authv1.NewAuthServiceClient(conn).CheckToken(context.Background(), &authv1.CheckTokenRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("unregistered method: got %v, want Unimplemented", err)
	}
	if _, err := conn.NewStream(context.Background(), &grpc.StreamDesc{}, "/grpc.health.v1.Health/Watch"); status.Code(err) != codes.Unimplemented {
		t.Fatalf("stream: got %v, want Unimplemented", err)
	}
}

// The handler gets its own copy of the request: the caller may reuse its
// message at once.
func TestInProcessCopiesTheRequest(t *testing.T) {
	var seen *authv1.RefreshTokenRequest
	conn := NewInProcess(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		seen = req.(*authv1.RefreshTokenRequest)
		return handler(ctx, req)
	}, nil, 0)
	authv1.RegisterAuthServiceServer(conn, echoServer{})
	req := &authv1.RefreshTokenRequest{RefreshToken: "r1"}
	if _, err := authv1.NewAuthServiceClient(conn).RefreshToken(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	req.RefreshToken = "changed"
	if seen == req || seen.GetRefreshToken() != "r1" {
		t.Fatalf("the handler's request is the caller's message")
	}
}

// A call whose metadata exceeds the bound, counted as HTTP/2 counts a header
// list, is refused before any interceptor (authentication) reads it; one at
// the bound gets through.
func TestInProcessBoundsTheMetadata(t *testing.T) {
	const bound = 4096
	intercepted := 0
	conn := NewInProcess(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		intercepted++
		return handler(ctx, req)
	}, nil, bound)
	authv1.RegisterAuthServiceServer(conn, echoServer{})
	client := authv1.NewAuthServiceClient(conn)
	// Many short fields, as the gateway forwards repeated headers, and one
	// that fills the rest: each field counts its name, value and 32 bytes.
	fill := func(extra int) context.Context {
		md := metadata.Pairs("authorization", "Bearer abc")
		size := len("authorization") + len("Bearer abc") + 32
		for range 50 {
			md.Append("traceparent", "x")
			size += len("traceparent") + 1 + 32
		}
		md.Append("tracestate", strings.Repeat("y", bound-size-len("tracestate")-32+extra))
		return metadata.NewOutgoingContext(context.Background(), md)
	}
	if _, err := client.CheckToken(fill(0), &authv1.CheckTokenRequest{}); err != nil {
		t.Fatalf("metadata of exactly %d bytes: %v", bound, err)
	}
	_, err := client.CheckToken(fill(1), &authv1.CheckTokenRequest{})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "request headers exceed 4096 bytes") {
		t.Fatalf("metadata of %d bytes: got %v, want RESOURCE_EXHAUSTED naming the bound", bound+1, err)
	}
	if intercepted != 1 {
		t.Fatalf("the interceptor ran %d times, want once: the refused call must not reach it", intercepted)
	}
}

// Without a bound of its own the connection takes the default one.
func TestInProcessBoundsByDefault(t *testing.T) {
	conn := NewInProcess(nil, nil, 0)
	authv1.RegisterAuthServiceServer(conn, echoServer{})
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", strings.Repeat("a", DefaultMaxHeaderBytes))
	if _, err := authv1.NewAuthServiceClient(conn).CheckToken(ctx, &authv1.CheckTokenRequest{}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("metadata past DefaultMaxHeaderBytes: got %v, want RESOURCE_EXHAUSTED", err)
	}
}
