// Package backchannel delivers logout tokens to relying parties over HTTP
// (OpenID Connect Back-Channel Logout 1.0 §2.5): the outbound side of
// internal/logout, kept apart so that the core imports no net/http.
package backchannel

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxAnswerBytes bounds what is read of a receiver's answer: it says
// nothing Chit needs, and reading it lets the connection be reused.
const maxAnswerBytes = 16 << 10

// Client POSTs logout tokens.
type Client struct {
	http *http.Client
}

// New returns a Client whose every delivery (connecting, sending, reading
// the answer) ends within timeout, and which follows no redirect: a
// receiver must not turn Chit into a POSTer of logout tokens to wherever it
// points, and §2.5 expects 200 or 204. transport may be nil (the default).
func New(timeout time.Duration, transport http.RoundTripper) *Client {
	return &Client{http: &http.Client{
		Timeout:       timeout,
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Deliver POSTs logoutToken to uri as the form field logout_token. An
// error names the URI and what failed, never the token.
func (c *Client) Deliver(ctx context.Context, uri, logoutToken string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(url.Values{"logout_token": {logoutToken}}.Encode()))
	if err != nil {
		return fmt.Errorf("back-channel logout URI: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return err // a *url.Error: the method, the URI and the cause
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerBytes))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("the receiver answered %d, want 200 or 204", resp.StatusCode)
	}
	return nil
}
