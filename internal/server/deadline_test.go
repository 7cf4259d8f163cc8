package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestEveryHTTPRequestHasTheDeadline(t *testing.T) {
	var remaining time.Duration
	handler := withDeadline(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		deadline, ok := r.Context().Deadline()
		if !ok {
			t.Fatal("request context has no deadline")
		}
		remaining = time.Until(deadline)
	}), time.Minute)
	handler.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if remaining <= 0 || remaining > time.Minute {
		t.Fatalf("deadline %v away, want within a minute", remaining)
	}
}
