package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/oauth2http"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/ssf"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/pkg/dpop"
)

// fuzzMethods are what FuzzHTTP's method index picks from.
var fuzzMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead, http.MethodOptions}

const (
	// fuzzAddr is where fuzzed requests come from. The target's own
	// requests for credentials come from mintAddr, so that the throttling
	// fuzzed sign-ins earn at fuzzAddr does not stop them.
	fuzzAddr = "192.0.2.1:1234"
	mintAddr = "198.51.100.1:1234"
	// fuzzAdmin is an admin user with the test user's password.
	fuzzAdmin = "root"
	// fuzzClientID is a confidential OAuth client.
	fuzzClientID       = "fuzz-app"
	fuzzClientRedirect = "https://app.example/cb"
	// fuzzCSRF is the CSRF token the seeds send as cookie and as form field:
	// the sign-in page's double-submit check only compares the two.
	fuzzCSRF   = "fuzz-csrf-token"
	csrfCookie = "__Host-chit_csrf=" + fuzzCSRF // the issuer is https
	// fuzzVerifier is the PKCE verifier of every code {{code}} stands for.
	fuzzVerifier = "fuzz-verifier-0123456789-abcdefghijklmnopqrstuvwxyz"
)

// Placeholders a fuzz input may contain anywhere (path, query, headers,
// body); they are replaced by live credentials before the request is sent,
// so that mutations of the seeds reach the authenticated code paths.
const (
	phUser              = "{{user}}"        // alice's access token (openid profile offline_access read write)
	phRefresh           = "{{refresh}}"     // alice's refresh token, issued to Chit's API
	phCLIRefresh        = "{{cli_refresh}}" // alice's refresh token, issued to chit-cli
	phAdmin             = "{{admin}}"       // an ADMIN access token
	phService           = "{{service}}"     // billing's access token
	phOrchestrator      = "{{orchestrator}}"
	phServiceSecret     = "{{service_secret}}"
	phClientSecret      = "{{client_secret}}"
	phBasicService      = "{{basic_service}}" // HTTP Basic credentials (base64) of billing
	phBasicOrchestrator = "{{basic_orchestrator}}"
	phBasicClient       = "{{basic_client}}" // of fuzz-app
	phProvider          = "{{provider}}"     // a claimed provider registered by billing
	phClaim             = "{{claim}}"        // its claim token
	phProviderRefresh   = "{{provider_refresh}}"
	// phReceiver is the access token (scope chit:ssf) of the service
	// account that polls the Shared Signals stream fuzzStream.
	phReceiver = "{{ssf_receiver}}"
	// phCode is a fresh authorization code for chit-cli (redirect loopback,
	// verifier fuzzVerifier), minted for each request that names it.
	phCode = "{{code}}"
)

// Credentials stand in groups that are issued together; each group's
// placeholders.
var credentialGroups = map[string][]string{
	"user":         {phUser, phRefresh},
	"cli":          {phCLIRefresh},
	"admin":        {phAdmin},
	"service":      {phService},
	"orchestrator": {phOrchestrator},
	"provider":     {phProvider, phClaim, phProviderRefresh},
	"receiver":     {phReceiver},
}

// fuzzStream is a poll stream of Shared Signals whose receiver is
// fuzzReceiver.
const (
	fuzzStream   = "fuzz-stream"
	fuzzReceiver = "fuzz-receiver"
)

// fuzzTarget is the server FuzzHTTP drives, one per fuzzing process, which
// runs its inputs one at a time.
type fuzzTarget struct {
	env     *servertest.Env
	handler http.Handler
	logs    *recentLogs
	// values are the placeholders' current values.
	values   map[string]string
	replacer *strings.Replacer
	// stale are the credential groups an input may have used up, issued
	// again when an input next names them; clockMoved says the clock has
	// moved since the last input that may have used credentials up.
	stale      map[string]bool
	clockMoved bool
	execs      int
	// receiverSecret is fuzzReceiver's client secret.
	receiverSecret string
}

