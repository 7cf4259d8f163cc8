package interop_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/testenv/browsertest"
)

// spaScript is a single-page app's whole OAuth flow, as a browser app
// written against the standards does it, with fetch and Web Crypto only:
// discovery and PKCE on the start page, then on the callback the code
// exchange, userinfo, the JWKS and revocation. Each step's outcome goes
// into #result for the test to read. CHIT is Chit's base URL; the endpoints
// are discovery's paths on it (the test server's issuer names no reachable
// host).
const spaScript = `
const chit = CHIT;
const b64url = bytes => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const endpoint = url => chit + new URL(url).pathname;
const report = result => { const pre = document.createElement("pre"); pre.id = "result"; pre.textContent = JSON.stringify(result); document.body.append(pre); };
async function discover() {
  const answer = await fetch(chit + "/.well-known/openid-configuration");
  return answer.json();
}
async function start() {
  const metadata = await discover();
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const challenge = b64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem("verifier", verifier);
  sessionStorage.setItem("state", state);
  location.assign(endpoint(metadata.authorization_endpoint) + "?" + new URLSearchParams({response_type: "code", client_id: "spa",
    redirect_uri: location.origin + "/callback", scope: "openid offline_access", state, code_challenge: challenge, code_challenge_method: "S256"}));
}
async function callback() {
  const result = {};
  try {
    const params = new URLSearchParams(location.search);
    result.stateMatches = params.get("state") === sessionStorage.getItem("state");
    const metadata = await discover();
    const token = await fetch(endpoint(metadata.token_endpoint), {method: "POST", body: new URLSearchParams({grant_type: "authorization_code",
      code: params.get("code"), redirect_uri: location.origin + "/callback", client_id: "spa", code_verifier: sessionStorage.getItem("verifier")})});
    result.tokenStatus = token.status;
    const tokens = await token.json();
    result.hasIDToken = typeof tokens.id_token === "string" && tokens.id_token.length > 0;
    result.hasRefreshToken = typeof tokens.refresh_token === "string";
    const userinfo = await fetch(endpoint(metadata.userinfo_endpoint), {headers: {Authorization: "Bearer " + tokens.access_token}});
    result.userinfoStatus = userinfo.status;
    result.sub = (await userinfo.json()).sub;
    const jwks = await (await fetch(endpoint(metadata.jwks_uri))).json();
    result.keys = jwks.keys.length;
    const refreshed = await fetch(endpoint(metadata.token_endpoint), {method: "POST", body: new URLSearchParams({grant_type: "refresh_token",
      refresh_token: tokens.refresh_token, client_id: "spa"})});
    result.refreshStatus = refreshed.status;
    const current = await refreshed.json();
    const revoke = await fetch(endpoint(metadata.revocation_endpoint), {method: "POST", body: new URLSearchParams({token: current.refresh_token, client_id: "spa"})});
    result.revokeStatus = revoke.status;
    const after = await fetch(endpoint(metadata.userinfo_endpoint), {headers: {Authorization: "Bearer " + current.access_token}});
    result.userinfoAfterRevokeStatus = after.status;
    result.wwwAuthenticate = after.headers.get("WWW-Authenticate");
  } catch (error) {
    result.error = String(error);
  }
  report(result);
}
location.pathname === "/callback" ? callback() : start();
`

// strangerScript is a page on an origin registered nowhere calling the
// token endpoint: the browser must refuse it the answer.
const strangerScript = `
fetch(CHIT + "/oauth2/token", {method: "POST", body: new URLSearchParams({grant_type: "client_credentials"})})
  .then(answer => "read " + answer.status, error => "blocked: " + error.name)
  .then(outcome => { const pre = document.createElement("pre"); pre.id = "stranger-result"; pre.textContent = JSON.stringify({outcome}); document.documentElement.append(pre); });
`

func servePage(t *testing.T, script, chitBase string) *httptest.Server {
	t.Helper()
	page := fmt.Sprintf("<!doctype html><meta charset=utf-8><title>app</title><script>const CHIT = %q;\n%s</script>", chitBase, script)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(page))
	}))
	t.Cleanup(site.Close)
	return site
}

// A single-page app on another origin signs in with the code flow and PKCE,
// and calls the token, userinfo, JWKS and revoke endpoints from the browser,
// which allows it because its origin is registered on its client; a page on
// an origin registered nowhere is refused the token endpoint's answer.
func TestSinglePageAppInChromium(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	ctx := browsertest.Browser(t, 2*time.Minute)
	app := servePage(t, spaScript, e.HTTPBase())
	e.CreateClient(t, "spa", []string{app.URL + "/callback"}, false, storage.Grants{AllowedScopes: []string{"openid", "offline_access"}})
	if err := e.Directory().SetClientOrigins(t.Context(), "spa", []string{app.URL}); err != nil {
		t.Fatal(err)
	}
	// The server reads the registered origins at most every 2 seconds; its
	// clock is the test's.
	e.Clock.Advance(3 * time.Second)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(app.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#username`)),
		chromedp.SendKeys(chromedp.CSS(`#username`), servertest.UserName),
		chromedp.SendKeys(chromedp.CSS(`#password`), servertest.UserPassword),
		chromedp.Click(chromedp.CSS(`button[value="sign-in"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#result`)),
	); err != nil {
		t.Fatalf("the app's sign-in in Chromium: %v\n%s", err, e.Logs.String())
	}
	var result struct {
		StateMatches              bool
		TokenStatus               int
		HasIDToken                bool
		HasRefreshToken           bool
		UserinfoStatus            int
		Sub                       string
		Keys                      int
		RefreshStatus             int
		RevokeStatus              int
		UserinfoAfterRevokeStatus int
		WWWAuthenticate           string
		Error                     string
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#result`)))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(text), &result); err != nil {
		t.Fatalf("%v: %s", err, text)
	}
	if result.Error != "" || !result.StateMatches || result.TokenStatus != 200 || !result.HasIDToken || !result.HasRefreshToken ||
		result.UserinfoStatus != 200 || result.Sub == "" || result.Keys == 0 || result.RefreshStatus != 200 || result.RevokeStatus != 200 ||
		result.UserinfoAfterRevokeStatus != 401 || !strings.Contains(result.WWWAuthenticate, "invalid_token") {
		t.Fatalf("the app's flow in Chromium: %s", text)
	}

	stranger := servePage(t, strangerScript, e.HTTPBase())
	// The same tab (a new one could hang on a loaded machine); the result
	// has an id of its own, which the app's page never had.
	if err := chromedp.Do(ctx, chromedp.Navigate(stranger.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`#stranger-result`))); err != nil {
		t.Fatal(err)
	}
	outcome, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#stranger-result`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(outcome, `blocked: TypeError`) {
		t.Fatalf("a page on an origin registered nowhere: %s, want the browser to block the answer", outcome)
	}
}
