package oauth2http_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

func startDevice(t *testing.T, e *servertest.Env, form url.Values) map[string]any {
	t.Helper()
	resp, body := postForm(t, e, "/oauth2/device_authorization", form, "", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("device_authorization: %d %v", resp.StatusCode, body)
	}
	return body
}

func pollDevice(t *testing.T, e *servertest.Env, clientID, deviceCode string) (int, map[string]any) {
	t.Helper()
	resp, body := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {deviceCode}, "client_id": {clientID}}, "", "")
	return resp.StatusCode, body
}

func wantDeviceError(t *testing.T, status int, body map[string]any, code string) {
	t.Helper()
	if status != http.StatusBadRequest || body["error"] != code {
		t.Fatalf("poll answered %d %v, want 400 %s", status, body, code)
	}
}

// RFC 8628 over /oauth2/*: the device asks, polls (pending, slow_down),
// the person approves on the verification page, one poll gets tokens
// (access, refresh, ID token with openid), the next is invalid_grant.
func TestDeviceFlowOverOAuth2(t *testing.T) {
	onEachBackend(t, func(t *testing.T, e *servertest.Env) {
		started := startDevice(t, e, url.Values{"client_id": {"chit-cli"}, "scope": {"openid profile"}})
		deviceCode, _ := started["device_code"].(string)
		userCode, _ := started["user_code"].(string)
		if deviceCode == "" || len(userCode) != 9 || started["interval"] != float64(5) || started["expires_in"] != float64(600) ||
			started["verification_uri"] != servertest.Issuer+"/oauth2/device" ||
			started["verification_uri_complete"] != servertest.Issuer+"/oauth2/device?user_code="+userCode {
			t.Fatalf("device_authorization answered %v", started)
		}
		status, body := pollDevice(t, e, "chit-cli", deviceCode)
		wantDeviceError(t, status, body, "authorization_pending")
		status, body = pollDevice(t, e, "chit-cli", deviceCode)
		wantDeviceError(t, status, body, "slow_down")

		page := e.AnswerDevice(t, e.NewBrowser(t), userCode, servertest.UserPassword, true)
		if page.Status != http.StatusOK || !page.Contains("Device approved") {
			t.Fatalf("approval: %d %s", page.Status, page.Body)
		}
		// The interval grew to 10 s by the slow_down.
		e.Clock.Advance(6 * time.Second)
		status, body = pollDevice(t, e, "chit-cli", deviceCode)
		wantDeviceError(t, status, body, "slow_down")
		e.Clock.Advance(15 * time.Second)
		status, body = pollDevice(t, e, "chit-cli", deviceCode)
		if status != http.StatusOK || body["access_token"] == nil || body["refresh_token"] == nil || body["id_token"] == nil || body["scope"] != "openid profile" {
			t.Fatalf("approved poll: %d %v", status, body)
		}
		if subject := checkSubject(t, e, body["access_token"].(string)); subject != servertest.UserName {
			t.Fatalf("token of %q", subject)
		}
		e.Clock.Advance(time.Minute)
		status, body = pollDevice(t, e, "chit-cli", deviceCode)
		wantDeviceError(t, status, body, "invalid_grant")
	})
}

func TestDeviceFlowDeniedAndExpired(t *testing.T) {
	e := servertest.Start(t)
	denied := startDevice(t, e, url.Values{"client_id": {"chit-cli"}})
	page := e.AnswerDevice(t, e.NewBrowser(t), denied["user_code"].(string), "", false)
	if page.Status != http.StatusOK || !page.Contains("Request denied") {
		t.Fatalf("deny: %d %s", page.Status, page.Body)
	}
	status, body := pollDevice(t, e, "chit-cli", denied["device_code"].(string))
	wantDeviceError(t, status, body, "access_denied")

	expired := startDevice(t, e, url.Values{"client_id": {"chit-cli"}})
	e.Clock.Advance(10 * time.Minute)
	status, body = pollDevice(t, e, "chit-cli", expired["device_code"].(string))
	wantDeviceError(t, status, body, "expired_token")
	// Its page says the code is not valid.
	confirm := e.NewBrowser(t).Open(t, e.HTTPBase()+"/oauth2/device?user_code="+expired["user_code"].(string))
	if confirm.Status != http.StatusBadRequest || !confirm.Contains("not valid") {
		t.Fatalf("expired code's page: %d %s", confirm.Status, confirm.Body)
	}
}

