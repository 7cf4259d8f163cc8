package interop_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/testenv"
	"github.com/chit-auth/chit/internal/testenv/browsertest"
)

// oauth2ProxyVersion is the release .ci/run installs.
const oauth2ProxyVersion = "v7.15.6"

// oauth2-proxy in front of a small upstream, with its documented minimum
// configuration for an OIDC provider and nothing more (plus the flag it
// needs to serve plain http, as the test does): its default scopes
// (openid email profile), no PKCE (its default), its default sign-in page
// with the provider button, and the email taken from the ID token, which
// must be verified. The client is registered confidential with PKCE
// optional, as docs/relying-parties.md says. A person who opens the
// upstream in Chromium is sent through Chit's sign-in page and arrives at
// the upstream with oauth2-proxy's identity headers.
func TestOAuth2Proxy(t *testing.T) {
	t.Parallel()
	binary := testenv.Program(t, "oauth2-proxy", "go install github.com/oauth2-proxy/oauth2-proxy/v7@"+oauth2ProxyVersion)
	e, issuer := startIssuer(t)
	browser := browsertest.Browser(t, 2*time.Minute)
	if err := e.Directory().SetUserProfile(t.Context(), servertest.UserName,
		storage.Profile{Email: "alice@example.com", EmailVerified: true, DisplayName: "Alice Liddell"}, accounts.AllProfileFields); err != nil {
		t.Fatal(err)
	}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "<!doctype html><title>upstream</title><p id=user>%s</p><p id=email>%s</p>",
			r.Header.Get("X-Forwarded-User"), r.Header.Get("X-Forwarded-Email"))
	}))
	t.Cleanup(upstream.Close)

	proxy := "http://127.0.0.1:" + strconv.Itoa(freePort(t))
	secret := e.RegisterClient(t, accounts.ClientRegistration{ID: "proxy", RedirectURIs: []string{proxy + "/oauth2/callback"},
		Confidential: true, PKCEOptional: true})
	var logs lockedBuffer
	cmd := exec.Command(binary,
		"--provider=oidc",
		"--oidc-issuer-url="+issuer,
		"--client-id=proxy",
		"--client-secret="+secret,
		"--cookie-secret=0123456789abcdef0123456789abcdef",
		"--email-domain=*",
		"--upstream="+upstream.URL,
		"--http-address="+strings.TrimPrefix(proxy, "http://"),
		// oauth2-proxy's own rule for plain http, whatever the provider:
		// with its default Secure cookie it writes an https redirect_uri.
		"--cookie-secure=false",
	)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("oauth2-proxy's output:\n%s", logs.String())
		}
	})
	waitForHTTP(t, proxy+"/ping")

	steps, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(steps,
		chromedp.Navigate(proxy+"/"),
		// oauth2-proxy's own sign-in page, with the provider's button.
		chromedp.WaitVisible(chromedp.CSS(`button[type="submit"]`)),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#username`)),
		chromedp.SendKeys(chromedp.CSS(`#username`), servertest.UserName),
		chromedp.SendKeys(chromedp.CSS(`#password`), servertest.UserPassword),
		chromedp.Click(chromedp.CSS(`button[value="sign-in"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#email`)),
	); err != nil {
		location, _ := chromedp.Run(browser, chromedp.Location())
		page, _ := chromedp.Run(browser, chromedp.OuterHTML(chromedp.CSS(`body`)))
		t.Fatalf("sign in through oauth2-proxy: %v (the browser is at %s, showing %s)", err, location, page)
	}
	user, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(`#user`)))
	if err != nil {
		t.Fatal(err)
	}
	email, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(`#email`)))
	if err != nil {
		t.Fatal(err)
	}
	if email != "alice@example.com" || user == "" {
		t.Fatalf("the upstream got X-Forwarded-User %q and X-Forwarded-Email %q; want the person and alice@example.com", user, email)
	}
}

// waitForHTTP waits until url answers 200, for a process just started.
func waitForHTTP(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never answered 200: %v", url, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
