// Package ssfpush POSTs Security Event Tokens to Shared Signals push
// receivers (RFC 8935): the outbound HTTP side of internal/ssf, kept apart
// so that the core imports no net/http.
package ssfpush

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/chit-auth/chit/internal/ssf"
)

// maxAnswerBytes bounds what is read of a receiver's answer: an RFC 8935
// error is a short JSON object.
const maxAnswerBytes = 16 << 10

// Client pushes SETs.
type Client struct {
	http *http.Client
}

// New returns a Client that follows no redirect (a receiver must not turn
// Chit into a POSTer of SETs to wherever it points; RFC 8935 §2.2 expects
// 202) and whose deliveries end within timeout, besides the context's
// deadline. transport may be nil (the default).
func New(timeout time.Duration, transport http.RoundTripper) *Client {
	return &Client{http: &http.Client{
		Timeout:       timeout,
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

var _ ssf.Pusher = (*Client)(nil)

// Push POSTs set to endpoint (RFC 8935 §2.1) with authorization as its
// Authorization header ("" for none). An error never carries the
// Authorization value (a *url.Error names the method and URL).
func (c *Client) Push(ctx context.Context, endpoint, authorization, set string) ssf.PushResult {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(set))
	if err != nil {
		return ssf.PushResult{Err: err}
	}
	req.Header.Set("Content-Type", "application/secevent+jwt")
	req.Header.Set("Accept", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return ssf.PushResult{Err: err}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerBytes))
	result := ssf.PushResult{Status: resp.StatusCode}
	if resp.StatusCode == http.StatusBadRequest {
		// RFC 8935 §2.3: {"err": "...", "description": "..."}.
		var refusal struct {
			Err         string `json:"err"`
			Description string `json:"description"`
		}
		if json.Unmarshal(body, &refusal) == nil {
			result.ErrCode, result.Description = refusal.Err, refusal.Description
		}
	}
	return result
}
