package signinpage_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/testenv/browsertest"
)

// TestSignInInARealBrowser drives the sign-in page in headless Chromium: it
// types the credentials, submits, and follows the redirect to a loopback
// listener, as `chit login` would receive it.
func TestSignInInARealBrowser(t *testing.T) {
	t.Parallel()
	browsertest.Chromium(t)
	e := servertest.Start(t)

	type arrival struct{ code, state string }
	arrived := make(chan arrival, 1)
	listener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- arrival{r.URL.Query().Get("code"), r.URL.Query().Get("state")}:
		default:
		}
		_, _ = w.Write([]byte("<!doctype html><title>done</title><h1>Login finished</h1>"))
	}))
	t.Cleanup(listener.Close)
	redirectURI := listener.URL + "/callback"

	verifier := servertest.NewVerifier(t)
	req := servertest.AuthorizeRequest(verifier, "openid")
	req.RedirectUri = redirectURI
	resp, err := authv1.NewAuthServiceClient(e.Conn).GetAuthorizeUrl(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	pageURL, _ := url.Parse(resp.GetUrl())
	base, _ := url.Parse(e.HTTPBase())
	pageURL.Scheme, pageURL.Host = base.Scheme, base.Host

	ctx := browsertest.Browser(t, 60*time.Second)

	err = chromedp.Do(ctx,
		chromedp.Navigate(pageURL.String()),
		chromedp.WaitVisible(chromedp.CSS(`#username`)),
	)
	if err != nil {
		t.Fatalf("open the sign-in page in Chromium: %v", err)
	}
	// The username field has focus first, for keyboard users.
	focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#username`), servertest.UserName),
		chromedp.SendKeys(chromedp.CSS(`#password`), servertest.UserPassword),
	); err != nil {
		t.Fatalf("fill the form: %v", err)
	}
	screenshot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[value="sign-in"]`))); err != nil {
		t.Fatalf("submit: %v", err)
	}
	if focused != "username" {
		t.Errorf("first focused element is %q, want username", focused)
	}
	shot := filepath.Join(t.TempDir(), "signin.png")
	if dir := os.Getenv("CHIT_SCREENSHOT_DIR"); dir != "" {
		shot = filepath.Join(dir, "signin.png")
	}
	if len(screenshot) == 0 {
		t.Fatal("empty screenshot")
	}
	if err := os.WriteFile(shot, screenshot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the sign-in page: %s", shot)

	var got arrival
	select {
	case got = <-arrived:
	case <-ctx.Done():
		t.Fatal("the browser never reached the loopback redirect")
	}
	if got.state != "state-123" || got.code == "" {
		t.Fatalf("redirect carried state %q code %q", got.state, got.code)
	}
	token, err := authv1.NewAuthServiceClient(e.Conn).LoginCli(context.Background(),
		&authv1.LoginCliRequest{Code: got.code, RedirectUri: redirectURI, CodeVerifier: verifier})
	if err != nil || token.GetAccessToken().GetIdToken() == "" {
		t.Fatalf("LoginCli after the browser sign-in: %v, %v", token, err)
	}
}
