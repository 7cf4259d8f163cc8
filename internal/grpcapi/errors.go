package grpcapi

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/device"
	"github.com/chit-auth/chit/internal/possession"
)

// ErrorDomain is the domain of the ErrorInfo details Chit's errors carry.
const ErrorDomain = "chit.auth"

var codeOfKind = map[chiterr.Kind]codes.Code{
	chiterr.Internal:           codes.Internal,
	chiterr.InvalidArgument:    codes.InvalidArgument,
	chiterr.Unauthenticated:    codes.Unauthenticated,
	chiterr.PermissionDenied:   codes.PermissionDenied,
	chiterr.NotFound:           codes.NotFound,
	chiterr.AlreadyExists:      codes.AlreadyExists,
	chiterr.ResourceExhausted:  codes.ResourceExhausted,
	chiterr.FailedPrecondition: codes.FailedPrecondition,
	chiterr.Unimplemented:      codes.Unimplemented,
	chiterr.Unavailable:        codes.Unavailable,
}

// toStatus turns an error from the core into a gRPC status error. Only the
// error's public message crosses the wire; causes stay in the logs.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	// A classified error says what happened even when it wraps a context
	// error: the hashing queue's own timeout is RESOURCE_EXHAUSTED with a
	// retry hint, not the request's deadline.
	if kind := chiterr.KindOf(err); kind == chiterr.Internal {
		switch {
		case errors.Is(err, context.Canceled):
			return status.Error(codes.Canceled, "request canceled")
		case errors.Is(err, context.DeadlineExceeded):
			return status.Error(codes.DeadlineExceeded, "request deadline exceeded")
		}
	}
	code, ok := codeOfKind[chiterr.KindOf(err)]
	if !ok {
		code = codes.Internal
	}
	st := status.New(code, chiterr.PublicMessage(err))
	// A named reason reaches programs as an ErrorInfo: the device flow's
	// polls tell pending from slow_down, denied and expired by it.
	if reason := chiterr.ReasonOf(err); reason != "" {
		info := &errdetails.ErrorInfo{Reason: strings.ToUpper(reason), Domain: ErrorDomain}
		// use_dpop_nonce names the nonce to use (RFC 9449 §8); REST
		// answers it as the DPoP-Nonce header.
		if nonce := chiterr.DPoPNonceOf(err); nonce != "" {
			info.Metadata = map[string]string{possession.NonceMetadata: nonce}
		}
		if detailed, derr := st.WithDetails(info); derr == nil {
			st = detailed
		}
	}
	if wait := chiterr.RetryAfter(err); wait > 0 {
		if detailed, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); derr == nil {
			st = detailed
		}
	}
	return st.Err()
}

// pollingAnswer reports a device poll's "not yet" (RFC 8628 §3.5
// authorization_pending and slow_down).
func pollingAnswer(err error) bool {
	switch chiterr.ReasonOf(err) {
	case device.ReasonAuthorizationPending, device.ReasonSlowDown:
		return true
	}
	return false
}

// logLevelFor keeps client mistakes out of the error log.
func logLevelFor(code codes.Code) slog.Level {
	switch code {
	case codes.OK:
		// One line per successful call is the hot path's largest cost; it
		// is there at debug level.
		return slog.LevelDebug
	case codes.Canceled, codes.InvalidArgument, codes.NotFound, codes.AlreadyExists,
		codes.Unauthenticated, codes.PermissionDenied, codes.Unimplemented:
		return slog.LevelInfo
	case codes.ResourceExhausted, codes.FailedPrecondition, codes.DeadlineExceeded:
		return slog.LevelWarn
	}
	return slog.LevelError
}

// ToStatus is the translation the interceptors apply, for HTTP endpoints
// that answer errors of the core without a gRPC call (the revocation
// feed's Server-Sent Events).
func ToStatus(err error) error { return toStatus(err) }
