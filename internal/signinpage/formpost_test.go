package signinpage_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/server/servertest"
)

var scriptNonce = regexp.MustCompile(`<script nonce="([^"]+)">`)

// wantFormPost checks that resp is a form_post response (OAuth 2.0 Form
// Post Response Mode §2): a 200 page whose form posts to the registered
// redirect URI, whose one script runs by the nonce the CSP names, and which
// puts the response in no URL. It returns the form's fields.
func wantFormPost(t *testing.T, what string, resp *http.Response) url.Values {
	t.Helper()
	page := servertest.ReadPage(t, resp)
	if page.Status != http.StatusOK || page.Header.Get("Location") != "" {
		t.Fatalf("%s: %d, Location %q; want a 200 page and no redirect", what, page.Status, page.Header.Get("Location"))
	}
	if !strings.Contains(page.Body, `<form method="post" action="`+servertest.Loopback+`">`) {
		t.Fatalf("%s: the form does not post to the redirect URI: %s", what, page.Body)
	}
	nonce := scriptNonce.FindStringSubmatch(page.Body)
	csp := page.Header.Get("Content-Security-Policy")
	if nonce == nil || !strings.Contains(csp, "script-src 'nonce-"+nonce[1]+"'") || !strings.Contains(csp, "form-action http://127.0.0.1:43110;") ||
		!strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("%s: script nonce %v against Content-Security-Policy %q", what, nonce, csp)
	}
	if page.Fields.Get("iss") != servertest.Issuer || page.Fields.Get("state") != "state-123" {
		t.Fatalf("%s: fields %v lack iss or state", what, page.Fields)
	}
	return page.Fields
}

// response_mode=form_post answers the code, a refusal, login_required and
// access_denied as a form posted to the redirect URI, and the posted code
// works; an unregistered redirect URI still gets the error page, never a
// form. Over both transports' GetAuthorizeUrl and the page.
func TestFormPostResponseMode(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		verifier := servertest.NewVerifier(t)
		request := servertest.AuthorizeRequest(verifier, "openid")
		authorizeURL, c := servertest.GetAuthorizeURL(t, tr, request)
		servertest.WantCode(t, "GetAuthorizeUrl", c, codes.OK)
		formPostURL := authorizeURL + "&response_mode=form_post"

		browser := servertest.NoRedirects(t, e)
		page := browser.Open(t, formPostURL)
		if page.Status != http.StatusOK || page.Fields.Get("response_mode") != "form_post" {
			t.Fatalf("the sign-in page: %d, fields %v", page.Status, page.Fields)
		}
		fields := wantFormPost(t, "sign-in", browser.Submit(t, page, url.Values{"username": {servertest.UserName},
			"password": {servertest.UserPassword}, "action": {"sign-in"}}))
		token, c := servertest.LoginCli(t, tr, fields.Get("code"), servertest.Loopback, verifier)
		servertest.WantCode(t, "LoginCli with the posted code", c, codes.OK)
		if token.GetIdToken() == "" {
			t.Fatal("no ID token for the posted code")
		}

		page = browser.Open(t, formPostURL)
		if fields := wantFormPost(t, "cancel", browser.Submit(t, page, url.Values{"action": {"cancel"}})); fields.Get("error") != "access_denied" || fields.Has("code") {
			t.Fatalf("cancel posted %v", fields)
		}
		resp, err := browser.Client.Get(e.HTTPBase() + "/oauth2/authorize?" + rawQuery(t, formPostURL) + "&prompt=none")
		if err != nil {
			t.Fatal(err)
		}
		if fields := wantFormPost(t, "prompt=none", resp); fields.Get("error") != "login_required" {
			t.Fatalf("prompt=none posted %v", fields)
		}
		resp, err = browser.Client.Get(e.HTTPBase() + "/oauth2/authorize?" + rawQuery(t, formPostURL) + "&scope=openid+openid")
		if err != nil {
			t.Fatal(err)
		}
		if fields := wantFormPost(t, "a refusal", resp); fields.Get("error") != "invalid_request" || fields.Get("error_description") == "" {
			t.Fatalf("a refused request posted %v", fields)
		}

		// An unregistered redirect URI: the error page, no form to it.
		bad := url.Values{"response_type": {"code"}, "client_id": {authorize.CLIClientID}, "redirect_uri": {"https://evil.example/cb"},
			"state": {"s"}, "code_challenge": {authorize.ChallengeFor(verifier)}, "response_mode": {"form_post"}}
		page = browser.Open(t, e.HTTPBase()+"/oauth2/authorize?"+bad.Encode())
		if page.Status != http.StatusBadRequest || strings.Contains(page.Body, "evil.example/cb\">") || strings.Contains(page.Body, "<script") {
			t.Fatalf("an unregistered redirect URI with form_post: %d %s", page.Status, page.Body)
		}
	})
}

func rawQuery(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.RawQuery
}
