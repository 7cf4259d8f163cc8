package grpcapi

import (
	"context"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/chit-auth/chit/internal/chiterr"
	adminv1 "github.com/chit-auth/chit/sdk/gen/chit/admin/v1"
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
		target := reflected.Get(field).String()
		if len(target) > maxAuditTarget {
			target = target[:maxAuditTarget] + "..."
		}
		return target
	}
	return ""
}