func newFuzzTarget(f *testing.F) *fuzzTarget {
	f.Helper()
	logs := &recentLogs{}
	e := servertest.Start(f, func(cfg *server.Config) {
		// Warnings and errors only, for the report of a failing request:
		// the debug log of every call would grow for the whole run.
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		// A long poll answers at once: each input is one request.
		cfg.SecurityEvents.PollWait = time.Millisecond
	})
	ctx := context.Background()
	alice, err := e.Store.GetUser(ctx, servertest.UserName)
	if err != nil {
		f.Fatal(err)
	}
	if err := e.Store.CreateUser(ctx, storage.User{Name: fuzzAdmin, PasswordHash: alice.PasswordHash, Role: string(accounts.RoleAdmin), CreatedAt: e.Clock.Now()}); err != nil {
		f.Fatal(err)
	}
	clientSecret := e.CreateClient(f, fuzzClientID, []string{fuzzClientRedirect}, true,
		storage.Grants{AllowedScopes: []string{"openid", "profile", "offline_access", "read"}})
	receiverSecret, err := e.Directory().CreateServiceAccount(ctx, fuzzReceiver, storage.Grants{AllowedScopes: []string{ssf.Scope}, DefaultScopes: []string{ssf.Scope}})
	if err != nil {
		f.Fatal(err)
	}
	if err := e.Store.CreateSecurityEventStream(ctx, storage.SecurityEventStream{ID: fuzzStream, Delivery: storage.DeliveryPoll, Receiver: fuzzReceiver,
		Audience: fuzzReceiver, Status: storage.StreamEnabled, CreatedAt: e.Clock.Now(), UpdatedAt: e.Clock.Now()}); err != nil {
		f.Fatal(err)
	}
	ft := &fuzzTarget{env: e, handler: e.Server.HTTPHandler(), logs: logs, stale: map[string]bool{}, values: map[string]string{
		phServiceSecret:     e.ServiceSecret,
		phClientSecret:      clientSecret,
		phBasicService:      basicCredentials(servertest.ServiceName, e.ServiceSecret),
		phBasicOrchestrator: basicCredentials(servertest.OrchestratorName, e.OrchestratorSecret),
		phBasicClient:       basicCredentials(fuzzClientID, clientSecret),
	}, receiverSecret: receiverSecret}
	for group := range credentialGroups {
		ft.stale[group] = true
	}
	for group := range credentialGroups {
		ft.issue(f, group)
	}
	return ft
}

// basicCredentials is RFC 6749 §2.3.1 client authentication: the parts
// form-urlencoded, then Basic.
func basicCredentials(id, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))
}

// serve answers one of the target's own requests, from mintAddr.
func (ft *fuzzTarget) serve(method, target, contentType, authorization, cookie, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.RemoteAddr = mintAddr
	for name, value := range map[string]string{"Content-Type": contentType, "Authorization": authorization, "Cookie": cookie} {
		if value != "" {
			req.Header.Set(name, value)
		}
	}
	rec := httptest.NewRecorder()
	ft.handler.ServeHTTP(rec, req)
	return rec
}

// postJSON sends body to a REST route and decodes a 200 answer into answer.
func (ft *fuzzTarget) postJSON(tb testing.TB, path, bearer string, body, answer any) {
	tb.Helper()
	encoded, err := json.Marshal(body)
	if err != nil {
		tb.Fatal(err)
	}
	if bearer != "" {
		bearer = "Bearer " + bearer
	}
	rec := ft.serve(http.MethodPost, path, "application/json", bearer, "", string(encoded))
	if rec.Code != http.StatusOK {
		tb.Fatalf("the server no longer answers the fuzz target's own POST %s %s: HTTP %d %s", path, encoded, rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), answer); err != nil {
		tb.Fatalf("POST %s answered %s: %v", path, rec.Body, err)
	}
}

type tokenAnswer struct {
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken"`
}

