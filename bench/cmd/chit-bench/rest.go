package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"time"

	"github.com/valyala/fasthttp"
)

// restClient calls chitd's REST port over keep-alive HTTP/1.1 connections,
// one per concurrent caller.
//
// It is fasthttp's client rather than net/http's because the load
// generator shares the machine's cores with chitd: net/http's client spent
// about 70 µs of CPU per call here (a reader and a writer goroutine per
// connection and channel hand-offs between them), far more than the gRPC
// client per call, so the REST figures measured the client's cost as much
// as the server's. The server sees the same HTTP/1.1 requests either way.
type restClient struct {
	client *fasthttp.HostClient
	// scheme and host are the REST port's, for the request URIs.
	scheme, host string
}

// newRESTClient reaches the REST port at addr (host:port) with up to conns
// connections, over TLS when tlsConfig is not nil.
func newRESTClient(addr string, tlsConfig *tls.Config, conns int) *restClient {
	c := &restClient{
		client: &fasthttp.HostClient{
			Addr:     addr,
			MaxConns: conns,
			// More callers than connections wait for one instead of
			// failing with ErrNoFreeConns.
			MaxConnWaitTimeout: time.Minute,
			// Answers are small; a failure's body is shown in the error.
			MaxResponseBodySize: 1 << 20,
			ReadTimeout:         time.Minute,
			WriteTimeout:        time.Minute,
		},
		scheme: "http", host: addr,
	}
	if tlsConfig != nil {
		c.client.IsTLS, c.client.TLSConfig, c.scheme = true, tlsConfig, "https"
	}
	return c
}

// call sends one request (a JSON body when body is not nil, an
// Authorization header when authorization is not empty) and returns the
// body of a 200 answer; any other status is an error that quotes the body.
// fasthttp takes no context: a call is not made once ctx is done, and
// ctx's deadline bounds it, but a cancellation does not stop a call that
// has started.
func (c *restClient) call(ctx context.Context, method, path string, body []byte, authorization string) ([]byte, error) {
	return c.send(ctx, method, path, "application/json", body, authorization, "")
}

// callWithProof is call with a DPoP proof (RFC 9449) in the DPoP header.
func (c *restClient) callWithProof(ctx context.Context, method, path, authorization, proof string) ([]byte, error) {
	return c.send(ctx, method, path, "application/json", nil, authorization, proof)
}

// send is call with a body of contentType (a form for the OAuth endpoints)
// and, when not empty, a DPoP proof.
func (c *restClient) send(ctx context.Context, method, path, contentType string, body []byte, authorization, proof string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)

	req.Header.SetMethod(method)
	req.URI().SetScheme(c.scheme)
	req.URI().SetHost(c.host)
	req.URI().SetPath(path)
	if body != nil {
		req.Header.SetContentType(contentType)
		req.SetBodyRaw(body)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	var err error
	if deadline, ok := ctx.Deadline(); ok {
		err = c.client.DoDeadline(req, resp, deadline)
	} else {
		err = c.client.Do(req, resp)
	}
	if err != nil {
		return nil, err
	}
	// resp's buffer goes back to the pool on return.
	answer := append([]byte(nil), resp.Body()...)
	if resp.StatusCode() != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode(), answer)
	}
	return answer, nil
}

// redirect sends a GET of pathAndQuery with a Cookie header and returns the
// Location of a 303 answer; any other status is an error that quotes the
// body. It is the sign-in page's answer to a browser with a session.
func (c *restClient) redirect(ctx context.Context, pathAndQuery, cookie string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(http.MethodGet)
	req.SetRequestURI(c.scheme + "://" + c.host + pathAndQuery)
	req.Header.Set("Cookie", cookie)
	var err error
	if deadline, ok := ctx.Deadline(); ok {
		err = c.client.DoDeadline(req, resp, deadline)
	} else {
		err = c.client.Do(req, resp)
	}
	if err != nil {
		return "", err
	}
	if resp.StatusCode() != http.StatusSeeOther {
		return "", fmt.Errorf("HTTP %d, want 303: %.200s", resp.StatusCode(), resp.Body())
	}
	return string(resp.Header.Peek("Location")), nil
}

// browser is a net/http client for the sign-in page's form in a scenario's
// setup (not measured): it keeps cookies and does not follow redirects.
func (c *restClient) browser() (*http.Client, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	return &http.Client{
		Jar:           jar,
		Transport:     &http.Transport{TLSClientConfig: c.client.TLSConfig},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       time.Minute,
	}, nil
}
