package authorize

import (
	"context"
	"crypto/rand"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

const testIssuer = "https://chit.example"

func newResponder(requirePKCE bool) *Service {
	directory := accounts.NewDirectory(accounts.Config{}, accounts.Dependencies{Now: time.Now, Random: rand.Reader})
	return NewService(Config{Issuer: testIssuer, RequirePKCE: requirePKCE}, Dependencies{Directory: directory, Now: time.Now, Random: rand.Reader})
}

// Every single-valued parameter sent twice is noted, and the multi-valued
// ones are not; request and request_uri are noted as unsupported.
func TestParseRequestNotesRepeatedParameters(t *testing.T) {
	values := url.Values{"client_id": {"a", "b"}, "state": {"s", "s"}, "max_age": {"1", "2"}, "scope": {"openid"},
		"resource": {"https://a.example", "https://b.example"}, "request_uri": {"urn:x"}}
	req := ParseRequest(values)
	if !slices.Equal(req.Repeated, []string{"client_id", "state", "max_age"}) {
		t.Errorf("Repeated = %v", req.Repeated)
	}
	if !slices.Equal(req.Unsupported, []string{"request_uri"}) {
		t.Errorf("Unsupported = %v", req.Unsupported)
	}
	if req.ClientID != "a" || req.Scope != "openid" {
		t.Errorf("parsed %+v", req)
	}
	// Values writes back what ParseRequest reads.
	full := Request{ClientID: "c", RedirectURI: "https://c.example/cb", State: "s", Scope: "openid", Nonce: "n", CodeChallenge: "x",
		CodeChallengeMethod: "S256", ResponseType: "code", ResponseMode: "query", Prompt: "login", MaxAge: "0"}
	if got := ParseRequest(full.Values()); got.Prompt != full.Prompt || got.MaxAge != full.MaxAge || got.ResponseMode != full.ResponseMode || got.Nonce != full.Nonce ||
		got.ClientID != full.ClientID || len(got.Repeated) != 0 {
		t.Errorf("round trip: %+v", got)
	}
	if len(full.Values()) != len(Parameters) {
		t.Errorf("Values sets %d parameters, Parameters names %d", len(full.Values()), len(Parameters))
	}
}

// The rules checked once the client and redirect URI are good, for each kind
// of client: what is refused and with which RFC 6749 §4.1.2.1 error code.
func TestRequestRulesAfterTheClientIsKnown(t *testing.T) {
	challenge := ChallengeFor(strings.Repeat("v", 43))
	public := accounts.Client{ID: "spa", Grants: accountsGrants("openid")}
	confidential := accounts.Client{ID: "web", Confidential: true, Grants: accountsGrants("openid")}
	optional := accounts.Client{ID: "proxy", Confidential: true, PKCEOptional: true, Grants: accountsGrants("openid", "email")}
	withPKCE := Request{ResponseType: "code", State: "s", Scope: "openid", CodeChallenge: challenge}
	withoutPKCE := Request{ResponseType: "code", State: "s", Scope: "openid"}
	for _, tc := range []struct {
		name        string
		client      accounts.Client
		requirePKCE bool
		req         Request
		change      func(*Request)
		code        string // "" when accepted
	}{
		{"a public client with PKCE", public, true, withPKCE, nil, ""},
		{"a public client with PKCE and no state", public, true, withPKCE, func(r *Request) { r.State = "" }, ""},
		{"a public client without PKCE", public, true, withoutPKCE, nil, "invalid_request"},
		{"a public client without PKCE where the server does not require it", public, false, withoutPKCE, nil, "invalid_request"},
		{"a confidential client without PKCE", confidential, true, withoutPKCE, nil, "invalid_request"},
		{"a confidential client without PKCE where the server does not require it", confidential, false, withoutPKCE, nil, ""},
		{"a confidential client with PKCE", confidential, true, withPKCE, nil, ""},
		{"PKCE optional, without PKCE", optional, true, withoutPKCE, nil, ""},
		{"PKCE optional, with PKCE", optional, true, withPKCE, nil, ""},
		{"PKCE optional, without PKCE or state", optional, true, withoutPKCE, func(r *Request) { r.State = "" }, "invalid_request"},
		{"PKCE optional, a bad challenge", optional, true, withPKCE, func(r *Request) { r.CodeChallenge = "short" }, "invalid_request"},
		{"no response_type", public, true, withPKCE, func(r *Request) { r.ResponseType = "" }, "invalid_request"},
		{"response_type token", public, true, withPKCE, func(r *Request) { r.ResponseType = "token" }, "unsupported_response_type"},
		{"response_type code id_token", public, true, withPKCE, func(r *Request) { r.ResponseType = "code id_token" }, "unsupported_response_type"},
		{"response_mode query", public, true, withPKCE, func(r *Request) { r.ResponseMode = "query" }, ""},
		{"response_mode form_post", public, true, withPKCE, func(r *Request) { r.ResponseMode = "form_post" }, ""},
		{"response_mode fragment", public, true, withPKCE, func(r *Request) { r.ResponseMode = "fragment" }, "invalid_request"},
		{"an unknown response_mode", public, true, withPKCE, func(r *Request) { r.ResponseMode = "carrier-pigeon" }, "invalid_request"},
		{"prompt none", public, true, withPKCE, func(r *Request) { r.Prompt = "none" }, ""},
		{"prompt login consent", public, true, withPKCE, func(r *Request) { r.Prompt = "login consent" }, ""},
		{"prompt select_account", public, true, withPKCE, func(r *Request) { r.Prompt = "select_account" }, ""},
		{"an unknown prompt", public, true, withPKCE, func(r *Request) { r.Prompt = "login dance" }, "invalid_request"},
		{"prompt none with login", public, true, withPKCE, func(r *Request) { r.Prompt = "none login" }, "invalid_request"},
		{"max_age 0", public, true, withPKCE, func(r *Request) { r.MaxAge = "0" }, ""},
		{"max_age 3600", public, true, withPKCE, func(r *Request) { r.MaxAge = "3600" }, ""},
		{"max_age past a duration", public, true, withPKCE, func(r *Request) { r.MaxAge = "999999999999999999" }, ""},
		{"max_age -1", public, true, withPKCE, func(r *Request) { r.MaxAge = "-1" }, "invalid_request"},
		{"max_age abc", public, true, withPKCE, func(r *Request) { r.MaxAge = "abc" }, "invalid_request"},
		{"max_age +5", public, true, withPKCE, func(r *Request) { r.MaxAge = "+5" }, "invalid_request"},
		{"max_age 1.5", public, true, withPKCE, func(r *Request) { r.MaxAge = "1.5" }, "invalid_request"},
		{"max_age of 19 digits", public, true, withPKCE, func(r *Request) { r.MaxAge = "1000000000000000000" }, "invalid_request"},
		{"a repeated max_age", public, true, withPKCE, func(r *Request) { r.Repeated = []string{"max_age"} }, "invalid_request"},
		{"a scope the client may not ask for", public, true, withPKCE, func(r *Request) { r.Scope = "openid admin" }, "invalid_scope"},
		{"a repeated scope parameter", public, true, withPKCE, func(r *Request) { r.Repeated = []string{"scope"} }, "invalid_request"},
		{"a repeated nonce", public, true, withPKCE, func(r *Request) { r.Repeated = []string{"nonce"} }, "invalid_request"},
		{"a request object", public, true, withPKCE, func(r *Request) { r.Unsupported = []string{"request"} }, "request_not_supported"},
		{"a request_uri", public, true, withPKCE, func(r *Request) { r.Unsupported = []string{"request_uri"} }, "request_uri_not_supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			if tc.change != nil {
				tc.change(&req)
			}
			err := newResponder(tc.requirePKCE).checkRequest(tc.client, &req)
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.code != "" && (err == nil || errorCode(err) != tc.code || chiterr.KindOf(err) != chiterr.InvalidArgument):
				t.Fatalf("got %v (%s), want INVALID_ARGUMENT answered %s", err, errorCode(err), tc.code)
			}
		})
	}
}

