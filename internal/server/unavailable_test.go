package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/postgres"
	"github.com/chit-auth/chit/internal/storage/postgres/postgrestest"
	"github.com/chit-auth/chit/internal/storage/sqlite"
	"github.com/chit-auth/chit/internal/storage/sqlite/sqlitetest"
)

// The outcomes of a call, as storeCalls names them.
const (
	outcomeOK = "ok"
	// outcomeUnavailable is UNAVAILABLE with a RetryInfo on gRPC, a 503
	// with Retry-After over HTTP (temporarily_unavailable on /oauth2/token).
	outcomeUnavailable = "unavailable"
	// outcomeInternal is INTERNAL, a 500 without Retry-After (server_error).
	outcomeInternal = "internal"
)

// storeCalls are calls that each need the store: sign-ins and refreshes on
// every transport, client credentials, the sign-in page (shown for a
// registered client, and its form submitted). Each keeps the refresh token
// it rotates.
type storeCalls struct {
	e *servertest.Env
	// refresh tokens by call, replaced when a refresh succeeds.
	refresh map[string]string
	page    servertest.Page
	browser *servertest.Browser
	// clientPage is a sign-in link of a registered client, which the page
	// reads from the store.
	clientPage string
	// unchecked are access tokens, each of its own login, never checked
	// (so no revocation of theirs is cached), for checks.
	unchecked []string
}

