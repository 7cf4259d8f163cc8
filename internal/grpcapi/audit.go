package grpcapi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/clientaddr"
)

// auditedPrefix is the full-method prefix of the calls that write an audit
// line: every call that changes or reveals what Chit knows.
var auditedPrefix = "/" + adminv1.AdminService_ServiceDesc.ServiceName + "/"

func audited(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, auditedPrefix)
}

// auditTargetFields are the request fields that name what a call acts on,
// the first one a request has being its target. None of them is a secret;
// passwords and secrets are never read here.
var auditTargetFields = []protoreflect.Name{"name", "client_id", "id", "subject"}

// maxAuditTarget bounds a target taken from a request that failed
// validation, which may be of any length.
const maxAuditTarget = 128

// audit writes a call's audit line: who (the caller's subject, empty when
// no valid token came), what (the method), on what (the target), and the
// outcome (the gRPC code), with the client address and trace id. It is
// written at Info whatever the outcome, since refused calls are what an
// audit is read for.
func audit(ctx context.Context, logger *slog.Logger, cfg InterceptorConfig, fullMethod, client string, req any, err error) {
	if written, ok := ctx.Value(auditWrittenKey{}).(*atomic.Bool); ok {
		written.Store(true)
	}
	actor := ""
	if claims, ok := CallerFrom(ctx); ok {
		actor = claims.Subject
	}
	attrs := []slog.Attr{
		slog.Bool("audit", true),
		slog.String("actor", actor),
		slog.String("action", strings.TrimPrefix(fullMethod, auditedPrefix)),
		slog.String("target", auditTarget(req)),
		slog.String("outcome", status.Code(err).String()),
		slog.String("transport", string(cfg.Transport)),
		slog.String("client", client),
	}
	if span := trace.SpanContextFromContext(ctx); span.IsValid() {
		attrs = append(attrs, slog.String("trace_id", span.TraceID().String()))
	}
	logger.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
}

// refuseUnknownFields refuses a request carrying fields this server does
// not know (a client built from a later proto, or a misspelt field): on the
// Admin API an ignored field would be a change the operator believes made.
func refuseUnknownFields(req any) error {
	message, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	unknown := message.ProtoReflect().GetUnknown()
	if len(unknown) == 0 {
		return nil
	}
	number, _, _ := protowire.ConsumeTag(unknown)
	return chiterr.New(chiterr.InvalidArgument, "the request has a field this server does not know (field number %d)", number)
}

func auditTarget(req any) string {
	message, ok := req.(proto.Message)
	if !ok {
		return ""
	}
	reflected := message.ProtoReflect()
	fields := reflected.Descriptor().Fields()
	for _, name := range auditTargetFields {
		field := fields.ByName(name)
		if field == nil || field.Kind() != protoreflect.StringKind || field.IsList() {
			continue
		}
		return cut(reflected.Get(field).String())
	}
	return ""
}

type auditWrittenKey struct{}

// AuditUnreached wraps the REST handler of audited calls: a request the
// gateway refuses before calling the handlers (a body that does not decode,
// a field it does not know, a query parameter the Admin API does not take)
// never reaches the interceptors, and gets its audit line here, with the
// HTTP method and path as its action, no actor (its token was never
// checked) and the outcome its HTTP status stands for.
func AuditUnreached(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			written := &atomic.Bool{}
			recorder := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
			next.ServeHTTP(recorder, r.WithContext(context.WithValue(r.Context(), auditWrittenKey{}, written)))
			if written.Load() {
				return
			}
			attrs := []slog.Attr{
				slog.Bool("audit", true),
				slog.String("actor", ""),
				slog.String("action", r.Method+" "+cut(r.URL.Path)),
				slog.String("target", ""),
				slog.String("outcome", codeForStatus(recorder.status).String()),
				slog.String("transport", string(TransportREST)),
				slog.String("client", clientaddr.From(r.Context())),
			}
			if span := trace.SpanContextFromContext(r.Context()); span.IsValid() {
				attrs = append(attrs, slog.String("trace_id", span.TraceID().String()))
			}
			logger.LogAttrs(r.Context(), slog.LevelInfo, "audit", attrs...)
		})
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(status int) {
	s.status = status
	s.ResponseWriter.WriteHeader(status)
}

// codeForStatus is the gRPC code an HTTP status of a refused request
// stands for (the inverse of grpc-gateway's mapping, for the statuses a
// refusal before the handlers gives).
func codeForStatus(status int) codes.Code {
	switch status {
	case http.StatusOK:
		return codes.OK
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return codes.Unimplemented
	case http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		return codes.ResourceExhausted
	}
	return codes.Unknown
}

// cut bounds a client-chosen string written to the audit log, on a rune
// boundary.
func cut(s string) string {
	if len(s) <= maxAuditTarget {
		return s
	}
	end := maxAuditTarget
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end] + "..."
}