// issue gives a stale credential group fresh values, as the test
// principals would obtain them.
func (ft *fuzzTarget) issue(tb testing.TB, group string) {
	tb.Helper()
	if !ft.stale[group] {
		return
	}
	if !ft.clockMoved {
		// A second after the credentials before: revoking all of a
		// subject's sessions refuses every token issued up to its instant,
		// and the test clock stands still.
		ft.env.Clock.Advance(time.Second)
		ft.clockMoved = true
	}
	delete(ft.stale, group)
	password := func(name, scope string) map[string]any {
		ft.resetThrottle(tb, "username:"+name)
		return map[string]any{"passwordCredential": map[string]string{"username": name, "password": servertest.UserPassword}, "scope": scope}
	}
	client := func(id, secret string) map[string]any {
		return map[string]any{"clientCredential": map[string]string{"clientId": id, "clientSecret": secret}}
	}
	var token tokenAnswer
	switch group {
	case "user":
		ft.postJSON(tb, "/v1/auth/token", "", password(servertest.UserName, "openid profile offline_access read write"), &token)
		ft.values[phUser], ft.values[phRefresh] = token.AccessToken, token.RefreshToken
	case "cli":
		var login struct {
			AccessToken tokenAnswer `json:"accessToken"`
		}
		ft.postJSON(tb, "/v1/auth/cli/login", "", map[string]string{"code": ft.mintCode(tb), "redirectUri": servertest.Loopback, "codeVerifier": fuzzVerifier}, &login)
		ft.values[phCLIRefresh] = login.AccessToken.RefreshToken
	case "admin":
		ft.postJSON(tb, "/v1/auth/token", "", password(fuzzAdmin, ""), &token)
		ft.values[phAdmin] = token.AccessToken
	case "service":
		ft.postJSON(tb, "/v1/auth/token", "", client(servertest.ServiceName, ft.env.ServiceSecret), &token)
		ft.values[phService] = token.AccessToken
	case "orchestrator":
		ft.postJSON(tb, "/v1/auth/token", "", client(servertest.OrchestratorName, ft.env.OrchestratorSecret), &token)
		ft.values[phOrchestrator] = token.AccessToken
	case "provider":
		ft.issueProvider(tb)
	case "receiver":
		ft.postJSON(tb, "/v1/auth/token", "", client(fuzzReceiver, ft.receiverSecret), &token)
		ft.values[phReceiver] = token.AccessToken
	}
	ft.rebuildReplacer()
}

// issueProvider registers and claims a new provider (billing's).
func (ft *fuzzTarget) issueProvider(tb testing.TB) {
	tb.Helper()
	ft.issue(tb, "service")
	// Random, so that no fuzzed registration can have taken the id.
	id := "fuzz-provider-" + rand.Text()
	var registered struct {
		Responses []struct {
			ClaimToken string `json:"claimToken"`
		} `json:"responses"`
	}
	ft.postJSON(tb, "/auth/providers", ft.values[phService], map[string]any{"items": []map[string]string{{"id": id}}}, &registered)
	if len(registered.Responses) != 1 {
		tb.Fatalf("register answered %+v", registered)
	}
	claimToken := registered.Responses[0].ClaimToken
	var claimed struct {
		Responses []struct {
			RefreshToken string `json:"refreshToken"`
		} `json:"responses"`
	}
	ft.postJSON(tb, "/auth/providers/claim", ft.values[phService], map[string]any{"items": []map[string]string{{"claimToken": claimToken}}}, &claimed)
	if len(claimed.Responses) != 1 {
		tb.Fatalf("claim answered %+v", claimed)
	}
	ft.values[phProvider], ft.values[phClaim], ft.values[phProviderRefresh] = id, claimToken, claimed.Responses[0].RefreshToken
}