// newStoreCalls signs in (the store works now) for the refreshes to come.
func newStoreCalls(t *testing.T, e *servertest.Env) *storeCalls {
	t.Helper()
	c := &storeCalls{e: e, refresh: map[string]string{}}
	for _, name := range []string{"gRPC RefreshToken", "REST refresh", "/oauth2/token refresh_token"} {
		resp, code := servertest.Transports(e)["gRPC"].Token(t, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
		servertest.WantCode(t, "sign in", code, codes.OK)
		c.refresh[name] = resp.GetRefreshToken()
	}
	for range 4 {
		resp, code := servertest.Transports(e)["gRPC"].Token(t, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
		servertest.WantCode(t, "sign in", code, codes.OK)
		c.unchecked = append(c.unchecked, resp.GetAccessToken())
	}
	e.CreateClient(t, "dashboard", []string{"https://d.example/cb"}, false, storage.Grants{AllowedScopes: []string{"openid"}})
	c.clientPage = "/oauth2/authorize?" + url.Values{"response_type": {"code"}, "client_id": {"dashboard"},
		"redirect_uri": {"https://d.example/cb"}, "scope": {"openid"}, "state": {"s"},
		"code_challenge": {authorize.ChallengeFor(servertest.NewVerifier(t))}, "code_challenge_method": {"S256"}}.Encode()
	authorizeURL, code := servertest.GetAuthorizeURL(t, servertest.Transports(e)["gRPC"], servertest.AuthorizeRequest(servertest.NewVerifier(t), "openid"))
	servertest.WantCode(t, "GetAuthorizeUrl", code, codes.OK)
	c.browser = servertest.NoRedirects(t, e)
	if c.page = c.browser.Open(t, authorizeURL); c.page.Status != http.StatusOK {
		t.Fatalf("sign-in page: HTTP %d", c.page.Status)
	}
	return c
}

// run makes every call once and returns each one's outcome: outcomeOK,
// outcomeUnavailable, outcomeInternal, or what else it answered.
func (c *storeCalls) run(t *testing.T) map[string]string {
	t.Helper()
	auth := authv1.NewAuthServiceClient(c.e.Conn)
	outcomes := map[string]string{}
	_, err := auth.Token(context.Background(), servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
	outcomes["gRPC Token"] = grpcOutcome(err)
	resp, err := auth.RefreshToken(context.Background(), &authv1.RefreshTokenRequest{RefreshToken: c.refresh["gRPC RefreshToken"]})
	if outcomes["gRPC RefreshToken"] = grpcOutcome(err); err == nil {
		c.refresh["gRPC RefreshToken"] = resp.GetRefreshToken()
	}

	rest := func(name, path, body string) {
		answer, outcome := httpOutcome(t, mustPost(t, c.e.HTTPBase()+path, "application/json", body))
		if outcomes[name] = outcome; outcome == outcomeOK && strings.Contains(path, "refresh") {
			c.refresh[name] = answer["refreshToken"].(string)
		}
	}
	rest("REST token", "/v1/auth/token", `{"passwordCredential":{"username":"alice","password":"wonderland"}}`)
	rest("REST refresh", "/v1/auth/token/refresh", `{"refreshToken":"`+c.refresh["REST refresh"]+`"}`)

	oauth := func(name string, form url.Values) {
		answer, outcome := httpOutcome(t, mustPost(t, c.e.HTTPBase()+"/oauth2/token", "application/x-www-form-urlencoded", form.Encode()))
		if (outcome == outcomeUnavailable && answer["error"] != "temporarily_unavailable") || (outcome == outcomeInternal && answer["error"] != "server_error") {
			outcome = fmt.Sprintf("%s with error %v", outcome, answer["error"])
		}
		if outcomes[name] = outcome; outcome == outcomeOK && form.Get("grant_type") == "refresh_token" {
			c.refresh[name] = answer["refresh_token"].(string)
		}
	}
	oauth("/oauth2/token password", url.Values{"grant_type": {"password"},
		"username": {servertest.UserName}, "password": {servertest.UserPassword}})
	oauth("/oauth2/token refresh_token", url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {c.refresh["/oauth2/token refresh_token"]}})
	oauth("/oauth2/token client_credentials", url.Values{"grant_type": {"client_credentials"},
		"client_id": {servertest.ServiceName}, "client_secret": {c.e.ServiceSecret}})

	// Another browser: opening the page sets the CSRF cookie the form's
	// submission is checked against.
	shown := c.e.NewBrowser(t).Open(t, c.e.HTTPBase()+c.clientPage)
	switch {
	case shown.Status == http.StatusOK:
		outcomes["sign-in page shown"] = outcomeOK
	case shown.Status == http.StatusServiceUnavailable && shown.Header.Get("Retry-After") != "" && shown.Contains("Sign-in is unavailable for a moment"):
		outcomes["sign-in page shown"] = outcomeUnavailable
	case shown.Status == http.StatusInternalServerError && shown.Header.Get("Retry-After") == "":
		outcomes["sign-in page shown"] = outcomeInternal
	default:
		outcomes["sign-in page shown"] = http.StatusText(shown.Status) + ": " + shown.Body
	}

	page := servertest.ReadPage(t, c.browser.Submit(t, c.page, url.Values{
		"username": {servertest.UserName}, "password": {servertest.UserPassword}, "action": {"sign-in"}}))
	switch {
	case page.Status == http.StatusSeeOther:
		outcomes["sign-in page"] = outcomeOK
	case page.Status == http.StatusServiceUnavailable && page.Header.Get("Retry-After") != "" && page.Contains("Try again shortly"):
		outcomes["sign-in page"] = outcomeUnavailable
	case page.Status == http.StatusInternalServerError && page.Header.Get("Retry-After") == "":
		outcomes["sign-in page"] = outcomeInternal
	default:
		outcomes["sign-in page"] = http.StatusText(page.Status) + ": " + page.Body
	}
	return outcomes
}

// checks revokes, checks and introspects unchecked access tokens, over gRPC
// and at the standard endpoints, and returns the outcomes: a store that
// fails must not be answered "revoked" while the login lives on, nor a valid
// token "invalid".
func (c *storeCalls) checks(t *testing.T) map[string]string {
	t.Helper()
	if len(c.unchecked) < 4 {
		t.Fatal("no unchecked access tokens left")
	}
	tokens := c.unchecked[:4]
	c.unchecked = c.unchecked[4:]
	auth := authv1.NewAuthServiceClient(c.e.Conn)
	outcomes := map[string]string{}
	_, err := auth.Revoke(context.Background(), &authv1.RevokeRequest{Token: tokens[0]})
	outcomes["gRPC Revoke"] = grpcOutcome(err)
	_, err = auth.CheckToken(servertest.WithBearer(tokens[1]), &authv1.CheckTokenRequest{})
	outcomes["gRPC CheckToken"] = grpcOutcome(err)

	standard := func(name string, req *http.Request) {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, outcome := httpOutcome(t, resp)
		if resp.StatusCode == http.StatusOK && answer == nil {
			outcome = outcomeOK // the revocation's empty 200
		}
		if (outcome == outcomeUnavailable && answer["error"] != "temporarily_unavailable") || (outcome == outcomeInternal && answer["error"] != "server_error") {
			outcome = fmt.Sprintf("%d with error %v", resp.StatusCode, answer["error"])
		}
		outcomes[name] = outcome
	}
	form := func(path string, values url.Values) *http.Request {
		req, err := http.NewRequest(http.MethodPost, c.e.HTTPBase()+path, strings.NewReader(values.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req
	}
	standard("/oauth2/revoke", form("/oauth2/revoke", url.Values{"token": {tokens[2]}}))
	introspect := form("/oauth2/introspect", url.Values{"token": {tokens[3]}})
	introspect.SetBasicAuth(servertest.ServiceName, c.e.ServiceSecret)
	standard("/oauth2/introspect", introspect)
	userinfo, err := http.NewRequest(http.MethodGet, c.e.HTTPBase()+"/userinfo", nil)
	if err != nil {
		t.Fatal(err)
	}
	userinfo.Header.Set("Authorization", "Bearer "+tokens[3])
	standard("/userinfo", userinfo)
	return outcomes
}

func grpcOutcome(err error) string {
	st := status.Convert(err)
	switch st.Code() {
	case codes.OK:
		return outcomeOK
	case codes.Unavailable:
		for _, detail := range st.Details() {
			if info, ok := detail.(*errdetails.RetryInfo); ok && info.GetRetryDelay().AsDuration() > 0 {
				return outcomeUnavailable
			}
		}
		return "UNAVAILABLE without RetryInfo"
	case codes.Internal:
		if len(st.Details()) == 0 {
			return outcomeInternal
		}
	}
	return st.Code().String() + ": " + st.Message()
}

func mustPost(t *testing.T, target, contentType, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(target, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// httpOutcome reads a JSON answer and names its outcome.
func httpOutcome(t *testing.T, resp *http.Response) (map[string]any, string) {
	t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	answer := map[string]any{}
	if err := json.Unmarshal(raw, &answer); err != nil {
		return nil, "not JSON: " + string(raw)
	}
	retryAfter := resp.Header.Get("Retry-After")
	switch {
	case resp.StatusCode == http.StatusOK:
		return answer, outcomeOK
	case resp.StatusCode == http.StatusServiceUnavailable && retryAfter != "":
		return answer, outcomeUnavailable
	case resp.StatusCode == http.StatusInternalServerError && retryAfter == "":
		return answer, outcomeInternal
	}
	return answer, http.StatusText(resp.StatusCode) + " (Retry-After " + retryAfter + "): " + string(raw)
}

func wantOutcomes(t *testing.T, what string, outcomes map[string]string, want string) {
	t.Helper()
	for call, outcome := range outcomes {
		if outcome != want {
			t.Errorf("%s: %s answered %s, want %s", what, call, outcome, want)
		}
	}
}

func readyStatus(t *testing.T, e *servertest.Env) int {
	t.Helper()
	resp, err := http.Get(e.HTTPBase() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// With the PostgreSQL server out of reach (its connections cut, new ones
// refused) every call that needs it answers "try again shortly" on every
// transport, and the server reports itself not ready; once it is back, the
// calls work again, and none answers an internal error meanwhile (the
// pool's connections that died with the cut fail on their first use).
func TestPostgresOutageAnswersUnavailable(t *testing.T) {
	dsn := postgrestest.FreshDSN(t)
	proxy := newStoreProxy(t, dsn)
	store, err := postgres.Open(context.Background(), proxy.dsn)
	if err != nil {
		t.Fatal(err)
	}
	e := servertest.StartOnStore(t, store)
	calls := newStoreCalls(t, e)
	wantOutcomes(t, "before the outage", calls.run(t), outcomeOK)

	proxy.cut()
	wantOutcomes(t, "during the outage", calls.run(t), outcomeUnavailable)
	wantOutcomes(t, "during the outage", calls.checks(t), outcomeUnavailable)
	if got := readyStatus(t, e); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the outage: HTTP %d, want 503", got)
	}

	proxy.restore(t)
	untilWorking(t, "after the outage", calls)
	if got := readyStatus(t, e); got != http.StatusOK {
		t.Errorf("/readyz after the outage: HTTP %d, want 200", got)
	}

	// A cut the server comes back from at once: the pool's connections,
	// several of them after concurrent sign-ins, died with it, and each
	// fails on its first use.
	var signIns sync.WaitGroup
	for range 8 {
		signIns.Go(func() {
			_, _ = authv1.NewAuthServiceClient(e.Conn).Token(context.Background(), servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
		})
	}
	signIns.Wait()
	proxy.cut()
	proxy.restore(t)
	untilWorking(t, "after a cut", calls)
}

// untilWorking makes the calls until every one works, each answering
// "unavailable" at worst meanwhile: the pool holds at most 16 connections
// that may have died with a cut, and each fails once.
func untilWorking(t *testing.T, what string, calls *storeCalls) {
	t.Helper()
	for round := 0; ; round++ {
		outcomes := calls.run(t)
		working := true
		for call, outcome := range outcomes {
			if outcome != outcomeOK && outcome != outcomeUnavailable {
				t.Fatalf("%s: %s answered %s, want it to work or be unavailable", what, call, outcome)
			}
			working = working && outcome == outcomeOK
		}
		if working {
			return
		}
		if round == 20 {
			t.Fatalf("%s, still %v", what, outcomes)
		}
	}
}

// The transports answer a store that cannot be reached with "try again
// shortly", and any other store failure with an internal error, never
// confusing the two (on SQLite, whose own "unavailable", a lock held past
// busy_timeout, is tested in its package).
func TestStoreFailuresReachTheTransportsByKind(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"unavailable", storage.Unavailable(errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")), outcomeUnavailable},
		{"internal", errors.New("the disk is on fire"), outcomeInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner, err := sqlite.Open(context.Background(), sqlitetest.Dir(t))
			if err != nil {
				t.Fatal(err)
			}
			store := &failingStore{Store: inner}
			e := servertest.StartOnStore(t, store)
			calls := newStoreCalls(t, e)
			store.fail.Store(&tc.err)
			wantOutcomes(t, tc.name, calls.run(t), tc.want)
			wantOutcomes(t, tc.name, calls.checks(t), tc.want)
			if !strings.Contains(e.Logs.String(), tc.err.Error()) {
				t.Errorf("the store's error is not in the logs")
			}
		})
	}
}

// failingStore fails the reads and writes of sign-ins, refreshes, client
// authentication and revocation checks with fail, once it is set. The readiness probe's read
// (GetLoginFailures) still works: the server must start.
type failingStore struct {
	storage.Store
	fail atomic.Pointer[error]
}

func (s *failingStore) failure() error {
	if err := s.fail.Load(); err != nil {
		return *err
	}
	return nil
}

func (s *failingStore) ReserveLoginAttempt(ctx context.Context, key string, at time.Time, forgetAfter time.Duration, allow func(storage.LoginFailures) bool) (storage.LoginFailures, bool, error) {
	if err := s.failure(); err != nil {
		return storage.LoginFailures{}, false, err
	}
	return s.Store.ReserveLoginAttempt(ctx, key, at, forgetAfter, allow)
}

func (s *failingStore) GetRefreshTokenWithUser(ctx context.Context, familyID string, hash []byte) (storage.RefreshToken, *storage.User, error) {
	if err := s.failure(); err != nil {
		return storage.RefreshToken{}, nil, err
	}
	return s.Store.GetRefreshTokenWithUser(ctx, familyID, hash)
}

func (s *failingStore) GetClient(ctx context.Context, id string) (storage.Client, error) {
	if err := s.failure(); err != nil {
		return storage.Client{}, err
	}
	return s.Store.GetClient(ctx, id)
}

func (s *failingStore) GetRevocation(ctx context.Context, familyID, subject, client string) (storage.Revocation, error) {
	if err := s.failure(); err != nil {
		return storage.Revocation{}, err
	}
	return s.Store.GetRevocation(ctx, familyID, subject, client)
}

func (s *failingStore) GetServiceAccount(ctx context.Context, clientID string) (storage.ServiceAccount, error) {
	if err := s.failure(); err != nil {
		return storage.ServiceAccount{}, err
	}
	return s.Store.GetServiceAccount(ctx, clientID)
}

// storeProxy forwards TCP connections to a PostgreSQL server, and can cut
// them: the outage a test may cause without stopping the shared server.
type storeProxy struct {
	// dsn reaches the server through the proxy.
	dsn    string
	target string
	addr   string

	mu       sync.Mutex
	listener net.Listener
	conns    map[net.Conn]bool
	done     sync.WaitGroup
}

// newStoreProxy starts a proxy for the server dsn names (a postgres:// URL).
func newStoreProxy(t *testing.T, dsn string) *storeProxy {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Skipf("the store proxy needs a postgres:// URL in %s", postgrestest.DSNEnv)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &storeProxy{target: u.Host, addr: listener.Addr().String(), conns: map[net.Conn]bool{}}
	u.Host = p.addr
	p.dsn = u.String()
	p.serve(listener)
	t.Cleanup(func() {
		p.cut()
		p.done.Wait()
	})
	return p
}

func (p *storeProxy) serve(listener net.Listener) {
	p.mu.Lock()
	p.listener = listener
	p.mu.Unlock()
	p.done.Go(func() {
		for {
			client, err := listener.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", p.target)
			if err != nil {
				client.Close()
				continue
			}
			if !p.track(client, server) {
				continue
			}
			for _, pair := range [][2]net.Conn{{client, server}, {server, client}} {
				p.done.Go(func() {
					_, _ = io.Copy(pair[0], pair[1])
					pair[0].Close()
					pair[1].Close()
				})
			}
		}
	})
}

// track registers a forwarded pair, or closes it when the proxy was cut
// meanwhile.
func (p *storeProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.listener == nil {
		for _, conn := range conns {
			conn.Close()
		}
		return false
	}
	for _, conn := range conns {
		p.conns[conn] = true
	}
	return true
}

// cut closes every forwarded connection and the listener: new connections
// are refused.
func (p *storeProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.listener != nil {
		p.listener.Close()
		p.listener = nil
	}
	for conn := range p.conns {
		conn.Close()
	}
	clear(p.conns)
}

// restore listens again, on the same address.
func (p *storeProxy) restore(t *testing.T) {
	t.Helper()
	listener, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", p.addr, err)
	}
	p.serve(listener)
}
