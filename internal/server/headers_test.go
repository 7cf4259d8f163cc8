package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/grpcapi"
	"github.com/chit-auth/chit/internal/oauth2http"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// paddingFields are n metadata fields of size bytes of value each.
func paddingFields(n, size int) []hpack.HeaderField {
	fields := make([]hpack.HeaderField, n)
	for i := range fields {
		fields[i] = hpack.HeaderField{Name: fmt.Sprintf("x-padding-%d", i), Value: strings.Repeat("a", size)}
	}
	return fields
}

// A gRPC call's metadata beyond --max-header-bytes is refused by the
// transport before authentication reads it: the stream is reset, or the
// connection closed once the header block runs on past the bound; the
// server never answers UNAUTHENTICATED to it, which it does only after
// reading the whole list (24 calls of 15 MiB held 1.4 GB at grpc-go's
// default of 16 MiB).
func TestGRPCHeaderListIsBoundedBeforeAuthentication(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	bound := server.DefaultMaxHeaderBytes
	listUsers := adminv1.AdminService_ListUsers_FullMethodName
	for _, tc := range []struct {
		name     string
		metadata []hpack.HeaderField
		want     func(servertest.RawAnswer) bool
	}{
		// The control: the raw client's calls reach authentication.
		{"small", []hpack.HeaderField{{Name: "x-request-id", Value: "r1"}}, func(a servertest.RawAnswer) bool { return a.GRPCStatus == "16" }},
		{"just past the bound", paddingFields(1, bound-200), func(a servertest.RawAnswer) bool {
			return a.Reset && a.ResetCode == http2.ErrCodeFrameSize
		}},
		{"one value of 1 MiB", paddingFields(1, 1<<20), func(a servertest.RawAnswer) bool { return a.Closed && a.GRPCStatus == "" }},
		{"15 MiB in 1 KiB values", paddingFields(15<<10, 1<<10), func(a servertest.RawAnswer) bool { return a.Closed && a.GRPCStatus == "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			block := servertest.EncodeRawCall(listUsers, tc.metadata)
			answer, err := servertest.SendRawCall(e.Server.GRPCAddr(), block, time.Now().Add(30*time.Second))
			if err != nil || !tc.want(answer) {
				t.Fatalf("a call with %d bytes of header block: %v (%v)", len(block), answer, err)
			}
		})
	}
}

// grpc-go's own client learns the bound from the server's settings: a call
// under it works, one past it is refused before it is sent.
func TestGRPCClientKeepsUnderTheHeaderListBound(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	auth := authv1.NewAuthServiceClient(e.Conn)
	bound := server.DefaultMaxHeaderBytes
	signIn := func(padding int) error {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-request-id", "r1", "x-padding", strings.Repeat("a", padding))
		_, err := auth.Token(ctx, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
		return err
	}
	if err := signIn(bound - 1024); err != nil {
		t.Fatalf("a sign-in with metadata 1 KiB under the bound: %v", err)
	}
	err := signIn(bound)
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), fmt.Sprintf("violates the maximum size (%d bytes) set by server", bound)) {
		t.Fatalf("a sign-in with metadata past the bound: got %v, want grpc-go's INTERNAL naming the server's bound", err)
	}
}

// The HTTP port bounds request headers the same way: past the bound the
// server answers 431 (RFC 6585 §5), on the REST API and /oauth2/* alike,
// and a URL past it too (Go counts the request line with the headers).
func TestHTTPHeadersAreBounded(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	bound := server.DefaultMaxHeaderBytes
	send := func(t *testing.T, path, padding string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, e.HTTPBase()+path, strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Padding", padding)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, tc := range []struct{ name, path string }{
		{"REST", grpcapi.TokenPath},
		{"OAuth token endpoint", oauth2http.TokenPath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if resp := send(t, tc.path, strings.Repeat("a", bound/2)); resp.StatusCode == http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("POST %s with headers of half the bound: HTTP 431", tc.path)
			}
			// Go grants HTTP/1.1 4 KiB of slack past its bound.
			if resp := send(t, tc.path, strings.Repeat("a", bound+8<<10)); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("POST %s with headers past the bound: HTTP %d, want 431", tc.path, resp.StatusCode)
			}
		})
	}
	resp, err := http.Get(e.HTTPBase() + grpcapi.CheckPath + "?padding=" + strings.Repeat("a", bound+8<<10))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("GET with a URL past the bound: HTTP %d, want 431", resp.StatusCode)
	}
}

// What the gateway hands the handlers is bounded as the gRPC port bounds a
// header list, whatever the HTTP server let through: short headers the
// gateway forwards (here 3,900 traceparent lines, 61 KiB on the wire, under
// the HTTP bound) count 32 bytes more each as metadata fields (168 KiB), and
// the call is refused with 431 before the interceptors (authentication
// among them) see it.
func TestGatewayMetadataIsBoundedLikeTheGRPCPort(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	check := func(traceparents int) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, e.HTTPBase()+grpcapi.CheckPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer not-a-token")
		for range traceparents {
			req.Header.Add("Traceparent", "x")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	logged := func() bool {
		return strings.Contains(e.Logs.String(), `"method":"`+authv1.AuthService_CheckToken_FullMethodName+`"`)
	}

	resp, raw := check(3900)
	var body struct {
		Code    codes.Code
		Message string
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || json.Unmarshal(raw, &body) != nil ||
		body.Code != codes.ResourceExhausted || body.Message != fmt.Sprintf("request headers exceed %d bytes", server.DefaultMaxHeaderBytes) {
		t.Fatalf("GET %s with 3,900 traceparent headers: HTTP %d %s, want 431 RESOURCE_EXHAUSTED naming the bound", grpcapi.CheckPath, resp.StatusCode, raw)
	}
	if logged() {
		t.Fatal("the refused call reached the interceptors (it was logged)")
	}
	// The control: the same call with a few of them reaches authentication.
	if resp, raw := check(10); resp.StatusCode != http.StatusUnauthorized || !logged() {
		t.Fatalf("GET %s with 10 traceparent headers: HTTP %d %s (logged: %v), want a logged 401", grpcapi.CheckPath, resp.StatusCode, raw, logged())
	}
}
