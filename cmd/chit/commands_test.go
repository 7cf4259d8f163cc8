package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// run executes chit in-process; browser plays the person's browser.
func run(t *testing.T, browser func(string) error, now func() time.Time, stdin string, args ...string) (string, error) {
	t.Helper()
	// A desktop session, not over SSH: chit login uses the browser.
	c := &cli{openBrowser: browser, now: now, getenv: environment(map[string]string{"DISPLAY": ":0"})}
	cmd := c.command()
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func checkToken(t *testing.T, e *servertest.Env, token string) *authv1.CheckTokenResponse {
	t.Helper()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	claims, err := authv1.NewAuthServiceClient(e.Conn).CheckToken(ctx, &authv1.CheckTokenRequest{})
	if err != nil {
		t.Fatalf("token %q: %v", token, err)
	}
	return claims
}

func TestPasswordTokenPrintsAWorkingAccessToken(t *testing.T) {
	e := servertest.Start(t)
	out, err := run(t, nil, time.Now, servertest.UserPassword+"\n", "token", "--server", e.Server.GRPCAddr(), "--user", servertest.UserName, "--password-stdin")
	if err != nil {
		t.Fatal(err)
	}
	if claims := checkToken(t, e, strings.TrimSpace(out)); claims.GetSubject() != servertest.UserName {
		t.Fatalf("claims %v", claims)
	}
}

func TestLoginWhoamiTokenLogout(t *testing.T) {
	e := servertest.Start(t)
	credentials := filepath.Join(t.TempDir(), "chit", "credentials.json")
	common := []string{"--server", e.Server.GRPCAddr(), "--credentials", credentials}
	browser := func(authorizeURL string) error {
		b := e.NewBrowser(t)
		page := b.Open(t, authorizeURL)
		resp := b.Submit(t, page, url.Values{"username": {servertest.UserName}, "password": {servertest.UserPassword}, "action": {"sign-in"}})
		if done := servertest.ReadPage(t, resp); !strings.Contains(done.Body, "Login finished") {
			t.Errorf("browser ended on %q", done.Body)
		}
		return nil
	}
	out, err := run(t, browser, e.Clock.Now, "", append([]string{"login"}, common...)...)
	if err != nil || !strings.Contains(out, "Logged in") {
		t.Fatalf("login: %q, %v", out, err)
	}
	if info, err := os.Stat(credentials); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, %v", info, err)
	}
	out, err = run(t, nil, e.Clock.Now, "", append([]string{"whoami"}, common...)...)
	if err != nil || !strings.Contains(out, "subject:  "+servertest.UserName) || !strings.Contains(out, "offline_access") {
		t.Fatalf("whoami: %q, %v", out, err)
	}
	first, err := run(t, nil, e.Clock.Now, "", append([]string{"token"}, common...)...)
	if err != nil {
		t.Fatal(err)
	}
	// Fourteen and a half minutes later the stored token is about to expire:
	// chit token refreshes it.
	e.Clock.Advance(14*time.Minute + 30*time.Second)
	second, err := run(t, nil, e.Clock.Now, "", append([]string{"token"}, common...)...)
	if err != nil || second == first {
		t.Fatalf("token was not refreshed: %v", err)
	}
	checkToken(t, e, strings.TrimSpace(second))

	stored, err := os.ReadFile(credentials)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, nil, e.Clock.Now, "", append([]string{"logout"}, common...)...); err != nil || !strings.Contains(out, "Logged out") {
		t.Fatalf("logout: %q, %v", out, err)
	}
	// The login is revoked on the server, not only forgotten here.
	var saved struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(stored, &saved); err != nil {
		t.Fatal(err)
	}
	_, err = authv1.NewAuthServiceClient(e.Conn).RefreshCli(context.Background(), &authv1.RefreshCliRequest{RefreshToken: saved.RefreshToken})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("refresh after logout: %v, want Unauthenticated", err)
	}
	_, err = run(t, nil, e.Clock.Now, "", append([]string{"token"}, common...)...)
	if err == nil || !strings.Contains(err.Error(), "run chit login") {
		t.Fatalf("token after logout: %v", err)
	}
}

// A server whose store cannot be reached answers UNAVAILABLE with a retry
// hint: the server is running, and the person is told to try again.
func TestUnavailableServerIsNotAnUnreachableOne(t *testing.T) {
	answered, err := status.New(codes.Unavailable, "the token store cannot be reached; try again shortly").
		WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	explained := (&cli{serverAddr: "chit.example:9090"}).explain(answered.Err()).Error()
	if strings.Contains(explained, "cannot reach the Chit server") || !strings.Contains(explained, "try again shortly") {
		t.Fatalf("explained as %q", explained)
	}
}

func TestErrorsAreReadable(t *testing.T) {
	e := servertest.Start(t)
	_, err := run(t, nil, time.Now, "wrong password\n", "token", "--server", e.Server.GRPCAddr(), "--user", servertest.UserName, "--password-stdin")
	if err == nil || !strings.Contains(err.Error(), "invalid username or password") {
		t.Fatalf("wrong password: %v", err)
	}
	_, err = run(t, nil, time.Now, "pw\n", "token", "--server", "127.0.0.1:1", "--user", "alice", "--password-stdin", "--timeout", "5s")
	if err == nil || !strings.Contains(err.Error(), "cannot reach the Chit server") {
		t.Fatalf("unreachable server: %v", err)
	}
	_, err = run(t, nil, time.Now, "", "login", "--server", "127.0.0.1:1", "--credentials", filepath.Join(t.TempDir(), "c.json"))
	if err == nil || !strings.Contains(err.Error(), "cannot reach the Chit server") {
		t.Fatalf("login with unreachable server: %v", err)
	}
	_, err = run(t, nil, time.Now, "", "token", "--user", "alice")
	if err == nil || !strings.Contains(err.Error(), "--password-stdin") {
		t.Fatalf("missing --password-stdin: %v", err)
	}
}

func TestCodeInWords(t *testing.T) {
	for code, want := range map[codes.Code]string{codes.PermissionDenied: "permission denied", codes.NotFound: "not found",
		codes.Unauthenticated: "unauthenticated"} {
		if got := codeInWords(code); got != want {
			t.Errorf("codeInWords(%v) = %q, want %q", code, got, want)
		}
	}
}

// Boolean flags print as --name in chit's help, as in any cobra program,
// not as --name[=true|false].
func TestHelpPrintsBooleanFlagsPlainly(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		bools []string
	}{
		{[]string{"--help"}, []string{"-h, --help", "--tls", "--insecure-plaintext"}},
		{[]string{"admin", "--help"}, []string{"-h, --help", "--tls", "--insecure-plaintext"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := run(t, nil, time.Now, "", tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out, "[=true|false]") {
				t.Errorf("help marks boolean flags [=true|false]:\n%s", out)
			}
			for _, flag := range tc.bools {
				if !regexp.MustCompile(`(?m)^ +` + regexp.QuoteMeta(flag) + `  +\S`).MatchString(out) {
					t.Errorf("help does not list %s as a plain flag:\n%s", flag, out)
				}
			}
		})
	}
}
