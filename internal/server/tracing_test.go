package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc/codes"

	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// spanSignal records ended spans and signals each one, so that a test waits
// for the span it expects instead of polling the recorder: a server span
// ends just after its answer is sent, so the client can be a moment ahead.
type spanSignal struct {
	*tracetest.SpanRecorder
	ended chan struct{} // one pending signal at most: OnEnd never blocks the server
}

func newSpanSignal() *spanSignal {
	return &spanSignal{SpanRecorder: tracetest.NewSpanRecorder(), ended: make(chan struct{}, 1)}
}

func (s *spanSignal) OnEnd(span sdktrace.ReadOnlySpan) {
	s.SpanRecorder.OnEnd(span)
	select {
	case s.ended <- struct{}{}:
	default:
	}
}

// waitFor returns the ended spans named name once there are n of them,
// failing the test when they have not ended within 10 seconds.
func (s *spanSignal) waitFor(t *testing.T, name string, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		var spans []sdktrace.ReadOnlySpan
		for _, span := range s.Ended() {
			if span.Name() == name {
				spans = append(spans, span)
			}
		}
		if len(spans) >= n {
			return spans
		}
		select {
		case <-s.ended:
		case <-ctx.Done():
			t.Fatalf("%d %s spans ended within 10s, want %d", len(spans), name, n)
		}
	}
}

// With tracing on, every call over either transport makes a span, and the
// call's log line carries its trace id.
func TestTracing(t *testing.T) {
	recorder := newSpanSignal()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	e := servertest.Start(t, func(cfg *server.Config) { cfg.TracerProvider = provider })
	for name, tr := range servertest.Transports(e) {
		_, code := tr.Token(t, servertest.PasswordRequest("alice", "wonderland"))
		servertest.WantCode(t, name+" Token", code, codes.OK)
	}
	var traceIDs []string
	for _, span := range recorder.waitFor(t, "chit.auth.v1.AuthService/Token", 2) {
		traceIDs = append(traceIDs, span.SpanContext().TraceID().String())
	}
	if len(traceIDs) != 2 {
		t.Fatalf("%d Token spans, want one per transport", len(traceIDs))
	}
	logs := e.Logs.String()
	for _, id := range traceIDs {
		if !strings.Contains(logs, `"trace_id":"`+id+`"`) {
			t.Errorf("no log line carries trace id %s", id)
		}
	}
}

// Without a tracer provider nothing is traced and logs carry no trace id.
func TestNoTracingByDefault(t *testing.T) {
	e := servertest.Start(t)
	_, code := servertest.Transports(e)["gRPC"].Token(t, servertest.PasswordRequest("alice", "wonderland"))
	servertest.WantCode(t, "Token", code, codes.OK)
	if strings.Contains(e.Logs.String(), "trace_id") {
		t.Fatal("trace ids logged with tracing off")
	}
}

// A REST caller's W3C trace context continues in Chit's span.
func TestRESTCallerTraceContinues(t *testing.T) {
	recorder := newSpanSignal()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	e := servertest.Start(t, func(cfg *server.Config) { cfg.TracerProvider = provider })
	const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest(http.MethodGet, e.HTTPBase()+"/v1/auth/status", nil)
	req.Header.Set("Traceparent", "00-"+callerTrace+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	span := recorder.waitFor(t, "chit.auth.v1.AuthService/GetAuthStatus", 1)[0]
	if got := span.SpanContext().TraceID().String(); got != callerTrace {
		t.Fatalf("span in trace %s, want the caller's %s", got, callerTrace)
	}
}

// The standard endpoints are traced like the API's calls: a span named by
// the route, in the caller's trace, and the log line carries its trace id.
func TestStandardEndpointsAreTraced(t *testing.T) {
	recorder := newSpanSignal()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	e := servertest.Start(t, func(cfg *server.Config) { cfg.TracerProvider = provider })
	const callerTrace = "5bf92f3577b34da6a3ce929d0e0e4737"
	req, _ := http.NewRequest(http.MethodPost, e.HTTPBase()+"/oauth2/token", strings.NewReader("grant_type=client_credentials&client_id=nobody&client_secret=wrong"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Traceparent", "00-"+callerTrace+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	span := recorder.waitFor(t, "POST /oauth2/token", 1)[0]
	if got := span.SpanContext().TraceID().String(); got != callerTrace {
		t.Fatalf("span in trace %s, want the caller's %s", got, callerTrace)
	}
	if !strings.Contains(e.Logs.String(), `"trace_id":"`+callerTrace+`"`) {
		t.Fatal("the endpoint's log line carries no trace id")
	}
}