func accountsGrants(scopes ...string) storage.Grants { return storage.Grants{AllowedScopes: scopes} }

// Errors found before the client and redirect URI are known good stay on
// the page; those after go to the redirect URI with error,
// error_description, the state when it is one clean value, and iss.
func TestErrorsRedirectOnlyToAGoodRedirectURI(t *testing.T) {
	s := newResponder(true)
	challenge := ChallengeFor(strings.Repeat("v", 43))
	good := url.Values{"response_type": {"code"}, "client_id": {CLIClientID}, "redirect_uri": {"http://127.0.0.1:9/cb?app=1"},
		"state": {"xyz"}, "code_challenge": {challenge}}
	with := func(change func(url.Values)) Request {
		values := url.Values{}
		for name, v := range good {
			values[name] = slices.Clone(v)
		}
		change(values)
		return ParseRequest(values)
	}
	for _, tc := range []struct {
		name     string
		req      Request
		redirect bool
		code     string
		state    string
	}{
		{"an unregistered redirect", with(func(v url.Values) { v.Set("redirect_uri", "https://evil.example/cb") }), false, "", ""},
		{"no redirect", with(func(v url.Values) { v.Del("redirect_uri") }), false, "", ""},
		{"a repeated redirect_uri", with(func(v url.Values) { v.Add("redirect_uri", "https://evil.example/cb") }), false, "", ""},
		{"the same redirect_uri twice", with(func(v url.Values) { v.Add("redirect_uri", v.Get("redirect_uri")) }), false, "", ""},
		{"a repeated client_id", with(func(v url.Values) { v.Add("client_id", "other") }), false, "", ""},
		{"the API client", with(func(v url.Values) { v.Set("client_id", accounts.APIClientID) }), false, "", ""},
		{"a repeated state", with(func(v url.Values) { v.Add("state", "abc") }), true, "invalid_request", ""},
		{"a state that is not UTF-8", with(func(v url.Values) { v.Set("state", "\xff") }), true, "invalid_request", ""},
		{"a state too long", with(func(v url.Values) { v.Set("state", strings.Repeat("s", 513)) }), true, "invalid_request", ""},
		{"a repeated scope", with(func(v url.Values) { v["scope"] = []string{"openid", "openid"} }), true, "invalid_request", "xyz"},
		{"a repeated response_type", with(func(v url.Values) { v.Add("response_type", "token") }), true, "invalid_request", "xyz"},
		{"response_type token", with(func(v url.Values) { v.Set("response_type", "token") }), true, "unsupported_response_type", "xyz"},
		{"an unknown prompt", with(func(v url.Values) { v.Set("prompt", "maybe") }), true, "invalid_request", "xyz"},
		{"an unknown response_mode", with(func(v url.Values) { v.Set("response_mode", "web_message") }), true, "invalid_request", "xyz"},
		{"no PKCE", with(func(v url.Values) { v.Del("code_challenge") }), true, "invalid_request", "xyz"},
		{"no PKCE and no state", with(func(v url.Values) { v.Del("code_challenge"); v.Del("state") }), true, "invalid_request", ""},
		{"plain PKCE", with(func(v url.Values) { v.Set("code_challenge_method", "plain") }), true, "invalid_request", "xyz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Validate(context.Background(), tc.req)
			if err == nil {
				t.Fatal("accepted")
			}
			if chiterr.KindOf(err) != chiterr.InvalidArgument {
				t.Fatalf("kind %v: %v", chiterr.KindOf(err), err)
			}
			target, redirect := s.ErrorRedirect(err)
			if redirect != tc.redirect {
				t.Fatalf("redirect %v (%q), want %v: %v", redirect, target, tc.redirect, err)
			}
			if !redirect {
				return
			}
			u, _ := url.Parse(target)
			query := u.Query()
			if !strings.HasPrefix(target, "http://127.0.0.1:9/cb?") || query.Get("app") != "1" {
				t.Fatalf("redirected to %s, want the registered URI with its own query", target)
			}
			if query.Get("error") != tc.code || query.Get("iss") != testIssuer || query.Get("error_description") == "" ||
				query.Get("state") != tc.state || query.Has("state") != (tc.state != "") || query.Has("code") {
				t.Fatalf("redirect query %v", query)
			}
			for _, r := range query.Get("error_description") {
				if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
					t.Fatalf("error_description %q has %q, outside RFC 6749 §4.1.2.1", query.Get("error_description"), r)
				}
			}
		})
	}
	if _, err := s.Validate(context.Background(), with(func(url.Values) {})); err != nil {
		t.Fatalf("the good request: %v", err)
	}
}

