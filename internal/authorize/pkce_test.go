package authorize

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
)

// Chit's own CLI client needs no store: these tests check the request rules
// alone.
func newValidator(requirePKCE bool) *Service {
	directory := accounts.NewDirectory(accounts.Config{}, accounts.Dependencies{Now: time.Now, Random: rand.Reader})
	return NewService(Config{RequirePKCE: requirePKCE}, Dependencies{Directory: directory, Now: time.Now, Random: rand.Reader})
}

func TestAuthorizeRequestPKCEAndLimits(t *testing.T) {
	verifier := strings.Repeat("v", 43)
	challenge := ChallengeFor(verifier)
	valid := Request{ClientID: CLIClientID, RedirectURI: "http://127.0.0.1:9/cb", State: "s", CodeChallenge: challenge, CodeChallengeMethod: "S256",
		ResponseType: ResponseTypeCode}
	for _, tc := range []struct {
		name    string
		change  func(*Request)
		pkce    bool
		refused string // a fragment of the message; "" when accepted
	}{
		{"valid", func(*Request) {}, true, ""},
		{"S256 by default", func(r *Request) { r.CodeChallengeMethod = "" }, true, ""},
		{"plain", func(r *Request) { r.CodeChallengeMethod = "plain" }, true, "plain is not allowed"},
		{"another method", func(r *Request) { r.CodeChallengeMethod = "S512" }, true, "not supported"},
		{"a long method is cut in the message", func(r *Request) { r.CodeChallengeMethod = strings.Repeat("m", 1000) }, true, `mmm"... is not supported`},
		{"method without challenge", func(r *Request) { r.CodeChallenge = "" }, true, "without code_challenge"},
		{"challenge too short", func(r *Request) { r.CodeChallenge = challenge[:42] }, true, "43 characters"},
		{"challenge too long", func(r *Request) { r.CodeChallenge = challenge + "A" }, true, "43 characters"},
		{"challenge with padding", func(r *Request) { r.CodeChallenge = challenge[:42] + "=" }, true, "43 characters"},
		{"challenge in the standard alphabet", func(r *Request) { r.CodeChallenge = "+" + challenge[1:] }, true, "43 characters"},
		{"no challenge when PKCE is required", func(r *Request) { r.CodeChallenge, r.CodeChallengeMethod = "", "" }, true, "code_challenge is required"},
		// The CLI is a public client: PKCE whatever the server's setting.
		{"no challenge from the CLI, PKCE not required", func(r *Request) { r.CodeChallenge, r.CodeChallengeMethod = "", "" }, false, "code_challenge is required"},
		{"no state, with PKCE", func(r *Request) { r.State = "" }, true, ""},
		{"state of 512 characters", func(r *Request) { r.State = strings.Repeat("é", 512) }, true, ""},
		{"state of 513 characters", func(r *Request) { r.State = strings.Repeat("s", 513) }, true, "at most 512"},
		{"nonce of 513 characters", func(r *Request) { r.Nonce = strings.Repeat("n", 513) }, true, "at most 512"},
		{"state not UTF-8", func(r *Request) { r.State = "\xff" }, true, "UTF-8"},
		{"redirect not on loopback", func(r *Request) { r.RedirectURI = "https://example.com/cb" }, true, "redirect_uri"},
		{"redirect too long", func(r *Request) { r.RedirectURI = "http://127.0.0.1:9/" + strings.Repeat("p", 2048) }, true, "longer than"},
		{"the API client", func(r *Request) { r.ClientID = accounts.APIClientID }, true, "does not sign people in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := valid
			tc.change(&req)
			_, err := newValidator(tc.pkce).Validate(context.Background(), req)
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refused != "" && (chiterr.KindOf(err) != chiterr.InvalidArgument || !strings.Contains(err.Error(), tc.refused)):
				t.Fatalf("got %v, want INVALID_ARGUMENT mentioning %q", err, tc.refused)
			}
		})
	}
}

func TestCheckVerifier(t *testing.T) {
	verifier := strings.Repeat("a", 43)
	challenge := ChallengeFor(verifier)
	for _, tc := range []struct {
		name, challenge, verifier string
		refused                   string
	}{
		{"matching", challenge, verifier, ""},
		{"no PKCE at all", "", "", ""},
		{"verifier without challenge", "", verifier, "issued without code_challenge"},
		{"challenge without verifier", challenge, "", "code_verifier is required"},
		{"verifier too short", challenge, verifier[:42], "malformed"},
		{"verifier too long", challenge, strings.Repeat("a", 129), "malformed"},
		{"verifier with a character RFC 7636 excludes", challenge, verifier[:42] + "+", "malformed"},
		{"another verifier", challenge, strings.Repeat("b", 43), "does not match"},
		{"the longest verifier", ChallengeFor(strings.Repeat("~", 128)), strings.Repeat("~", 128), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkVerifier(tc.challenge, tc.verifier)
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refused != "" && (chiterr.KindOf(err) != chiterr.Unauthenticated || !strings.Contains(err.Error(), tc.refused)):
				t.Fatalf("got %v, want UNAUTHENTICATED mentioning %q", err, tc.refused)
			}
		})
	}
}
