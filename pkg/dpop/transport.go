package dpop

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/oauth2"
)

// The HTTP headers of DPoP (RFC 9449 §4.1, §8.1).
const (
	ProofHeader = "DPoP"
	NonceHeader = "DPoP-Nonce"
)

// AccessToken is the access token of an Authorization value and whether it
// came with the DPoP scheme (RFC 9449 §7.1) rather than Bearer (schemes
// are case-insensitive); "" when the value has neither scheme. Chit's
// server and pkg/verifier read Authorization with it, so they agree.
func AccessToken(authorization string) (token string, dpopScheme bool) {
	scheme, rest, ok := strings.Cut(authorization, " ")
	if !ok {
		return "", false
	}
	switch {
	case strings.EqualFold(scheme, "bearer"):
		return strings.TrimSpace(rest), false
	case strings.EqualFold(scheme, "dpop"):
		return strings.TrimSpace(rest), true
	}
	return "", false
}

// Transport is an http.RoundTripper that sends DPoP proofs: each request
// gets a fresh proof from Signer for its method and URL. With Tokens it
// also sends Tokens' access token as `Authorization: DPoP <token>` (the
// proof then carries its ath), for calls to resource servers; without, it
// sends the proof only, for requests to a token endpoint (pkg/client's
// token sources use it so).
//
// A server may demand nonces (RFC 9449 §8, §9): Transport remembers the
// last DPoP-Nonce each origin sent and puts it in later proofs, and when a
// request is refused with use_dpop_nonce (a 401 challenge, or a 400 token
// endpoint error) it retries that request once with the new nonce. A
// request whose body cannot be read again (no GetBody) is not retried.
//
// The zero value is not usable: Signer is required. Transport is safe for
// concurrent use; do not copy it after first use.
type Transport struct {
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
	// Signer makes the proofs.
	Signer *Signer
	// Tokens, when set, gives the access token of every request.
	Tokens oauth2.TokenSource

	mu     sync.Mutex
	nonces map[string]string // origin (scheme://host) → the last nonce it sent
}

// maxErrorBody bounds the 400 answer read to find a use_dpop_nonce error.
const maxErrorBody = 64 << 10

// RoundTrip sends req with a proof, and once more with a fresh one when
// the server asked for a new nonce.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	closeBody := func() {
		if req.Body != nil {
			req.Body.Close()
		}
	}
	if t.Signer == nil {
		closeBody()
		return nil, errors.New("dpop: Transport has no Signer")
	}
	var accessToken string
	if t.Tokens != nil {
		token, err := t.Tokens.Token()
		if err != nil {
			closeBody()
			return nil, err
		}
		accessToken = token.AccessToken
	}
	origin := strings.ToLower(req.URL.Scheme + "://" + req.URL.Host)
	nonce := t.nonce(origin)
	response, err := t.send(req, req.Body, accessToken, nonce)
	if err != nil {
		return nil, err
	}
	fresh := response.Header.Get(NonceHeader)
	if fresh == "" {
		return response, nil
	}
	t.remember(origin, fresh)
	if fresh == nonce || (req.Body != nil && req.Body != http.NoBody && req.GetBody == nil) || !askedForNonce(response) {
		return response, nil
	}
	var body io.ReadCloser
	if req.GetBody != nil {
		if body, err = req.GetBody(); err != nil {
			return response, nil
		}
	}
	response.Body.Close()
	return t.send(req, body, accessToken, fresh)
}

func (t *Transport) send(req *http.Request, body io.ReadCloser, accessToken, nonce string) (*http.Response, error) {
	proof, err := t.Signer.Proof(req.Method, req.URL.String(), accessToken, nonce)
	if err != nil {
		if body != nil {
			body.Close()
		}
		return nil, err
	}
	// A RoundTripper must not change the request it was given.
	out := req.Clone(req.Context())
	out.Body = body
	out.Header.Set(ProofHeader, proof)
	if accessToken != "" {
		out.Header.Set("Authorization", "DPoP "+accessToken)
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(out)
}

// askedForNonce reports whether response refuses a proof for its nonce: a
// 401 whose DPoP challenge says use_dpop_nonce (RFC 9449 §9), or a 400
// whose OAuth error is use_dpop_nonce (§8). It reads the start of a 400's
// body and puts it back in front of the rest.
func askedForNonce(response *http.Response) bool {
	switch response.StatusCode {
	case http.StatusUnauthorized:
		for _, challenge := range response.Header.Values("WWW-Authenticate") {
			if strings.Contains(challenge, CodeUseNonce) {
				return true
			}
		}
	case http.StatusBadRequest:
		original := response.Body
		raw, err := io.ReadAll(io.LimitReader(original, maxErrorBody))
		response.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(raw), original), original}
		if err != nil {
			return false
		}
		var answer struct {
			Error string `json:"error"`
		}
		return json.Unmarshal(raw, &answer) == nil && answer.Error == CodeUseNonce
	}
	return false
}

func (t *Transport) nonce(origin string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nonces[origin]
}

func (t *Transport) remember(origin, nonce string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nonces == nil {
		t.nonces = map[string]string{}
	}
	t.nonces[origin] = nonce
}