// usedUp marks the credentials a successful request may have used up:
// refreshes rotate refresh tokens, revocations end logins (a subject's
// revocation all of its logins), a renew replaces a provider's key.
func (ft *fuzzTarget) usedUp(path, body string) {
	switch {
	case path == "/v1/auth/token/refresh", path == "/v1/auth/cli/refresh", path == "/v1/auth/revoke", path == oauth2http.RevokePath,
		path == oauth2http.TokenPath && strings.Contains(body, "refresh_token"):
	case path == "/auth/providers/renew":
		ft.stale["provider"] = true
		ft.clockMoved = false
		return
	default:
		return
	}
	for group := range credentialGroups {
		if group != "provider" {
			ft.stale[group] = true
		}
	}
	ft.clockMoved = false
}

// resetThrottle forgets the failed sign-ins counted under key (pkg/accounts
// keys them "username:NAME", "user:NAME@ADDRESS" and "addr:ADDRESS"): with
// the test clock standing still, the throttle's delays never pass.
func (ft *fuzzTarget) resetThrottle(tb testing.TB, key string) {
	tb.Helper()
	if err := ft.env.Store.ResetLoginFailures(context.Background(), key); err != nil {
		tb.Fatal(err)
	}
}

func (ft *fuzzTarget) rebuildReplacer() {
	var pairs []string
	for placeholder, value := range ft.values {
		pairs = append(pairs, placeholder, value)
	}
	ft.replacer = strings.NewReplacer(pairs...)
}

// authorizeParams are an authorization request of chit-cli, as the sign-in
// page's query or form carries it.
func authorizeParams() url.Values {
	return url.Values{
		"response_type": {"code"}, "client_id": {authorize.CLIClientID}, "redirect_uri": {servertest.Loopback}, "state": {"fuzz"},
		"scope": {"openid offline_access"}, "code_challenge": {authorize.ChallengeFor(fuzzVerifier)}, "code_challenge_method": {"S256"}, "nonce": {"n"},
	}
}

// mintCode signs alice in on the page and returns the code of the redirect.
func (ft *fuzzTarget) mintCode(tb testing.TB) string {
	tb.Helper()
	ft.resetThrottle(tb, "username:"+servertest.UserName)
	form := authorizeParams()
	form.Set("csrf_token", fuzzCSRF)
	form.Set("username", servertest.UserName)
	form.Set("password", servertest.UserPassword)
	form.Set("action", "sign-in")
	rec := ft.serve(http.MethodPost, authorize.PagePath, "application/x-www-form-urlencoded", "", csrfCookie, form.Encode())
	location, err := url.Parse(rec.Header().Get("Location"))
	if rec.Code != http.StatusSeeOther || err != nil || location.Query().Get("code") == "" {
		tb.Fatalf("the server no longer signs in on the page: HTTP %d, Location %q, %s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	return location.Query().Get("code")
}

// recentLogs keeps what the server logged since the last Reset (bounded).
type recentLogs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *recentLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() < 64<<10 {
		l.buf.Write(p)
	}
	return len(p), nil
}

func (l *recentLogs) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Reset()
}

func (l *recentLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// wireRequest is the request as a client would put it on the wire.
func wireRequest(method, path, query, contentType, authorization, cookie, body string) []byte {
	var b strings.Builder
	target := path
	if query != "" {
		target += "?" + query
	}
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: chit.test\r\n", method, target)
	for _, header := range [][2]string{{"Content-Type", contentType}, {"Authorization", authorization}, {"Cookie", cookie}} {
		if header[1] != "" {
			fmt.Fprintf(&b, "%s: %s\r\n", header[0], header[1])
		}
	}
	if body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return []byte(b.String())
}

// readWireRequest parses a request as net/http's server does, and reports
// whether the server would pass it to the handler at all: it answers a
// request it cannot parse with 400, and an Expect other than 100-continue
// with 417, itself.
func readWireRequest(raw []byte) (*http.Request, bool) {
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return nil, false
	}
	if expect := req.Header.Get("Expect"); expect != "" && !strings.EqualFold(strings.TrimSpace(expect), "100-continue") {
		return nil, false
	}
	// The server checks Host (ours is valid) and then drops the header; the
	// header names and values were checked by ReadRequest.
	req.Header.Del("Host")
	req.RemoteAddr = fuzzAddr
	return req, true
}

