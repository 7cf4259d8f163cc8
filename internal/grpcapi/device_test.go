package grpcapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/server/servertest"
)

func pollReason(t *testing.T, client authv1.AuthServiceClient, deviceCode string) (codes.Code, string, time.Duration) {
	t.Helper()
	_, err := client.PollDeviceLogin(context.Background(), &authv1.PollDeviceLoginRequest{DeviceCode: deviceCode})
	st := status.Convert(err)
	var reason string
	var retry time.Duration
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			if d.GetDomain() != "chit.auth" {
				t.Fatalf("ErrorInfo domain %q", d.GetDomain())
			}
			reason = d.GetReason()
		case *errdetails.RetryInfo:
			retry = d.GetRetryDelay().AsDuration()
		}
	}
	return st.Code(), reason, retry
}

// The CLI's device login over gRPC: each state is its own code and
// ErrorInfo reason, the approval answers the tokens once.
func TestDeviceLoginOverGRPC(t *testing.T) {
	e := servertest.Start(t)
	client := authv1.NewAuthServiceClient(e.Conn)
	started, err := client.StartDeviceLogin(context.Background(), &authv1.StartDeviceLoginRequest{Scope: "openid"})
	if err != nil {
		t.Fatal(err)
	}
	if started.GetInterval() != 5 || started.GetExpiresIn() != 600 || !strings.HasSuffix(started.GetVerificationUri(), "/oauth2/device") ||
		started.GetVerificationUriComplete() != started.GetVerificationUri()+"?user_code="+started.GetUserCode() {
		t.Fatalf("StartDeviceLogin = %v", started)
	}
	if code, reason, _ := pollReason(t, client, started.GetDeviceCode()); code != codes.FailedPrecondition || reason != "AUTHORIZATION_PENDING" {
		t.Fatalf("pending poll: %s %s", code, reason)
	}
	if code, reason, retry := pollReason(t, client, started.GetDeviceCode()); code != codes.ResourceExhausted || reason != "SLOW_DOWN" || retry != 10*time.Second {
		t.Fatalf("early poll: %s %s %v", code, reason, retry)
	}
	e.AnswerDevice(t, e.NewBrowser(t), started.GetUserCode(), servertest.UserPassword, true)
	e.Clock.Advance(11 * time.Second)
	answer, err := client.PollDeviceLogin(context.Background(), &authv1.PollDeviceLoginRequest{DeviceCode: started.GetDeviceCode()})
	if err != nil || answer.GetAccessToken().GetAccessToken() == "" || answer.GetAccessToken().GetIdToken() == "" || answer.GetAccessToken().GetRefreshToken() == "" {
		t.Fatalf("approved poll: %v %v", answer, err)
	}
	e.Clock.Advance(time.Minute)
	if code, _, _ := pollReason(t, client, started.GetDeviceCode()); code != codes.Unauthenticated {
		t.Fatalf("poll after success: %s", code)
	}

	denied, err := client.StartDeviceLogin(context.Background(), &authv1.StartDeviceLoginRequest{})
	if err != nil {
		t.Fatal(err)
	}
	e.AnswerDevice(t, e.NewBrowser(t), denied.GetUserCode(), "", false)
	if code, reason, _ := pollReason(t, client, denied.GetDeviceCode()); code != codes.PermissionDenied || reason != "ACCESS_DENIED" {
		t.Fatalf("denied poll: %s %s", code, reason)
	}
	expired, err := client.StartDeviceLogin(context.Background(), &authv1.StartDeviceLoginRequest{})
	if err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(10 * time.Minute)
	if code, reason, _ := pollReason(t, client, expired.GetDeviceCode()); code != codes.FailedPrecondition || reason != "EXPIRED_TOKEN" {
		t.Fatalf("expired poll: %s %s", code, reason)
	}
}

// The same over REST: the gateway's statuses, with the reason in the body.
func TestDeviceLoginOverREST(t *testing.T) {
	e := servertest.Start(t)
	headers := map[string]string{"Content-Type": "application/json"}
	status, body := servertest.RawAdmin(t, e, http.MethodPost, "/v1/auth/device", "", `{"scope":"openid"}`, headers)
	var started struct {
		DeviceCode string `json:"deviceCode"`
		UserCode   string `json:"userCode"`
		Interval   string `json:"interval"`
	}
	if status != http.StatusOK || decode(t, body, &started) != nil || started.DeviceCode == "" || started.Interval != "5" {
		t.Fatalf("POST /v1/auth/device: %d %s", status, body)
	}
	poll := func() (int, string) {
		return servertest.RawAdmin(t, e, http.MethodPost, "/v1/auth/device/token", "", `{"deviceCode":"`+started.DeviceCode+`"}`, headers)
	}
	if status, body := poll(); status != http.StatusBadRequest || !strings.Contains(body, "AUTHORIZATION_PENDING") {
		t.Fatalf("pending poll: %d %s", status, body)
	}
	if status, body := poll(); status != http.StatusTooManyRequests || !strings.Contains(body, "SLOW_DOWN") {
		t.Fatalf("early poll: %d %s", status, body)
	}
	e.AnswerDevice(t, e.NewBrowser(t), started.UserCode, servertest.UserPassword, true)
	e.Clock.Advance(11 * time.Second)
	if status, body := poll(); status != http.StatusOK || !strings.Contains(body, "accessToken") {
		t.Fatalf("approved poll: %d %s", status, body)
	}
	e.Clock.Advance(time.Minute)
	if status, body := poll(); status != http.StatusUnauthorized {
		t.Fatalf("poll after success: %d %s", status, body)
	}
}

func decode(t *testing.T, body string, v any) error {
	t.Helper()
	return json.Unmarshal([]byte(body), v)
}
