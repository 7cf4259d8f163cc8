package interop_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/testenv"
	"github.com/chit-auth/chit/internal/testenv/browsertest"
)

// openidClientVersion is the openid-client release the suite runs, from
// the npm registry.
const openidClientVersion = "6.8.9"

// openidClient returns a directory whose node_modules holds openid-client,
// installed once per machine into the user's cache.
func openidClient(t *testing.T) string {
	t.Helper()
	npm := testenv.Program(t, "npm", "apt-get install nodejs npm")
	testenv.Program(t, "node", "apt-get install nodejs")
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "chit-interop", "openid-client-"+openidClientVersion)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openid-client", "package.json")); err == nil {
		return dir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	install := exec.Command(npm, "install", "--no-audit", "--no-fund", "--silent", "--prefix", dir, "openid-client@"+openidClientVersion)
	if out, err := install.CombinedOutput(); err != nil {
		testenv.Missing(t, fmt.Sprintf("npm could not install openid-client %s: %v %s", openidClientVersion, err, out))
	}
	return dir
}

// A Node relying party on openid-client with its defaults (code flow with
// PKCE and no state, ID token and iss checks, userinfo, refresh) signs a
// person in through Chromium, and its logout URL, built from discovery with
// the ID token as hint, sends the browser back to the registered
// post-logout URI with its state.
func TestOpenIDClientWithItsDefaults(t *testing.T) {
	t.Parallel()
	modules := openidClient(t)
	e, issuer := startIssuer(t)
	browser := browsertest.Browser(t, 2*time.Minute)
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	redirectURI := "http://127.0.0.1:" + strconv.Itoa(listener.Addr().(*net.TCPAddr).Port) + "/callback"
	e.CreateClient(t, "node-app", []string{redirectURI}, false, storage.Grants{AllowedScopes: []string{"openid"}})
	const postLogout = "https://node-app.example/signed-out"
	if err := e.Directory().SetClientLogout(t.Context(), "node-app", storage.ClientLogout{PostLogoutRedirectURIs: []string{postLogout}}); err != nil {
		t.Fatal(err)
	}

	script, err := filepath.Abs("testdata/openid-client.mjs")
	if err != nil {
		t.Fatal(err)
	}
	// Node resolves an ES module's imports from the script's directory
	// upwards (not NODE_PATH), so the script runs from a copy beside the
	// installed modules.
	runnable := filepath.Join(modules, "relying-party.mjs")
	source, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(runnable, source, 0o600); err != nil {
		t.Fatal(err)
	}
	node := exec.Command("node", runnable)
	node.Env = append(os.Environ(), "ISSUER="+issuer, "REDIRECT_URI="+redirectURI, "POST_LOGOUT_REDIRECT_URI="+postLogout)
	stdin, _ := node.StdinPipe()
	stdout, _ := node.StdoutPipe()
	node.Stderr = os.Stderr
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Process.Kill(); _ = node.Wait() })
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatalf("openid-client printed no authorization URL: %v", lines.Err())
	}
	authURL := lines.Text()

	callback := signInInBrowser(t, browser, listener, authURL).String()
	if _, err := io.WriteString(stdin, callback+"\n"); err != nil {
		t.Fatal(err)
	}
	if !lines.Scan() {
		t.Fatalf("openid-client printed no result: %v", lines.Err())
	}
	var result struct {
		Sub, UserinfoSub, RefreshedSub, Error string
		EndSession                            bool
		LogoutURL                             string
	}
	if err := json.Unmarshal(lines.Bytes(), &result); err != nil {
		t.Fatalf("%v: %s", err, lines.Text())
	}
	if result.Error != "" || result.Sub != servertest.UserName || result.UserinfoSub != result.Sub || result.RefreshedSub != result.Sub {
		t.Fatalf("openid-client: %s", lines.Text())
	}
	if !result.EndSession {
		t.Fatalf("openid-client found no end_session_endpoint: %s", lines.Text())
	}
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirects.Get(result.LogoutURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != postLogout+"?state=signed-out-state" {
		t.Fatalf("openid-client's logout URL %s: %d to %q", result.LogoutURL, resp.StatusCode, resp.Header.Get("Location"))
	}
}