// Every authorization response names the issuer (RFC 9207): the code, a
// refusal, login_required and access_denied; an empty state is left out.
func TestResponsesCarryTheIssuer(t *testing.T) {
	s := newResponder(true)
	req := Request{RedirectURI: "http://127.0.0.1:9/cb", State: "s"}
	for name, target := range map[string]string{
		"code":           s.response(req.RedirectURI, url.Values{"code": {"c"}, "state": {""}}),
		"error":          s.errorResponse(req.RedirectURI, "s", "invalid_scope", chiterr.New(chiterr.InvalidArgument, `scope "x" é`)),
		"login_required": s.LoginRequired(req),
	} {
		u, _ := url.Parse(target)
		if u.Query().Get("iss") != testIssuer {
			t.Errorf("%s: %s lacks iss", name, target)
		}
		if name == "code" && u.Query().Has("state") {
			t.Errorf("an empty state was sent: %s", target)
		}
		if name == "error" && u.Query().Get("error_description") != `scope 'x' ?` {
			t.Errorf("error_description %q", u.Query().Get("error_description"))
		}
	}
}

// The response keeps the registered redirect URI's own query whole: its
// parameters come back beside code, state and iss, in their escapes.
func TestRedirectsKeepTheRegisteredQuery(t *testing.T) {
	s := newResponder(true)
	const registered = "https://app.example/cb?tenant=a%20b&next=%2Fhome&flag"
	if err := ValidateRedirectURIs([]string{registered}); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(s.response(registered, url.Values{"code": {"c"}, "state": {"s"}}))
	if err != nil {
		t.Fatal(err)
	}
	query := u.Query()
	if query.Get("tenant") != "a b" || query.Get("next") != "/home" || !query.Has("flag") || query.Get("code") != "c" || query.Get("state") != "s" {
		t.Fatalf("the response lost part of the registered query: %s", u)
	}
}

