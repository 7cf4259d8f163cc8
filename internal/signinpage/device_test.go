package signinpage_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/server/servertest"
)

func startDeviceLogin(t *testing.T, e *servertest.Env) *authv1.StartDeviceLoginResponse {
	t.Helper()
	started, err := authv1.NewAuthServiceClient(e.Conn).StartDeviceLogin(context.Background(), &authv1.StartDeviceLoginRequest{Scope: "openid"})
	if err != nil {
		t.Fatal(err)
	}
	return started
}

func pollCode(t *testing.T, e *servertest.Env, deviceCode string) codes.Code {
	t.Helper()
	_, err := authv1.NewAuthServiceClient(e.Conn).PollDeviceLogin(context.Background(), &authv1.PollDeviceLoginRequest{DeviceCode: deviceCode})
	return status.Code(err)
}

// The verification page: the code form, then the confirmation that names
// the client, scopes, address and time, behind the sign-in page's headers.
func TestDevicePageShowsTheRequest(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	started := startDeviceLogin(t, e)
	b := e.NewBrowser(t)
	form := b.Open(t, e.HTTPBase()+"/oauth2/device")
	if form.Status != http.StatusOK || !form.Contains("Enter the code") || form.Fields.Get("csrf_token") == "" {
		t.Fatalf("code form: %d %s", form.Status, form.Body)
	}
	csp := form.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") ||
		form.Header.Get("X-Frame-Options") != "DENY" || form.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("headers %v", form.Header)
	}
	// Typed in lower case without the dash.
	typed := strings.ToLower(strings.ReplaceAll(started.GetUserCode(), "-", ""))
	confirm := servertest.ReadPage(t, b.Submit(t, form, url.Values{"user_code": {typed}, "action": {"lookup"}}))
	for _, want := range []string{"Confirm the device", started.GetUserCode(), "the Chit command line", "openid", "127.0.0.1", "UTC", `name="password"`} {
		if !confirm.Contains(want) {
			t.Fatalf("confirmation lacks %q: %s", want, confirm.Body)
		}
	}
	// A wrong password shows the request again; nothing is approved.
	again := servertest.ReadPage(t, b.Submit(t, confirm, url.Values{"username": {servertest.UserName}, "password": {"wrong"}, "action": {"approve"}}))
	if again.Status != http.StatusUnauthorized || !again.Contains("Wrong username or password") || !again.Contains(started.GetUserCode()) {
		t.Fatalf("wrong password: %d %s", again.Status, again.Body)
	}
	if c := pollCode(t, e, started.GetDeviceCode()); c != codes.FailedPrecondition {
		t.Fatalf("poll after a wrong password: %s", c)
	}
}

// Forms without the CSRF token (another site posting into the page) are
// refused and change nothing.
func TestDevicePageRefusesForgedForms(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	started := startDeviceLogin(t, e)
	for name, form := range map[string]url.Values{
		"approve without a token": {"user_code": {started.GetUserCode()}, "username": {servertest.UserName}, "password": {servertest.UserPassword}, "action": {"approve"}},
		"deny without a token":    {"user_code": {started.GetUserCode()}, "action": {"deny"}},
		"a made-up token":         {"user_code": {started.GetUserCode()}, "action": {"deny"}, "csrf_token": {"made-up"}},
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := e.NewBrowser(t).Client.PostForm(e.HTTPBase()+"/oauth2/device", form)
			if err != nil {
				t.Fatal(err)
			}
			if page := servertest.ReadPage(t, resp); page.Status != http.StatusForbidden {
				t.Fatalf("forged form: %d %s", page.Status, page.Body)
			}
		})
	}
	if c := pollCode(t, e, started.GetDeviceCode()); c != codes.FailedPrecondition {
		t.Fatalf("poll after forged forms: %s", c)
	}
}

// Guessing codes on the page is throttled by address, as passwords are.
func TestDevicePageThrottlesGuesses(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	started := startDeviceLogin(t, e)
	b := e.NewBrowser(t)
	for i := range 5 {
		page := b.Open(t, e.HTTPBase()+"/oauth2/device?user_code=BBBB-BBB"+string(rune('B'+i)))
		if page.Status != http.StatusBadRequest || !page.Contains("not valid") {
			t.Fatalf("guess %d: %d %s", i, page.Status, page.Body)
		}
	}
	page := b.Open(t, e.HTTPBase()+"/oauth2/device?user_code="+started.GetUserCode())
	if page.Status != http.StatusTooManyRequests || page.Header.Get("Retry-After") == "" {
		t.Fatalf("the right code after five wrong ones: %d %s", page.Status, page.Body)
	}
}

// With a sign-in session the confirmation asks for no password: it names
// the person, and Approve approves as them.
func TestDevicePageUsesTheSignInSession(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	b := e.NewBrowser(t)
	first := startDeviceLogin(t, e)
	if page := e.AnswerDevice(t, b, first.GetUserCode(), servertest.UserPassword, true); !page.Contains("Device approved") {
		t.Fatalf("first approval: %s", page.Body)
	}
	second := startDeviceLogin(t, e)
	confirm := b.Open(t, e.HTTPBase()+"/oauth2/device?user_code="+second.GetUserCode())
	if !confirm.Contains("Signed in as") || !confirm.Contains(servertest.UserName) || confirm.Contains(`name="password"`) {
		t.Fatalf("confirmation with a session: %s", confirm.Body)
	}
	if done := servertest.ReadPage(t, b.Submit(t, confirm, url.Values{"action": {"approve"}})); !done.Contains("Device approved") {
		t.Fatalf("approval through the session: %d %s", done.Status, done.Body)
	}
	e.Clock.Advance(10e9)
	answer, err := authv1.NewAuthServiceClient(e.Conn).PollDeviceLogin(context.Background(), &authv1.PollDeviceLoginRequest{DeviceCode: second.GetDeviceCode()})
	if err != nil || answer.GetAccessToken().GetIdToken() == "" {
		t.Fatalf("poll after the session's approval: %v %v", answer, err)
	}
	// Without a session, Approve with no password is refused.
	third := startDeviceLogin(t, e)
	stranger := e.NewBrowser(t)
	confirm = stranger.Open(t, e.HTTPBase()+"/oauth2/device?user_code="+third.GetUserCode())
	if page := servertest.ReadPage(t, stranger.Submit(t, confirm, url.Values{"action": {"approve"}})); page.Status != http.StatusBadRequest || !page.Contains("required") {
		t.Fatalf("approval without a sign-in: %d %s", page.Status, page.Body)
	}
}