type fuzzSeed struct {
	method                                          string
	path, query, contentType, authorization, cookie string
	body                                            string
}

// dpopSeed is a well-formed DPoP proof for method and path on the test
// issuer (ath of accessToken when not empty), for the fuzzer to mutate.
func dpopSeed(method, path, accessToken string) string {
	signer, err := dpop.GenerateSigner()
	if err != nil {
		panic(err)
	}
	proof, err := signer.Proof(method, servertest.Issuer+path, accessToken, "")
	if err != nil {
		panic(err)
	}
	return proof
}

func fuzzSeeds() []fuzzSeed {
	const (
		jsonType = "application/json"
		formType = "application/x-www-form-urlencoded"
	)
	challenge := authorize.ChallengeFor(fuzzVerifier)
	page := authorizeParams()
	appPage := authorizeParams()
	appPage.Set("client_id", fuzzClientID)
	appPage.Set("redirect_uri", fuzzClientRedirect)
	appPage.Set("response_mode", "fragment")
	signIn := authorizeParams()
	signIn.Set("csrf_token", fuzzCSRF)
	signIn.Set("username", servertest.UserName)
	signIn.Set("password", servertest.UserPassword)
	signIn.Set("action", "sign-in")
	cancel := authorizeParams()
	cancel.Set("csrf_token", fuzzCSRF)
	cancel.Set("action", "cancel")
	wrongPassword := url.Values{}
	for name, values := range signIn {
		wrongPassword[name] = values
	}
	wrongPassword.Set("password", "not-the-password")
	return []fuzzSeed{
		// Probes, keys and documents.
		{method: http.MethodGet, path: "/healthz"},
		{method: http.MethodGet, path: "/healthz", query: "service=chit.auth.v1.AuthService"},
		{method: http.MethodGet, path: "/readyz"},
		{method: http.MethodGet, path: "/metrics"},
		{method: http.MethodGet, path: "/.well-known/jwks.json"},
		{method: http.MethodGet, path: "/.well-known/openid-configuration"},
		{method: http.MethodGet, path: "/openapi.json"},
		{method: http.MethodGet, path: "/"},
		{method: http.MethodOptions, path: "/v1/auth/token"},

		// The REST gateway: AuthService.
		{method: http.MethodPost, path: "/v1/auth/token", contentType: jsonType, body: `{"passwordCredential":{"username":"alice","password":"wonderland"},"scope":"read"}`},
		{method: http.MethodPost, path: "/v1/auth/token", contentType: jsonType, body: `{"passwordCredential":{"username":"alice","password":"wrong"}}`},
		{method: http.MethodPost, path: "/v1/auth/token", contentType: jsonType + "; charset=utf-8", body: `{"password_credential":{"username":"root","password":"wonderland"}}`},
		{method: http.MethodPost, path: "/v1/auth/token", contentType: jsonType, body: `{"clientCredential":{"clientId":"billing","clientSecret":"{{service_secret}}"},"scope":"inventory:read","audience":"inventory"}`},
		{method: http.MethodPut, path: "/v1/auth/token", contentType: jsonType, body: `{}`},
		{method: http.MethodPost, path: "/v1/auth/token/refresh", contentType: jsonType, body: `{"refreshToken":"{{refresh}}","scope":"read"}`},
		{method: http.MethodPost, path: "/v1/auth/cli/login", contentType: jsonType, body: `{"code":"{{code}}","redirectUri":"` + servertest.Loopback + `","codeVerifier":"` + fuzzVerifier + `"}`},
		{method: http.MethodPost, path: "/v1/auth/cli/refresh", contentType: jsonType, body: `{"refreshToken":"{{cli_refresh}}"}`},
		{method: http.MethodGet, path: "/v1/auth/check", authorization: "Bearer {{user}}"},
		{method: http.MethodGet, path: "/v1/auth/check", authorization: "Bearer {{service}}"},
		{method: http.MethodGet, path: "/v1/auth/check", authorization: "Bearer eyJhbGciOiJFUzI1NiJ9.e30.AAAA"},
		{method: http.MethodGet, path: "/v1/auth/authorize-url", query: "state=s&redirect_uri=" + url.QueryEscape(servertest.Loopback) + "&scope=openid+offline_access&code_challenge=" + challenge + "&code_challenge_method=S256&nonce=n"},
		{method: http.MethodGet, path: "/v1/auth/authorize-url", query: "clientId=fuzz-app&redirectUri=" + url.QueryEscape(fuzzClientRedirect) + "&state=s&codeChallenge=" + challenge + "&codeChallengeMethod=S256"},
		{method: http.MethodGet, path: "/v1/auth/status"},
		{method: http.MethodGet, path: "/v1/auth/authorize-url", query: "state=%ff&redirect_uri=" + url.QueryEscape(servertest.Loopback)},
		{method: http.MethodPost, path: "/v1/auth/revoke", contentType: jsonType, body: `{"token":"{{refresh}}"}`},
		{method: http.MethodPost, path: "/v1/auth/revoke", contentType: jsonType, authorization: "Bearer {{user}}", body: `{}`},
		{method: http.MethodPost, path: "/v1/auth/revoke", contentType: jsonType, authorization: "Bearer {{admin}}", body: `{"subject":"alice"}`},

		// The REST gateway: AuthProviders (the UCloud paths).
		{method: http.MethodPost, path: "/auth/providers", contentType: jsonType, authorization: "Bearer {{service}}", body: `{"items":[{"id":"hippo"}]}`},
		{method: http.MethodPost, path: "/auth/providers/claim", contentType: jsonType, authorization: "Bearer {{service}}", body: `{"items":[{"claimToken":"{{claim}}"}]}`},
		// A renew or a generated key pair costs an RSA key generation (about
		// 100 ms): the seeds are refused (another service's provider, a
		// user's token), so that the fuzzer's mutations of them, and its
		// minimizing of inputs that reach new code, stay fast. Their
		// successes are tested in providers_test.go.
		{method: http.MethodPost, path: "/auth/providers/renew", contentType: jsonType, authorization: "Bearer {{orchestrator}}", body: `{"items":[{"id":"{{provider}}"}]}`},
		{method: http.MethodPost, path: "/auth/providers/refresh", contentType: jsonType, body: `{"items":[{"refreshToken":"{{provider_refresh}}"}]}`},
		{method: http.MethodGet, path: "/auth/providers/retrieveKey", query: "id={{provider}}", authorization: "Bearer {{service}}"},
		{method: http.MethodPost, path: "/auth/providers/refreshAsOrchestrator", contentType: jsonType, authorization: "Bearer {{orchestrator}}", body: `{"items":[{"providerId":"{{provider}}"}]}`},
		{method: http.MethodPost, path: "/auth/providers/generateKeyPair", contentType: jsonType, authorization: "Bearer {{user}}", body: `{}`},

		// The standard OAuth endpoints and userinfo.
		{method: http.MethodPost, path: "/oauth2/token", contentType: formType, body: "grant_type=password&username=alice&password=wonderland&client_id=chit-cli&scope=openid+profile"},
		{method: http.MethodPost, path: "/oauth2/token", contentType: formType, authorization: "Basic {{basic_service}}", body: "grant_type=client_credentials&scope=inventory%3Aread&resource=inventory"},
		{method: http.MethodPost, path: "/oauth2/token", contentType: formType, body: "grant_type=client_credentials&client_id=billing&client_secret=wrong"},
		{method: http.MethodPost, path: "/oauth2/token", contentType: formType, body: "grant_type=refresh_token&refresh_token={{cli_refresh}}&client_id=chit-cli&scope=openid"},
		{method: http.MethodPost, path: "/oauth2/token", contentType: formType, body: "grant_type=refresh_token&refresh_token={{refresh}}&client_id=chit-cli"},
		{method: http.MethodPost, path: "/oauth2/token", contentType: formType, body: "grant_type=authorization_code&code={{code}}&redirect_uri=" + url.QueryEscape(servertest.Loopback) + "&code_verifier=" + fuzzVerifier + "&client_id=chit-cli"},
		{method: http.MethodPost, path: "/oauth2/token", contentType: formType, authorization: "Basic {{basic_client}}", body: "grant_type=password&username=alice&password=wonderland&scope=openid+read"},
		{method: http.MethodGet, path: "/oauth2/token"},
		{method: http.MethodPost, path: "/oauth2/token", contentType: formType, body: "grant_type=password&grant_type=password&username=alice"},
		{method: http.MethodPost, path: "/oauth2/revoke", contentType: formType, body: "token={{cli_refresh}}&client_id=chit-cli&token_type_hint=refresh_token"},
		{method: http.MethodPost, path: "/oauth2/revoke", contentType: formType, body: "token={{refresh}}&client_id=chit-cli"},
		{method: http.MethodPost, path: "/oauth2/revoke", contentType: formType, authorization: "Basic {{basic_client}}", body: "token={{user}}&token_type_hint=access_token"},
		{method: http.MethodPost, path: "/oauth2/introspect", contentType: formType, authorization: "Bearer {{service}}", body: "token={{user}}"},
		{method: http.MethodPost, path: "/oauth2/introspect", contentType: formType, authorization: "Basic {{basic_client}}", body: "token={{refresh}}"},
		{method: http.MethodPost, path: "/oauth2/introspect", contentType: formType, body: "token={{admin}}&client_id=billing&client_secret={{service_secret}}"},
		{method: http.MethodGet, path: "/userinfo", authorization: "Bearer {{user}}"},
		{method: http.MethodPost, path: "/userinfo", contentType: formType, authorization: "Bearer {{admin}}"},

		// The sign-in page.
		{method: http.MethodGet, path: authorize.PagePath, query: page.Encode()},
		{method: http.MethodGet, path: authorize.PagePath, query: page.Encode() + "&prompt=none"},
		{method: http.MethodGet, path: authorize.PagePath, query: appPage.Encode()},
		{method: http.MethodPost, path: authorize.PagePath, contentType: formType, cookie: csrfCookie, body: signIn.Encode()},
		{method: http.MethodPost, path: authorize.PagePath, contentType: formType, cookie: csrfCookie, body: cancel.Encode()},
		{method: http.MethodPost, path: authorize.PagePath, contentType: formType, cookie: csrfCookie, body: wrongPassword.Encode()},
		{method: http.MethodPost, path: authorize.PagePath, contentType: formType, body: signIn.Encode()},
		{method: http.MethodGet, path: "/oauth2/assets/style.css"},

		// Shared Signals: the receiver's poll and the transmitter's metadata.
		{method: http.MethodPost, path: "/ssf/poll/" + fuzzStream, contentType: jsonType, authorization: "Bearer {{ssf_receiver}}",
			body: `{"returnImmediately":true,"maxEvents":5,"ack":[],"setErrs":{}}`},
		{method: http.MethodPost, path: "/ssf/poll/" + fuzzStream, contentType: jsonType, authorization: "Bearer {{ssf_receiver}}",
			body: `{"returnImmediately":false,"ack":["` + fuzzStream + `:1-0-1"],"setErrs":{"` + fuzzStream + `:1-0-2":{"err":"invalid_key","description":"d"}}}`},
		{method: http.MethodGet, path: "/.well-known/ssf-configuration"},

		// DPoP proofs (RFC 9449), at the token endpoint and with a bound use.
		{method: http.MethodPost, path: "/oauth2/token", contentType: formType + "\r\nDPoP: " + dpopSeed(http.MethodPost, "/oauth2/token", ""),
			body: "grant_type=client_credentials&client_id=billing&client_secret={{service_secret}}"},
		{method: http.MethodGet, path: "/v1/auth/check", contentType: jsonType + "\r\nDPoP: " + dpopSeed(http.MethodGet, "/v1/auth/check", "token"), authorization: "DPoP {{service}}"},

		// Headers a client may add: a proxy's chain, a trace, chunked framing.
		{method: http.MethodPost, path: "/v1/auth/token", contentType: jsonType + "\r\nX-Forwarded-For: 10.0.0.1\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
			body: `{"passwordCredential":{"username":"alice","password":"wonderland"}}`},
		{method: http.MethodPost, path: "/oauth2/token", contentType: formType + "\r\nTransfer-Encoding: chunked", body: "5\r\ngrant\r\n0\r\n\r\n"},
	}
}