// Which requests a live session may answer without the form, and how
// max_age reads.
func TestWhenASessionMayAnswer(t *testing.T) {
	for _, tc := range []struct {
		name     string
		req      Request
		wantForm bool
	}{
		{"no prompt", Request{ClientID: "app"}, false},
		{"prompt none", Request{ClientID: "app", Prompt: "none"}, false},
		{"prompt login", Request{ClientID: "app", Prompt: "login"}, true},
		{"prompt consent", Request{ClientID: "app", Prompt: "consent"}, true},
		{"prompt select_account", Request{ClientID: "app", Prompt: "select_account"}, true},
		{"prompt login consent", Request{ClientID: "app", Prompt: "consent login"}, true},
		// chit apikey create needs a recent sign-in: the CLI always types
		// its password.
		{"the CLI", Request{ClientID: CLIClientID}, true},
		{"the CLI with prompt none", Request{ClientID: CLIClientID, Prompt: "none"}, true},
	} {
		if got := tc.req.wantsForm(); got != tc.wantForm {
			t.Errorf("%s: wantsForm = %v", tc.name, got)
		}
	}
	if _, asked := (Request{}).maxAge(); asked {
		t.Error("no max_age reads as asked")
	}
	if age, asked := (Request{MaxAge: "0"}).maxAge(); !asked || age != 0 {
		t.Errorf("max_age 0 = %v, %v", age, asked)
	}
	if age, asked := (Request{MaxAge: "90"}).maxAge(); !asked || age != 90*time.Second {
		t.Errorf("max_age 90 = %v, %v", age, asked)
	}
	if age, _ := (Request{MaxAge: "999999999999999999"}).maxAge(); age <= 0 {
		t.Errorf("a huge max_age overflows to %v", age)
	}
}
