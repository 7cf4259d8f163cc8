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

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
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

// A client's device_authorization over the Admin API (gRPC and REST, both
// stores): off by default, set at creation, kept by an update that does
// not name it, turned off by one that does; the device grant follows at
// once.
func TestAdminClientDeviceAuthorization(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		created := &adminv1.CreateClientResponse{}
		servertest.WantCode(t, "CreateClient", tr.Invoke(t, adminv1.AdminService_CreateClient_FullMethodName, c.Admin,
			&adminv1.CreateClientRequest{ClientId: "tv", RedirectUris: []string{"https://tv.example/cb"}, AllowedScopes: []string{"openid"},
				DeviceAuthorization: true}, created), codes.OK)
		if !created.GetClient().GetDeviceAuthorization() {
			t.Fatalf("created %v", created.GetClient())
		}
		plain := &adminv1.CreateClientResponse{}
		servertest.WantCode(t, "CreateClient", tr.Invoke(t, adminv1.AdminService_CreateClient_FullMethodName, c.Admin,
			&adminv1.CreateClientRequest{ClientId: "web", RedirectUris: []string{"https://web.example/cb"}}, plain), codes.OK)
		if plain.GetClient().GetDeviceAuthorization() {
			t.Fatalf("a client is allowed the device grant by default: %v", plain.GetClient())
		}
		start := func() int {
			status, _ := servertest.RawAdmin(t, e, http.MethodPost, "/oauth2/device_authorization", "", "client_id=tv",
				map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
			return status
		}
		if status := start(); status != http.StatusOK {
			t.Fatalf("device_authorization of an allowed client: %d", status)
		}
		update := func(req *adminv1.UpdateClientRequest) *adminv1.Client {
			t.Helper()
			updated := &adminv1.UpdateClientResponse{}
			servertest.WantCode(t, "UpdateClient", tr.Invoke(t, adminv1.AdminService_UpdateClient_FullMethodName, c.Admin, req, updated), codes.OK)
			return updated.GetClient()
		}
		if got := update(&adminv1.UpdateClientRequest{ClientId: "tv", Pkce: "required"}); !got.GetDeviceAuthorization() {
			t.Fatalf("an update without the field changed it: %v", got)
		}
		off := false
		if got := update(&adminv1.UpdateClientRequest{ClientId: "tv", DeviceAuthorization: &off}); got.GetDeviceAuthorization() {
			t.Fatalf("turned off: %v", got)
		}
		if status := start(); status != http.StatusBadRequest {
			t.Fatalf("device_authorization after it was turned off: %d", status)
		}
	})
}