// FuzzHTTP sends whole requests (method, path, query, Content-Type,
// Authorization, Cookie, body) through the HTTP port's handler: the REST
// gateway, /oauth2/*, /userinfo, /.well-known/*, the sign-in page and the
// probes. No input may produce a 5xx. That includes a 503 from /readyz or
// /healthz: the fuzzed server's store and keys are always there, so a
// not-ready answer would mean an input broke the server. (Throttling answers
// 429, a 4xx.)
func FuzzHTTP(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		method := -1
		for i, m := range fuzzMethods {
			if m == seed.method {
				method = i
			}
		}
		if method < 0 {
			f.Fatalf("seed method %s is not in fuzzMethods", seed.method)
		}
		f.Add(uint8(method), seed.path, seed.query, seed.contentType, seed.authorization, seed.cookie, []byte(seed.body))
	}
	ft := newFuzzTarget(f)
	f.Fuzz(func(t *testing.T, methodIndex uint8, path, query, contentType, authorization, cookie string, body []byte) {
		ft.execs++
		if ft.execs%256 == 0 {
			// Fuzzed sign-ins with wrong passwords lock the fuzzed address
			// and the test users out for good (the clock stands still);
			// forgetting them now and then keeps sign-ins reachable.
			host, _, _ := strings.Cut(fuzzAddr, ":")
			for _, name := range []string{servertest.UserName, fuzzAdmin} {
				ft.resetThrottle(t, "username:"+name)
				ft.resetThrottle(t, "user:"+name+"@"+host)
			}
			ft.resetThrottle(t, "addr:"+host)
		}
		method := fuzzMethods[int(methodIndex)%len(fuzzMethods)]
		fields := []string{path, query, contentType, authorization, cookie, string(body)}
		// The placeholders' values are URL- and header-safe, so a request
		// the server would refuse is refused with them too: do not issue
		// credentials for it.
		if _, ok := readWireRequest(wireRequest(method, fields[0], fields[1], fields[2], fields[3], fields[4], fields[5])); !ok {
			return
		}
		placeholders := false
		code := ""
		for i, field := range fields {
			if !strings.Contains(field, "{{") {
				continue
			}
			placeholders = true
			for group, names := range credentialGroups {
				for _, name := range names {
					if ft.stale[group] && strings.Contains(field, name) {
						ft.issue(t, group)
					}
				}
			}
			if strings.Contains(field, phCode) {
				if code == "" {
					code = ft.mintCode(t)
				}
				field = strings.ReplaceAll(field, phCode, code)
			}
			fields[i] = ft.replacer.Replace(field)
		}
		raw := wireRequest(method, fields[0], fields[1], fields[2], fields[3], fields[4], fields[5])
		req, ok := readWireRequest(raw)
		if !ok {
			return
		}
		ft.logs.Reset()
		rec := httptest.NewRecorder()
		ft.handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("HTTP %d for the request\n%s\nanswer: %s\nserver log:\n%s", rec.Code, strconv.Quote(string(raw)), rec.Body, ft.logs)
		}
		if placeholders && rec.Code < 300 {
			ft.usedUp(req.URL.Path, fields[5])
		}
	})
}
