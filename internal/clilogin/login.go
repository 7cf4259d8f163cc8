package clilogin

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
)

// DefaultScope asks for a refresh token and an ID token.
const DefaultScope = "openid offline_access"

// Options configure one login.
type Options struct {
	Auth authv1.AuthServiceClient
	// OpenBrowser opens the sign-in URL; nil only prints it.
	OpenBrowser func(url string) error
	// Out receives the instructions for the person.
	Out     io.Writer
	Timeout time.Duration
	Scope   string
	// Now is the clock used for the expiry of the stored tokens.
	Now func() time.Time
}

// Errors a person can act on.
var (
	ErrTimedOut  = errors.New("login timed out: the browser did not come back; run chit login again")
	ErrCancelled = errors.New("login was cancelled in the browser")
)

type callback struct {
	code string
	err  error
}

var finishedPage = template.Must(template.New("done").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Chit login</title></head>
<body style="font-family:system-ui,sans-serif;display:grid;place-items:center;min-height:90vh">
<main><h1>{{.}}</h1><p>You can close this tab and return to the terminal.</p></main></body></html>`))

// Login runs the browser sign-in and returns the new credentials.
func Login(ctx context.Context, opts Options) (Credentials, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	if opts.Scope == "" {
		opts.Scope = DefaultScope
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Credentials{}, fmt.Errorf("open a loopback port for the browser to return to: %w", err)
	}
	defer listener.Close()
	redirectURI := "http://" + listener.Addr().String() + "/callback"
	state, err := randomString(24)
	if err != nil {
		return Credentials{}, err
	}
	// PKCE (RFC 7636) with x/oauth2's helpers: 32 random bytes, S256.
	verifier := oauth2.GenerateVerifier()

	authURL, err := opts.Auth.GetAuthorizeUrl(ctx, &authv1.GetAuthorizeUrlRequest{
		State:               state,
		RedirectUri:         redirectURI,
		Scope:               opts.Scope,
		CodeChallenge:       oauth2.S256ChallengeFromVerifier(verifier),
		CodeChallengeMethod: "S256",
	})
	if err != nil {
		return Credentials{}, err
	}

	results := make(chan callback, 1)
	server := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: callbackHandler(state, results)}
	go func() { _ = server.Serve(listener) }()
	defer server.Close()

	fmt.Fprintf(opts.Out, "Open this URL to sign in:\n\n  %s\n\n", authURL.GetUrl())
	if opts.OpenBrowser != nil {
		if err := opts.OpenBrowser(authURL.GetUrl()); err != nil {
			fmt.Fprintf(opts.Out, "(could not open a browser: %v)\n", err)
		}
	}
	// The timeout counts the person's time in the browser only.
	wait := time.NewTimer(opts.Timeout)
	defer wait.Stop()
	var result callback
	select {
	case result = <-results:
	case <-wait.C:
		return Credentials{}, ErrTimedOut
	case <-ctx.Done():
		return Credentials{}, ctx.Err()
	}
	if result.err != nil {
		return Credentials{}, result.err
	}
	resp, err := opts.Auth.LoginCli(ctx, &authv1.LoginCliRequest{Code: result.code, RedirectUri: redirectURI, CodeVerifier: verifier})
	if err != nil {
		return Credentials{}, err
	}
	return fromAccessToken(resp.GetAccessToken(), opts.Now()), nil
}

// callbackHandler takes the first redirect that reaches /callback with this
// login's state. Any other request (a stray one from another local
// program, or a forged one) is answered with an error and ignored, so it
// can neither abort the login nor slip a code into it.
func callbackHandler(state string, results chan<- callback) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		query := r.URL.Query()
		if subtle.ConstantTimeCompare([]byte(query.Get("state")), []byte(state)) != 1 {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusBadRequest)
			_ = finishedPage.Execute(w, "This is not the login in progress")
			return
		}
		var result callback
		switch {
		case query.Get("error") == "access_denied":
			result.err = ErrCancelled
		case query.Get("error") != "":
			result.err = fmt.Errorf("the sign-in page answered %q", query.Get("error"))
		case query.Get("code") == "":
			result.err = errors.New("the browser came back without a code")
		default:
			result.code = query.Get("code")
		}
		message := "Login finished"
		if result.err != nil {
			message = "Login failed"
			w.WriteHeader(http.StatusBadRequest)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = finishedPage.Execute(w, message)
		select {
		case results <- result:
		default: // a second redirect changes nothing
		}
	})
	return mux
}

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
