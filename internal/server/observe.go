package server

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/chit-auth/chit/internal/clientaddr"
	"github.com/chit-auth/chit/internal/telemetry"
)

// transportOAuth2 names the standard endpoints and the sign-in page in logs
// and metrics, beside the API's grpc and rest.
const transportOAuth2 = "oauth2"

// observeHTTP logs, counts and traces every request next serves, with the
// fields, metrics and spans of the API's calls: method (the route's
// pattern, so the metric's labels stay few), code (the HTTP status),
// duration, transport, client and trace id. Failures are logged at info,
// server errors at error, successes at debug; a 429 on a sign-in counts as
// a throttled sign-in. With a tracer (nil: tracing is off) each request is
// a server span, continuing the caller's W3C trace context.
func observeHTTP(next http.Handler, logger *slog.Logger, metrics *telemetry.Metrics, tracer trace.Tracer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		recorder := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		var span trace.Span
		if tracer != nil {
			ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx, span = tracer.Start(ctx, "HTTP "+r.Method, trace.WithSpanKind(trace.SpanKindServer))
			r = r.WithContext(ctx)
		}
		next.ServeHTTP(recorder, r)
		method := r.Pattern // set by the mux that routed the request
		if method == "" {
			method = "unmatched"
		}
		code := strconv.Itoa(recorder.status)
		attrs := []any{"method", method, "code", code, "duration", time.Since(start), "transport", transportOAuth2, "client", clientaddr.From(r.Context())}
		if span != nil {
			span.SetName(method)
			span.SetAttributes(attribute.String("http.route", method), attribute.Int("http.response.status_code", recorder.status))
			if recorder.status >= 500 {
				span.SetStatus(otelcodes.Error, http.StatusText(recorder.status))
			}
			span.End()
			attrs = append(attrs, "trace_id", span.SpanContext().TraceID().String())
		}
		metrics.ObserveRPC(transportOAuth2, method, code, time.Since(start))
		if recorder.status == http.StatusTooManyRequests && r.Method == http.MethodPost {
			metrics.SignInThrottled()
		}
		level := slog.LevelDebug
		switch {
		case recorder.status >= 500:
			level = slog.LevelError
		case recorder.status >= 400:
			level = slog.LevelInfo
		}
		logger.Log(r.Context(), level, "rpc", attrs...)
	})
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(status int) {
	s.status = status
	s.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
