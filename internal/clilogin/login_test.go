package clilogin_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/clilogin"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// signInAs returns an OpenBrowser that fills and submits the form.
func signInAs(t *testing.T, e *servertest.Env, action string) func(string) error {
	return func(authorizeURL string) error {
		browser := e.NewBrowser(t)
		page := browser.Open(t, authorizeURL)
		if page.Status != http.StatusOK {
			t.Errorf("sign-in page: HTTP %d", page.Status)
			return nil
		}
		resp := browser.Submit(t, page, url.Values{"username": {servertest.UserName}, "password": {servertest.UserPassword}, "action": {action}})
		done := servertest.ReadPage(t, resp)
		if !strings.Contains(done.Body, "Login") {
			t.Errorf("the loopback page after sign-in says %q", done.Body)
		}
		return nil
	}
}

func TestLoginEndToEnd(t *testing.T) {
	e := servertest.Start(t)
	auth := authv1.NewAuthServiceClient(e.Conn)
	var printed strings.Builder
	creds, err := clilogin.Login(context.Background(), clilogin.Options{
		Auth: auth, OpenBrowser: signInAs(t, e, "sign-in"), Out: &printed, Timeout: 30 * time.Second, Now: e.Clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessToken == "" || creds.RefreshToken == "" || creds.IDToken == "" || creds.Scope != "openid offline_access" {
		t.Fatalf("credentials = %+v", creds)
	}
	if !strings.Contains(printed.String(), "/oauth2/authorize?") {
		t.Fatalf("the URL was not printed: %q", printed.String())
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+creds.AccessToken)
	who, err := auth.CheckToken(ctx, &authv1.CheckTokenRequest{})
	if err != nil || who.GetSubject() != servertest.UserName {
		t.Fatalf("CheckToken = %v, %v", who, err)
	}

	path := filepath.Join(t.TempDir(), "chit", "credentials.json")
	if err := clilogin.Save(path, creds); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file mode %v, %v; want 0600", info.Mode().Perm(), err)
	}
	token, err := clilogin.ValidAccessToken(context.Background(), auth, path, "", e.Clock.Now())
	if err != nil || token != creds.AccessToken {
		t.Fatal("a fresh token must be returned as is")
	}
	// Near expiry the token is refreshed through RefreshCli and saved.
	later := e.Clock.Now().Add(15*time.Minute - 30*time.Second)
	token, err = clilogin.ValidAccessToken(context.Background(), auth, path, "", later)
	if err != nil || token == creds.AccessToken {
		t.Fatalf("expected a refreshed token: %v", err)
	}
	saved, _ := clilogin.Load(path)
	if saved.RefreshToken == creds.RefreshToken || saved.AccessToken != token {
		t.Fatal("the rotated tokens were not saved")
	}
	// The old refresh token was rotated away: once the grace period is over,
	// a stale copy says to log in again.
	e.Clock.Advance(servertest.GracePeriod + time.Second)
	if err := clilogin.Save(path, creds); err != nil {
		t.Fatal(err)
	}
	if _, err := clilogin.ValidAccessToken(context.Background(), auth, path, "", later); !errors.Is(err, clilogin.ErrSessionExpired) {
		t.Fatalf("stale refresh token: %v, want ErrSessionExpired", err)
	}
	if err := clilogin.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := clilogin.ValidAccessToken(context.Background(), auth, path, "", later); !errors.Is(err, clilogin.ErrNotLoggedIn) {
		t.Fatalf("after logout: %v, want ErrNotLoggedIn", err)
	}
}

func TestLoginCancelled(t *testing.T) {
	e := servertest.Start(t)
	_, err := clilogin.Login(context.Background(), clilogin.Options{
		Auth: authv1.NewAuthServiceClient(e.Conn), OpenBrowser: signInAs(t, e, "cancel"), Out: &strings.Builder{}, Timeout: 30 * time.Second,
	})
	if !errors.Is(err, clilogin.ErrCancelled) {
		t.Fatalf("got %v, want ErrCancelled", err)
	}
}

// A stray request to the loopback callback (another login's state, or
// none) is answered with an error and ignored: the login goes on and
// finishes when the browser comes back with its own state.
func TestLoginIgnoresAnotherState(t *testing.T) {
	e := servertest.Start(t)
	signIn := signInAs(t, e, "sign-in")
	creds, err := clilogin.Login(context.Background(), clilogin.Options{
		Auth: authv1.NewAuthServiceClient(e.Conn),
		OpenBrowser: func(authorizeURL string) error {
			u, _ := url.Parse(authorizeURL)
			for _, stray := range []string{"?code=stolen&state=forged", "?code=stolen", "?error=access_denied&state=forged"} {
				resp, err := http.Get(u.Query().Get("redirect_uri") + stray)
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest {
					t.Errorf("a stray callback %s: %d, want 400", stray, resp.StatusCode)
				}
			}
			return signIn(authorizeURL)
		},
		Out: &strings.Builder{}, Timeout: 30 * time.Second,
	})
	if err != nil || creds.AccessToken == "" {
		t.Fatalf("the login after stray callbacks: %+v, %v", creds, err)
	}
}

func TestLoginTimesOut(t *testing.T) {
	e := servertest.Start(t)
	_, err := clilogin.Login(context.Background(), clilogin.Options{
		Auth: authv1.NewAuthServiceClient(e.Conn), Out: &strings.Builder{}, Timeout: 200 * time.Millisecond,
	})
	if !errors.Is(err, clilogin.ErrTimedOut) {
		t.Fatalf("got %v, want ErrTimedOut", err)
	}
}