func TestDeviceAuthorizationRefusals(t *testing.T) {
	e := servertest.Start(t)
	e.CreateClient(t, "dashboard", []string{"https://dash.example/cb"}, false, storage.Grants{AllowedScopes: []string{"read"}})
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"no client", url.Values{}, http.StatusBadRequest, "invalid_request"},
		{"a client not allowed the grant", url.Values{"client_id": {"dashboard"}}, http.StatusBadRequest, "unauthorized_client"},
		{"the API client", url.Values{"client_id": {"chit-api"}}, http.StatusBadRequest, "unauthorized_client"},
		{"an unknown client", url.Values{"client_id": {"nobody"}}, http.StatusUnauthorized, "invalid_client"},
		{"a malformed scope", url.Values{"client_id": {"chit-cli"}, "scope": {"a\x01"}}, http.StatusBadRequest, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := postForm(t, e, "/oauth2/device_authorization", tc.form, "", "")
			if resp.StatusCode != tc.status || body["error"] != tc.code {
				t.Fatalf("answered %d %v, want %d %s", resp.StatusCode, body, tc.status, tc.code)
			}
		})
	}
	// The device grant at the token endpoint refuses the same clients.
	started := startDevice(t, e, url.Values{"client_id": {"chit-cli"}})
	status, body := pollDevice(t, e, "dashboard", started["device_code"].(string))
	wantDeviceError(t, status, body, "unauthorized_client")
}

// A registered client the administrator allowed the grant uses it, within
// its allowed scopes.
func TestDeviceFlowForARegisteredClient(t *testing.T) {
	e := servertest.Start(t)
	e.CreateClient(t, "tv", []string{"https://tv.example/cb"}, false, storage.Grants{AllowedScopes: []string{"read"}})
	ctx := t.Context()
	if err := e.Store.UpdateClient(ctx, "tv", func(c *storage.Client) (*storage.SubjectRevocation, error) {
		c.DeviceAuthorization = true
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	resp, body := postForm(t, e, "/oauth2/device_authorization", url.Values{"client_id": {"tv"}, "scope": {"write"}}, "", "")
	if resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_scope" {
		t.Fatalf("scope outside the client's: %d %v", resp.StatusCode, body)
	}
	started := startDevice(t, e, url.Values{"client_id": {"tv"}, "scope": {"openid read"}})
	e.AnswerDevice(t, e.NewBrowser(t), started["user_code"].(string), servertest.UserPassword, true)
	// The CLI cannot redeem the tv's code.
	status, body := pollDevice(t, e, "chit-cli", started["device_code"].(string))
	wantDeviceError(t, status, body, "invalid_grant")
	e.Clock.Advance(time.Minute)
	status, body = pollDevice(t, e, "tv", started["device_code"].(string))
	if status != http.StatusOK || !strings.Contains(body["scope"].(string), "read") {
		t.Fatalf("tv's poll: %d %v", status, body)
	}
}

func TestDiscoveryAdvertisesTheDeviceEndpoint(t *testing.T) {
	e := servertest.Start(t)
	status, body := servertest.Get(t, e.HTTPBase()+"/.well-known/openid-configuration")
	if status != http.StatusOK || !strings.Contains(body, `"device_authorization_endpoint":"`+servertest.Issuer+`/oauth2/device_authorization"`) ||
		!strings.Contains(body, "urn:ietf:params:oauth:grant-type:device_code") {
		t.Fatalf("discovery: %d %s", status, body)
	}
}

// The polling interval holds across replicas: the last poll's time is in
// the shared row, so a poll on one replica right after one on the other is
// slow_down, and the grown interval is every replica's. One approval
// issues once, whichever replica is polled.
func TestDeviceSlowDownAcrossReplicas(t *testing.T) {
	t.Parallel()
	primary := servertest.StartOn(t, servertest.Postgres)
	replica := primary.StartReplica(t)
	started := startDevice(t, primary, url.Values{"client_id": {"chit-cli"}, "scope": {"openid"}})
	deviceCode := started["device_code"].(string)

	status, body := pollDevice(t, primary, "chit-cli", deviceCode)
	wantDeviceError(t, status, body, "authorization_pending")
	status, body = pollDevice(t, replica, "chit-cli", deviceCode)
	wantDeviceError(t, status, body, "slow_down")
	// 6 s is past the first interval but not the grown one (10 s).
	primary.Clock.Advance(6 * time.Second)
	status, body = pollDevice(t, primary, "chit-cli", deviceCode)
	wantDeviceError(t, status, body, "slow_down")
	primary.Clock.Advance(16 * time.Second)
	status, body = pollDevice(t, replica, "chit-cli", deviceCode)
	wantDeviceError(t, status, body, "authorization_pending")

	replica.AnswerDevice(t, replica.NewBrowser(t), started["user_code"].(string), servertest.UserPassword, true)
	primary.Clock.Advance(20 * time.Second)
	status, body = pollDevice(t, primary, "chit-cli", deviceCode)
	if status != http.StatusOK || body["access_token"] == nil {
		t.Fatalf("approved poll: %d %v", status, body)
	}
	primary.Clock.Advance(time.Minute)
	status, body = pollDevice(t, replica, "chit-cli", deviceCode)
	wantDeviceError(t, status, body, "invalid_grant")
}
