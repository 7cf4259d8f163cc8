package verifier

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Rules maps full gRPC method names ("/pkg.Service/Method") to what they
// require. A method missing from Rules is refused.
type Rules map[string]Requirement

func (v *Verifier) check(ctx context.Context, rules Rules, method string) (context.Context, error) {
	req, ok := rules[method]
	if !ok {
		return nil, status.Errorf(codes.PermissionDenied, "method %s is not open to any caller", method)
	}
	if req.Public {
		return ctx, nil
	}
	claims, err := v.verifyCall(ctx, method)
	if err == nil {
		err = meets(claims, req)
	}
	var refused *RequestError
	switch {
	case errors.Is(err, ErrForbidden):
		return nil, status.Error(codes.PermissionDenied, err.Error())
	case errors.As(err, &refused):
		return nil, refused.grpcStatus()
	case errors.Is(err, ErrRevocationFeedStale):
		return nil, status.Error(codes.Unavailable, "cannot check revocations right now")
	case err != nil:
		return nil, status.Error(codes.Unauthenticated, "missing or invalid access token")
	}
	return WithClaims(ctx, claims), nil
}

// UnaryServerInterceptor enforces rules on unary calls.
func (v *Verifier) UnaryServerInterceptor(rules Rules) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := v.check(ctx, rules, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor enforces rules on streaming calls.
func (v *Verifier) StreamServerInterceptor(rules Rules) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := v.check(ss.Context(), rules, info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
	}
}

type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }
