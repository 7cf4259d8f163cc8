package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestThrottledAnswerCarriesRetryAfter(t *testing.T) {
	st, err := status.New(codes.ResourceExhausted, "too many sign-ins").
		WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(1500 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/v1/auth/token", nil)
	errorHandler(context.Background(), runtime.NewServeMux(), &runtime.JSONPb{}, rec, req, st.Err())
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("HTTP %d, want 429", rec.Code)
	}
	if got := rec.Header().Get("Retry-After"); got != "2" {
		t.Fatalf("Retry-After %q, want 2 (seconds, rounded up)", got)
	}
}

func TestOtherErrorsHaveNoRetryAfter(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/v1/auth/token", nil)
	errorHandler(context.Background(), runtime.NewServeMux(), &runtime.JSONPb{}, rec, req, status.Error(codes.Unauthenticated, "no"))
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("Retry-After") != "" {
		t.Fatalf("HTTP %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
}

// A 401 carries an RFC 6750 challenge, not the error message; the error
// code only when a bearer token was presented.
func TestUnauthenticatedAnswersCarryABearerChallenge(t *testing.T) {
	for _, tc := range []struct{ name, authorization, want string }{
		{"no token", "", `Bearer realm="chit"`},
		{"a token presented", "Bearer expired.token.here", `Bearer realm="chit", error="invalid_token"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/v1/auth/check", nil)
			if tc.authorization != "" {
				req.Header.Set("Authorization", tc.authorization)
			}
			errorHandler(context.Background(), runtime.NewServeMux(), &runtime.JSONPb{}, rec, req, status.Error(codes.Unauthenticated, "token is expired"))
			if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != tc.want {
				t.Errorf("authorization %q: HTTP %d, WWW-Authenticate %q; want 401, %q", tc.authorization, rec.Code, rec.Header().Get("WWW-Authenticate"), tc.want)
			}
		})
	}
}

// A call refused for its headers answers 431, as the HTTP server answers
// headers beyond its own bound, not grpc-gateway's 429 for
// RESOURCE_EXHAUSTED, which would invite a retry.
func TestHeadersTooLargeAnswer431(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/v1/auth/check", nil)
	errorHandler(context.Background(), runtime.NewServeMux(), &runtime.JSONPb{}, rec, req, headerListTooLargeError{limit: 65536})
	if rec.Code != http.StatusRequestHeaderFieldsTooLarge || rec.Header().Get("Retry-After") != "" {
		t.Fatalf("HTTP %d Retry-After %q, want 431 without", rec.Code, rec.Header().Get("Retry-After"))
	}
	var body struct {
		Code    codes.Code
		Message string
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Code != codes.ResourceExhausted || body.Message != "request headers exceed 65536 bytes" {
		t.Fatalf("body %s (%v), want RESOURCE_EXHAUSTED naming the bound", rec.Body, err)
	}
}
