package main

import (
	"bytes"
	"context"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/server/servertest"
)

func environment(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

// deviceRun runs chit with env as its environment; between polls it lets
// the person act (answer, once, when the code has been printed) and
// advances the server's clock by the interval instead of sleeping.
func deviceRun(t *testing.T, e *servertest.Env, env map[string]string, answer func(userCode string), args ...string) (string, string, error) {
	t.Helper()
	var out bytes.Buffer
	errOut := &lockedBuffer{}
	var once sync.Once
	c := &cli{now: e.Clock.Now, getenv: environment(env),
		openBrowser: func(string) error { t.Error("the device flow opened a browser"); return nil },
		wait: func(_ context.Context, d time.Duration) error {
			once.Do(func() {
				code := regexp.MustCompile(`enter the code\s+([B-Z]{4}-[B-Z]{4})`).FindStringSubmatch(errOut.String())
				if code == nil {
					t.Fatalf("no code printed: %q", errOut.String())
				}
				answer(code[1])
			})
			e.Clock.Advance(d)
			return nil
		}}
	cmd := c.command()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(errOut)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func TestLoginWithTheDeviceFlow(t *testing.T) {
	e := servertest.Start(t)
	credentials := filepath.Join(t.TempDir(), "credentials.json")
	common := []string{"--server", e.Server.GRPCAddr(), "--credentials", credentials}
	desktop := map[string]string{"DISPLAY": ":0"}
	approve := func(code string) {
		if page := e.AnswerDevice(t, e.NewBrowser(t), code, servertest.UserPassword, true); !page.Contains("Device approved") {
			t.Errorf("approval page: %s", page.Body)
		}
	}
	out, errOut, err := deviceRun(t, e, desktop, approve, append([]string{"login", "--device"}, common...)...)
	if err != nil || !strings.Contains(out, "Logged in") {
		t.Fatalf("login --device: %q %q %v", out, errOut, err)
	}
	if !strings.Contains(errOut, servertest.Issuer+"/oauth2/device") || strings.Contains(errOut, "using the device flow because") {
		t.Fatalf("instructions: %q", errOut)
	}
	out, err = run(t, nil, e.Clock.Now, "", append([]string{"whoami"}, common...)...)
	if err != nil || !strings.Contains(out, servertest.UserName) {
		t.Fatalf("whoami after a device login: %q, %v", out, err)
	}

	deny := func(code string) { e.AnswerDevice(t, e.NewBrowser(t), code, "", false) }
	if _, errOut, err := deviceRun(t, e, desktop, deny, append([]string{"login", "--device"}, common...)...); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("denied login: %v (%q)", err, errOut)
	}
}

// chit login picks the device flow by itself over SSH and without a
// display, and says why on stderr; --device=false keeps the browser.
func TestLoginChoosesTheDeviceFlow(t *testing.T) {
	e := servertest.Start(t)
	common := []string{"--server", e.Server.GRPCAddr(), "--credentials", filepath.Join(t.TempDir(), "credentials.json")}
	approve := func(code string) { e.AnswerDevice(t, e.NewBrowser(t), code, servertest.UserPassword, true) }
	for name, tc := range map[string]struct {
		env  map[string]string
		says string
	}{
		"over SSH":   {map[string]string{"DISPLAY": ":0", "SSH_CONNECTION": "192.0.2.1 51000 192.0.2.2 22"}, "SSH_CONNECTION is set"},
		"no display": {map[string]string{}, "there is no display"},
	} {
		t.Run(name, func(t *testing.T) {
			out, errOut, err := deviceRun(t, e, tc.env, approve, append([]string{"login"}, common...)...)
			if err != nil || !strings.Contains(out, "Logged in") || !strings.Contains(errOut, "using the device flow because "+tc.says) {
				t.Fatalf("login: %q %q %v", out, errOut, err)
			}
		})
	}
	t.Run("--device=false over SSH", func(t *testing.T) {
		browser := func(authorizeURL string) error {
			b := e.NewBrowser(t)
			page := b.Open(t, authorizeURL)
			servertest.ReadPage(t, b.Submit(t, page, url.Values{"username": {servertest.UserName}, "password": {servertest.UserPassword}, "action": {"sign-in"}}))
			return nil
		}
		c := &cli{openBrowser: browser, now: e.Clock.Now, getenv: environment(map[string]string{"SSH_CONNECTION": "x"})}
		cmd := c.command()
		var out, errOut bytes.Buffer
		cmd.SetArgs(append([]string{"login", "--device=false"}, common...))
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		if err := cmd.ExecuteContext(context.Background()); err != nil || strings.Contains(errOut.String(), "device flow") {
			t.Fatalf("login --device=false: %q %q %v", out.String(), errOut.String(), err)
		}
	})
}
