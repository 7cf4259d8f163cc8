package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// JWTBearerGrant is RFC 7523's grant type, with which a workload exchanges
// the JWT its platform gave it for a Chit access token.
const JWTBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// maxTokenFile bounds the workload token file read: platform tokens are
// 1 to 2 KiB, and Chit refuses assertions over 16 KiB.
const maxTokenFile = 16 << 10

// FederatedTokenFile returns a token source for a workload whose platform
// writes it a JWT in the file at path (a Kubernetes projected
// service-account token, a file the CI job wrote its OIDC token to, a
// SPIFFE JWT-SVID): it exchanges the file's token on issuer's
// /oauth2/token (grant_type jwt-bearer) for the access token of the
// service account a federation rule maps it to, and exchanges again before
// that token expires. The file is read again for each exchange, so a token
// the platform rotated (Kubernetes rewrites it well before it expires) is
// the one sent. The HTTP client is ctx's oauth2.HTTPClient value, as with
// x/oauth2, or http.DefaultClient. In a ctx of WithDPoP the tokens are
// DPoP-bound.
func FederatedTokenFile(ctx context.Context, issuer, path string, scopes ...string) oauth2.TokenSource {
	return FederatedToken(ctx, issuer, func() (string, error) { return readTokenFile(path) }, scopes...)
}

// FederatedToken is FederatedTokenFile with the workload's token from
// assertion (called for each exchange) instead of a file.
func FederatedToken(ctx context.Context, issuer string, assertion func() (string, error), scopes ...string) oauth2.TokenSource {
	ctx, bound := dpopContext(ctx)
	return &federatedSource{ctx: ctx, tokenURL: TokenURL(issuer), read: assertion, scopes: scopes, now: time.Now, bound: bound}
}

func readTokenFile(path string) (string, error) {
	file, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer file.Close()
	body, err := io.ReadAll(io.LimitReader(file, maxTokenFile+1))
	if err != nil {
		return "", err
	}
	if len(body) > maxTokenFile {
		return "", fmt.Errorf("workload token file %s is larger than %d KiB", path, maxTokenFile>>10)
	}
	token := strings.TrimSpace(string(body))
	if token == "" {
		return "", fmt.Errorf("workload token file %s is empty", path)
	}
	return token, nil
}

type federatedSource struct {
	ctx      context.Context
	tokenURL string
	read     func() (string, error)
	scopes   []string
	now      func() time.Time
	// bound: the token must be DPoP-bound (WithDPoP).
	bound bool

	mu      sync.Mutex
	current *oauth2.Token
	// renewAt is when current is replaced: EarlyRefresh before it expires,
	// or a quarter of its life when that is shorter (a token capped at a
	// short-lived assertion's expiry).
	renewAt time.Time
}

func (s *federatedSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.current != nil && now.Before(s.renewAt) {
		return s.current, nil
	}
	token, lifetime, err := s.exchange()
	if err != nil {
		return nil, err
	}
	token.Expiry = now.Add(lifetime)
	s.current, s.renewAt = token, now.Add(lifetime-min(EarlyRefresh, lifetime/4))
	return token, nil
}

func (s *federatedSource) exchange() (*oauth2.Token, time.Duration, error) {
	assertion, err := s.read()
	if err != nil {
		return nil, 0, err
	}
	form := url.Values{"grant_type": {JWTBearerGrant}, "assertion": {assertion}}
	if len(s.scopes) > 0 {
		form.Set("scope", strings.Join(s.scopes, " "))
	}
	request, err := http.NewRequestWithContext(s.ctx, http.MethodPost, s.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, 0, err
	}
	request.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	client := http.DefaultClient
	if c, ok := s.ctx.Value(oauth2.HTTPClient).(*http.Client); ok && c != nil {
		client = c
	}
	response, err := client.Do(request)
	if err != nil {
		return nil, 0, err
	}
	defer response.Body.Close()
	body, err := io.ReadAll(io.LimitReader(response.Body, 1<<20))
	if err != nil {
		return nil, 0, err
	}
	var answer struct {
		AccessToken      string `json:"access_token"`
		TokenType        string `json:"token_type"`
		ExpiresIn        int64  `json:"expires_in"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &answer)
	if response.StatusCode != http.StatusOK {
		return nil, 0, &oauth2.RetrieveError{Response: response, Body: body, ErrorCode: answer.Error, ErrorDescription: answer.ErrorDescription}
	}
	if answer.AccessToken == "" || answer.ExpiresIn <= 0 {
		return nil, 0, errors.New("chit: the token endpoint answered no access token or no expiry")
	}
	if s.bound {
		if err := checkTokenType(answer.TokenType); err != nil {
			return nil, 0, err
		}
	}
	return &oauth2.Token{AccessToken: answer.AccessToken, TokenType: answer.TokenType}, time.Duration(answer.ExpiresIn) * time.Second, nil
}
