package server_test

import (
	"bytes"
	"context"
	"encoding/json"
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

	"golang.org/x/net/http2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/passwords"
	"github.com/chit-auth/chit/internal/providers"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

// When the hashing queue is full, a sign-in is told to come back: 429 with
// Retry-After on REST, RESOURCE_EXHAUSTED on gRPC; never a 504, which the
// queue's own timeout (a deadline) used to become.
func TestFullHashingQueueAnswersRetryLater(t *testing.T) {
	e := servertest.Start(t, func(cfg *server.Config) {
		cfg.MaxConcurrentHashes = 1
		cfg.HashQueueTimeout = 10 * time.Millisecond
		// Slow enough that a burst queues behind one hash.
		cfg.PasswordParams = passwords.Params{MemoryKiB: 16 * 1024, Iterations: 4, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	})
	body := `{"passwordCredential":{"username":"` + servertest.UserName + `","password":"` + servertest.UserPassword + `"}}`
	form := url.Values{"grant_type": {"password"}, "username": {servertest.UserName}, "password": {servertest.UserPassword}}.Encode()
	const callers = 8
	statuses := make([]int, 2*callers)
	retryAfter := make([]string, 2*callers)
	var wg sync.WaitGroup
	for i := range 2 * callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half on REST, half on the OAuth token endpoint.
			path, contentType, payload := "/v1/auth/token", "application/json", body
			if i%2 == 1 {
				path, contentType, payload = "/oauth2/token", "application/x-www-form-urlencoded", form
			}
			resp, err := http.Post(e.HTTPBase()+path, contentType, strings.NewReader(payload))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i], retryAfter[i] = resp.StatusCode, resp.Header.Get("Retry-After")
		}()
	}
	wg.Wait()
	throttled := 0
	for i, status := range statuses {
		switch status {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			throttled++
			if retryAfter[i] == "" {
				t.Errorf("a 429 without Retry-After")
			}
		default:
			t.Errorf("a sign-in behind a full queue answered %d, want 200 or 429", status)
		}
	}
	if throttled == 0 {
		t.Fatalf("no sign-in of %d at once met the full queue (statuses %v): the test proves nothing", callers, statuses)
	}

	// gRPC: the same refusal, with its code.
	var codesSeen sync.Map
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, code := servertest.Transports(e)["gRPC"].Token(t, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
			codesSeen.Store(code, true)
		}()
	}
	wg.Wait()
	codesSeen.Range(func(code, _ any) bool {
		if code != codes.OK && code != codes.ResourceExhausted {
			t.Errorf("a gRPC sign-in behind a full queue answered %v", code)
		}
		return true
	})
}

// A claim naming one claim token twice is a bad request on both
// transports, not a 500.
func TestClaimNamingATokenTwiceIsABadRequest(t *testing.T) {
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		service, code := tr.Token(t, servertest.ClientRequest(servertest.ServiceName, e.ServiceSecret))
		servertest.WantCode(t, "service token", code, codes.OK)
		id := "twice-" + strings.ToLower(t.Name()[strings.LastIndex(t.Name(), "/")+1:])
		registered := &authv1.AuthProvidersRegisterResponse{}
		servertest.WantCode(t, "register", tr.Invoke(t, authv1.AuthProviders_Register_FullMethodName, service.GetAccessToken(),
			&authv1.AuthProvidersRegisterRequest{Items: []*authv1.AuthProvidersRegisterRequestItem{{Id: id}}}, registered), codes.OK)
		claimToken := registered.GetResponses()[0].GetClaimToken()
		claim := &authv1.AuthProvidersClaimRequest{Items: []*authv1.AuthProvidersRegisterResponseItem{{ClaimToken: claimToken}, {ClaimToken: claimToken}}}
		servertest.WantCode(t, "claim naming one token twice", tr.Invoke(t, authv1.AuthProviders_Claim_FullMethodName, service.GetAccessToken(), claim, &authv1.AuthProvidersClaimResponse{}), codes.InvalidArgument)
	})
}

// A revocation is kept as long as the longest-lived token it concerns:
// tokens a provider's key signs for a service (refreshAsOrchestrator) live
// --provider-token-ttl, which may be longer than access tokens.
func TestRevocationsOutliveTheLongestToken(t *testing.T) {
	e := servertest.Start(t, func(cfg *server.Config) { cfg.Providers.AccessTokenTTL = 2 * time.Hour })
	tr := servertest.Transports(e)["gRPC"]
	owner, code := tr.Token(t, servertest.ClientRequest(servertest.ServiceName, e.ServiceSecret))
	servertest.WantCode(t, "owner token", code, codes.OK)
	orchestrator, code := tr.Token(t, servertest.ClientRequest(servertest.OrchestratorName, e.OrchestratorSecret))
	servertest.WantCode(t, "orchestrator token", code, codes.OK)
	registered := &authv1.AuthProvidersRegisterResponse{}
	servertest.WantCode(t, "register", tr.Invoke(t, authv1.AuthProviders_Register_FullMethodName, owner.GetAccessToken(),
		&authv1.AuthProvidersRegisterRequest{Items: []*authv1.AuthProvidersRegisterRequestItem{{Id: "longlived"}}}, registered), codes.OK)
	servertest.WantCode(t, "claim", tr.Invoke(t, authv1.AuthProviders_Claim_FullMethodName, owner.GetAccessToken(),
		&authv1.AuthProvidersClaimRequest{Items: []*authv1.AuthProvidersRegisterResponseItem{{ClaimToken: registered.GetResponses()[0].GetClaimToken()}}},
		&authv1.AuthProvidersClaimResponse{}), codes.OK)
	orchestrated := &authv1.AuthProvidersRefreshAsOrchestratorResponse{}
	servertest.WantCode(t, "refreshAsOrchestrator", tr.Invoke(t, authv1.AuthProviders_RefreshAsOrchestrator_FullMethodName, orchestrator.GetAccessToken(),
		&authv1.AuthProvidersRefreshAsOrchestratorRequest{Items: []*authv1.AuthProvidersRefreshAsProviderRequestItem{{ProviderId: "longlived"}}}, orchestrated), codes.OK)
	token := orchestrated.GetResponses()[0].GetAccessToken()

	e.Clock.Advance(time.Millisecond)
	if err := e.Directory().DeleteServiceAccount(context.Background(), servertest.OrchestratorName); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(3 * time.Second)
	_, code = tr.Check(t, token)
	servertest.WantCode(t, "CheckToken of the deleted service's orchestrator token", code, codes.Unauthenticated)
	// Past the access tokens' lifetime, within the orchestrator token's.
	e.Clock.Advance(time.Hour)
	e.Server.DeleteExpired(context.Background())
	_, code = tr.Check(t, token)
	servertest.WantCode(t, "CheckToken after the clean-up", code, codes.Unauthenticated)
}

// A username no account can have is refused before anything is stored for
// it: a huge name used to become a row of the throttle table.
func TestMalformedUsernameStoresNothing(t *testing.T) {
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		for _, tc := range []struct{ name, username string }{
			{"a huge name", strings.Repeat("m", 100<<10)},
			{"a name with a space", "bad name"},
			{"a provider's subject", "#P_x"},
			{"a service's subject", "service:billing"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, code := tr.Token(t, servertest.PasswordRequest(tc.username, "wrong-password"))
				servertest.WantCode(t, "a sign-in as "+tc.username[:min(len(tc.username), 16)], code, codes.InvalidArgument)
				failures, err := e.Store.GetLoginFailures(context.Background(), "user:"+tc.username)
				if err != nil || failures.Count != 0 {
					t.Fatalf("a failure was stored for %.16q: %+v, %v", tc.username, failures, err)
				}
			})
		}
		resp, err := http.Post(e.HTTPBase()+"/oauth2/token", "application/x-www-form-urlencoded",
			strings.NewReader(url.Values{"grant_type": {"password"}, "username": {"bad name"}, "password": {"x"}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("/oauth2/token with a malformed username: %d, want 400", resp.StatusCode)
		}
	})
}

// connCounter counts the connections a client opens.
type connCounter struct{ opened atomic.Int32 }

func (c *connCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (c *connCounter) HandleRPC(context.Context, stats.RPCStats)                         {}
func (c *connCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (c *connCounter) HandleConn(_ context.Context, s stats.ConnStats) {
	if _, ok := s.(*stats.ConnBegin); ok {
		c.opened.Add(1)
	}
}

// A gRPC connection past its maximum age is closed once its calls finish:
// the call in flight completes, and the client reconnects (behind a load
// balancer, possibly to another replica).
func TestGRPCConnectionsAgeOut(t *testing.T) {
	e := servertest.Start(t, func(cfg *server.Config) {
		cfg.GRPCConnections = server.GRPCConnections{MaxAge: 200 * time.Millisecond, MaxAgeGrace: 10 * time.Second}
		// A sign-in slow enough to be in flight when the age passes.
		cfg.PasswordParams = passwords.Params{MemoryKiB: 32 * 1024, Iterations: 24, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	})
	counter := &connCounter{}
	conn, err := grpc.NewClient(e.Server.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithStatsHandler(counter))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	auth := authv1.NewAuthServiceClient(conn)
	ctx := context.Background()
	started := time.Now()
	if _, err := auth.Token(ctx, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword)); err != nil {
		t.Fatalf("the call in flight when its connection aged out: %v", err)
	}
	if took := time.Since(started); took < 250*time.Millisecond {
		t.Logf("the sign-in took %v, less than the connection's age: the in-flight case was not exercised", took)
	}
	// Wait on the channel's state changes (the server's GOAWAY takes it out
	// of READY; an idle channel is asked to connect) until a second
	// connection has opened.
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for counter.opened.Load() < 2 {
		state := conn.GetState()
		if state == connectivity.Idle {
			conn.Connect()
		}
		if !conn.WaitForStateChange(waitCtx, state) {
			t.Fatalf("the client kept one connection for %v past its maximum age", time.Since(started))
		}
	}
	if _, err := auth.GetAuthStatus(ctx, &authv1.GetAuthStatusRequest{}); err != nil {
		t.Fatalf("a call after the connection aged out: %v", err)
	}
}

// The sign-in page's CSRF cookie is __Host-prefixed and Secure whenever the
// page's public URL is https, also when the request reaching chitd is plain
// HTTP (TLS ends at a proxy); with an http issuer (development) it is not.
func TestCSRFCookieIsHostPrefixedBehindHTTPS(t *testing.T) {
	for _, tc := range []struct {
		issuer, cookie string
		secure         bool
	}{
		{"https://chit.test", "__Host-chit_csrf=", true},
		{"http://localhost:8080", "chit_csrf=", false},
	} {
		t.Run(tc.issuer, func(t *testing.T) {
			e := servertest.Start(t, func(cfg *server.Config) { cfg.Tokens.Issuer, cfg.Providers.Issuer = tc.issuer, tc.issuer })
			authorizeURL, code := servertest.GetAuthorizeURL(t, servertest.Transports(e)["gRPC"], servertest.AuthorizeRequest(servertest.NewVerifier(t), "openid"))
			servertest.WantCode(t, "GetAuthorizeUrl", code, codes.OK)
			page := e.NewBrowser(t).Open(t, authorizeURL)
			setCookie := strings.Join(page.Header.Values("Set-Cookie"), "\n")
			if !strings.HasPrefix(setCookie, tc.cookie) || strings.Contains(setCookie, "; Secure") != tc.secure ||
				(tc.secure && (!strings.Contains(setCookie, "Path=/;") || strings.Contains(setCookie, "Domain="))) {
				t.Fatalf("Set-Cookie %q; want %s, Secure %v (and Path=/, no Domain, when Secure)", setCookie, tc.cookie, tc.secure)
			}
		})
	}
}

// rawCodec sends bytes as they are, to put on the wire what no protobuf
// library would encode.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}
func (rawCodec) Name() string { return "proto" }

// A string field that is not UTF-8 is a bad argument over gRPC, as it is a
// 400 over REST; it used to be INTERNAL, decided before any interceptor ran.
func TestInvalidUTF8OverGRPCIsABadArgument(t *testing.T) {
	e := servertest.Start(t)
	credential := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "al\xffice")
	credential = protowire.AppendString(protowire.AppendTag(credential, 2, protowire.BytesType), "wonderland")
	request := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), credential)
	err := e.Conn.Invoke(context.Background(), authv1.AuthService_Token_FullMethodName, request, &authv1.TokenResponse{}, grpc.ForceCodecV2(rawCodec{}))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a username that is not UTF-8: %v, want InvalidArgument", err)
	}
	// Not UTF-8 in the password: it simply does not match.
	credential = protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), servertest.UserName)
	credential = protowire.AppendString(protowire.AppendTag(credential, 2, protowire.BytesType), "wonder\xffland")
	request = protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), credential)
	err = e.Conn.Invoke(context.Background(), authv1.AuthService_Token_FullMethodName, request, &authv1.TokenResponse{}, grpc.ForceCodecV2(rawCodec{}))
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("a password that is not UTF-8: %v, want Unauthenticated", err)
	}
}

// A REST route called with another method is the client's mistake: 405, not
// the 501 grpc-gateway answers by default.
func TestWrongMethodOnARESTRouteIs405(t *testing.T) {
	e := servertest.Start(t)
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/v1/auth/token"},
		{http.MethodGet, "/auth/providers/refresh"},
		{http.MethodDelete, "/v1/auth/check"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, e.HTTPBase()+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d, want 405", tc.method, tc.path, resp.StatusCode)
			}
		})
	}
}

// The sign-in page does only what discovery advertises: the code flow
// answered in the query, no silent sign-in, text for state and nonce; what
// it refuses of a request whose client and redirect URI are good, it
// answers at the redirect URI.
func TestSignInPageRefusesWhatItDoesNotSupport(t *testing.T) {
	e := servertest.Start(t)
	verifier := servertest.NewVerifier(t)
	base := url.Values{"response_type": {"code"}, "client_id": {"chit-cli"}, "redirect_uri": {servertest.Loopback}, "state": {"s"},
		"code_challenge": {authorize.ChallengeFor(verifier)}, "code_challenge_method": {"S256"}}
	with := func(name, value string) string {
		q := url.Values{}
		for k, v := range base {
			q[k] = v
		}
		if value == "" {
			q.Del(name)
		} else {
			q.Set(name, value)
		}
		return e.HTTPBase() + "/oauth2/authorize?" + q.Encode()
	}
	// The client and redirect URI are good: the client hears what is
	// wrong at its redirect URI (RFC 6749 §4.1.2.1), with the state and iss.
	for name, tc := range map[string]struct{ target, code string }{
		"no response_type":          {with("response_type", ""), "invalid_request"},
		"response_type token":       {with("response_type", "token"), "unsupported_response_type"},
		"response_mode fragment":    {with("response_mode", "fragment"), "invalid_request"},
		"an unknown response_mode":  {with("response_mode", "jwt-of-the-future"), "invalid_request"},
		"an unknown prompt":         {with("prompt", "dance"), "invalid_request"},
		"prompt none and login":     {with("prompt", "none login"), "invalid_request"},
		"a nonce that is not UTF-8": {with("nonce", "n\xff"), "invalid_request"},
		"a request object":          {with("request", "eyJhbGciOiJub25lIn0.e30."), "request_not_supported"},
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := servertest.NoRedirects(t, e).Client.Get(tc.target)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			location, _ := resp.Location()
			if resp.StatusCode != http.StatusSeeOther || location == nil || !strings.HasPrefix(location.String(), servertest.Loopback+"?") ||
				location.Query().Get("error") != tc.code || location.Query().Get("state") != "s" || location.Query().Get("iss") != servertest.Issuer {
				t.Errorf("%d %v, want a redirect with %s", resp.StatusCode, location, tc.code)
			}
		})
	}
	resp, err := servertest.NoRedirects(t, e).Client.Get(with("prompt", "none"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	location, _ := resp.Location()
	if resp.StatusCode != http.StatusSeeOther || location == nil || location.Query().Get("error") != "login_required" || location.Query().Get("state") != "s" ||
		location.Query().Get("iss") != servertest.Issuer {
		t.Fatalf("prompt=none: %d %v, want a redirect with login_required", resp.StatusCode, location)
	}
	if page := e.NewBrowser(t).Open(t, with("response_mode", "query")); page.Status != http.StatusOK {
		t.Fatalf("response_mode query: %d", page.Status)
	}

	// preferred_username comes with the profile scope only.
	for scope, want := range map[string]bool{"openid": false, "openid profile": true} {
		t.Run("userinfo with scope "+scope, func(t *testing.T) {
			resp, code := servertest.Transports(e)["gRPC"].Token(t, servertest.WithScope(servertest.PasswordRequest("alice", "wonderland"), scope))
			servertest.WantCode(t, "Token "+scope, code, codes.OK)
			req, _ := http.NewRequest(http.MethodGet, e.HTTPBase()+"/userinfo", nil)
			req.Header.Set("Authorization", "Bearer "+resp.GetAccessToken())
			answer, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			_ = json.NewDecoder(answer.Body).Decode(&body)
			answer.Body.Close()
			if _, has := body["preferred_username"]; has != want {
				t.Errorf("userinfo with %q: %v, preferred_username wanted %v", scope, body, want)
			}
		})
	}
}

// A burst of wrong passwords for one username gets no more passwords checked
// than the same tries one after the other would: the free tries, and with the
// clock standing still, nothing more. Each try is counted before its password
// is checked, in the store, so this holds across replicas too.
func TestBurstOfSignInsCannotOutrunTheThrottle(t *testing.T) {
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			e := servertest.StartOn(t, backend)
			tr := servertest.Transports(e)["gRPC"]
			const burst = 100
			var checked, throttled atomic.Int32
			var wg sync.WaitGroup
			for range burst {
				wg.Add(1)
				go func() {
					defer wg.Done()
					switch _, code := tr.Token(t, servertest.PasswordRequest("burst-target", "wrong-password")); code {
					case codes.Unauthenticated:
						checked.Add(1)
					case codes.ResourceExhausted:
						throttled.Add(1)
					default:
						t.Errorf("a try answered %v", code)
					}
				}()
			}
			wg.Wait()
			if n := checked.Load(); n > int32(accounts.DefaultThrottle.FreeFailures) {
				t.Fatalf("%d of %d parallel tries had their password checked, want at most the %d free ones", n, burst, accounts.DefaultThrottle.FreeFailures)
			}
			if checked.Load()+throttled.Load() != burst {
				t.Fatalf("%d checked and %d throttled of %d", checked.Load(), throttled.Load(), burst)
			}
		})
	}
}

// A public client must use PKCE even where --require-pkce is off: it has no
// secret, and a code without a challenge would be redeemable by anyone who
// sees it. A confidential client authenticates instead.
func TestPublicClientsAlwaysUsePKCE(t *testing.T) {
	e := servertest.Start(t, func(cfg *server.Config) { cfg.SignIn.RequirePKCE = false })
	tr := servertest.Transports(e)["gRPC"]
	e.CreateClient(t, "public-app", []string{"https://p.example/cb"}, false, storage.Grants{AllowedScopes: []string{"openid"}})
	e.CreateClient(t, "server-app", []string{"https://s.example/cb"}, true, storage.Grants{AllowedScopes: []string{"openid"}})
	for client, want := range map[string]codes.Code{"public-app": codes.InvalidArgument, "server-app": codes.OK} {
		t.Run(client, func(t *testing.T) {
			req := &authv1.GetAuthorizeUrlRequest{ClientId: client, RedirectUri: "https://" + client[:1] + ".example/cb", State: "s", Scope: "openid"}
			_, code := servertest.GetAuthorizeURL(t, tr, req)
			servertest.WantCode(t, "GetAuthorizeUrl without PKCE for "+client, code, want)
		})
	}
}

// A failed sign-in on /oauth2/token or the sign-in page is logged and
// counted like one on the API: same fields, transport oauth2.
func TestStandardEndpointsAreLoggedAndCounted(t *testing.T) {
	e := servertest.Start(t)
	resp, err := http.Post(e.HTTPBase()+"/oauth2/token", "application/x-www-form-urlencoded",
		strings.NewReader(url.Values{"grant_type": {"password"}, "username": {servertest.UserName}, "password": {"wrong-password"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	authorizeURL, code := servertest.GetAuthorizeURL(t, servertest.Transports(e)["gRPC"], servertest.AuthorizeRequest(servertest.NewVerifier(t), "openid"))
	servertest.WantCode(t, "GetAuthorizeUrl", code, codes.OK)
	if answer, _ := servertest.SignIn(t, e, authorizeURL, "wrong-password", "sign-in"); answer.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong password on the page: %d", answer.StatusCode)
	}
	logs := e.Logs.String()
	for _, want := range []string{
		`"method":"POST /oauth2/token","code":"400"`,
		`"method":"POST /oauth2/authorize","code":"401"`,
	} {
		if !strings.Contains(logs, want) || !strings.Contains(logs, `"transport":"oauth2"`) {
			t.Errorf("no log line with %s and transport oauth2", want)
		}
	}
	metrics, err := http.Get(e.HTTPBase() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer metrics.Body.Close()
	body, _ := io.ReadAll(metrics.Body)
	for _, want := range []string{
		`chit_rpc_requests_total{code="400",method="POST /oauth2/token",transport="oauth2"} 1`,
		`chit_rpc_requests_total{code="401",method="POST /oauth2/authorize",transport="oauth2"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// With an operations listener, /metrics and the Go profiles are served
// there only, not to anyone on the public HTTP port.
func TestOperationsListenerTakesMetricsOffThePublicPort(t *testing.T) {
	e := servertest.Start(t, func(cfg *server.Config) { cfg.OpsAddr = "127.0.0.1:0" })
	for _, tc := range []struct {
		name, url string
		want      int
	}{
		{"no metrics on the public port", e.HTTPBase() + "/metrics", http.StatusNotFound},
		{"metrics on the operations port", "http://" + e.Server.OpsAddr() + "/metrics", http.StatusOK},
		{"profiles on the operations port", "http://" + e.Server.OpsAddr() + "/debug/pprof/", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("GET %s: %d, want %d", tc.url, resp.StatusCode, tc.want)
			}
		})
	}
}

// Identifiers over their documented maximum are refused with a message
// naming them, before anything is stored.
func TestOverlongIdentifiersAreRefused(t *testing.T) {
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		long := "http://127.0.0.1:1/" + strings.Repeat("p", authorize.MaxRedirectURILength)
		req := servertest.AuthorizeRequest(servertest.NewVerifier(t), "openid")
		req.RedirectUri = long
		_, code := servertest.GetAuthorizeURL(t, tr, req)
		servertest.WantCode(t, "a redirect URI over the maximum", code, codes.InvalidArgument)
		req = servertest.AuthorizeRequest(servertest.NewVerifier(t), "openid")
		req.State = strings.Repeat("s", 513)
		_, code = servertest.GetAuthorizeURL(t, tr, req)
		servertest.WantCode(t, "a state over the maximum", code, codes.InvalidArgument)
		_, code = tr.Token(t, servertest.WithScope(servertest.PasswordRequest("alice", "wonderland"), strings.Repeat("s", 1025)))
		servertest.WantCode(t, "a scope over the maximum", code, codes.InvalidArgument)
	})
	if err := authorize.ValidateRedirectURIs([]string{"https://l.example/" + strings.Repeat("p", authorize.MaxRedirectURILength)}); err == nil {
		t.Fatal("a redirect URI over the maximum was accepted for registration")
	}
}

// A bulk claim or renew needing more provider keys than can be made before
// its deadline is refused at once (RESOURCE_EXHAUSTED, 429 with Retry-After)
// instead of burning minutes of CPU past it, and changes nothing.
func TestBulkKeyCallsThatCannotFitTheirDeadlineAreRefusedEarly(t *testing.T) {
	e := servertest.Start(t, func(cfg *server.Config) { cfg.RequestTimeout = 15 * time.Second })
	tr := servertest.Transports(e)["gRPC"]
	service, code := tr.Token(t, servertest.ClientRequest(servertest.ServiceName, e.ServiceSecret))
	servertest.WantCode(t, "service token", code, codes.OK)
	ids := make([]string, providers.MaxBulkItems)
	for i := range ids {
		ids[i] = fmt.Sprintf("bulk-%d", i)
	}
	claimTokens := servertest.Register(t, tr, service.GetAccessToken(), ids...)

	// 1,000 RSA keys take minutes of CPU; the call has 15 seconds.
	_, code = servertest.Claim(t, tr, service.GetAccessToken(), claimTokens...)
	servertest.WantCode(t, "claim of 1,000 providers", code, codes.ResourceExhausted)
	renew := &authv1.AuthProvidersRenewRequest{}
	for _, id := range ids {
		renew.Items = append(renew.Items, &authv1.FindByStringId{Id: id})
	}
	servertest.WantCode(t, "renew of 1,000 providers", tr.Invoke(t, authv1.AuthProviders_Renew_FullMethodName, service.GetAccessToken(), renew, &authv1.AuthProvidersRenewResponse{}), codes.ResourceExhausted)

	body, _ := protojson.Marshal(renew)
	req, _ := http.NewRequest(http.MethodPost, e.HTTPBase()+"/auth/providers/renew", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+service.GetAccessToken())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(answer), "items per call") {
		t.Fatalf("REST renew of 1,000 providers: %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), answer)
	}

	// Nothing was claimed: each claim token still works, once.
	credentials, code := servertest.Claim(t, tr, service.GetAccessToken(), claimTokens[0], claimTokens[999])
	servertest.WantCode(t, "claim of two after the refusals", code, codes.OK)
	if credentials[0].GetProviderId() != "bulk-0" || credentials[1].GetProviderId() != "bulk-999" {
		t.Fatalf("claimed %v", credentials)
	}
}

// The gRPC port tells every connection how many calls it may run at once,
// and disconnects a client that pings more often than allowed; both are
// read off the wire, as a client that ignored them would meet them.
func TestGRPCConnectionLimitsOnTheWire(t *testing.T) {
	e := servertest.Start(t, func(cfg *server.Config) {
		cfg.GRPCConnections = server.GRPCConnections{MaxConcurrentStreams: 7, MinPingInterval: time.Minute}
	})
	conn, err := net.Dial("tcp", e.Server.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	framer := http2.NewFramer(conn, conn)
	if err := framer.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	streams, settingsSeen := uint32(0), false
	for !settingsSeen {
		frame, err := framer.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if settings, ok := frame.(*http2.SettingsFrame); ok && !settings.IsAck() {
			settingsSeen = true
			streams, _ = settings.Value(http2.SettingMaxConcurrentStreams)
			if err := framer.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if streams != 7 {
		t.Fatalf("the server allows %d concurrent streams per connection, want 7", streams)
	}
	// Pings far more often than once a minute: the server answers a few,
	// then says goodbye with ENHANCE_YOUR_CALM.
	for i := range 10 {
		if err := framer.WritePing(false, [8]byte{byte(i)}); err != nil {
			break // the server may already have closed the connection
		}
	}
	for {
		frame, err := framer.ReadFrame()
		if err != nil {
			t.Fatalf("the connection ended without GOAWAY: %v", err)
		}
		if goAway, ok := frame.(*http2.GoAwayFrame); ok {
			if goAway.ErrCode != http2.ErrCodeEnhanceYourCalm {
				t.Fatalf("GOAWAY %v, want ENHANCE_YOUR_CALM", goAway.ErrCode)
			}
			return
		}
	}
}

// A gRPC message that does not decode (truncated, a wrong wire type) is the
// caller's mistake: INVALID_ARGUMENT naming the message, never INTERNAL; an
// Admin call so refused is audited too. Found by an attack run.
func TestMalformedGRPCMessagesAreInvalidArgument(t *testing.T) {
	e := servertest.Start(t)
	c := servertest.NewAdminCallers(t, e, servertest.Transports(e)["gRPC"])
	for _, tc := range []struct {
		name, method, bearer string
		body                 []byte
		want                 codes.Code
	}{
		{"a truncated Token request", authv1.AuthService_Token_FullMethodName, "", []byte{0x0a, 0x05, 0x0a}, codes.InvalidArgument},
		{"a string field sent as a varint", authv1.AuthService_RefreshToken_FullMethodName, "", []byte{0x08, 0x01}, codes.InvalidArgument},
		{"an admin call that does not decode", adminv1.AdminService_CreateUser_FullMethodName, c.Admin, []byte{0x0a, 0x7f, 'x'}, codes.InvalidArgument},
		{"the same without a token", adminv1.AdminService_CreateUser_FullMethodName, "", []byte{0x0a, 0x7f, 'x'}, codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.Conn.Invoke(servertest.WithBearer(tc.bearer), tc.method, tc.body, &emptypb.Empty{}, grpc.ForceCodecV2(rawCodec{}))
			if status.Code(err) != tc.want {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	lines := servertest.AuditLines(e)
	if last := lines[len(lines)-1]; last["action"] != "CreateUser" || last["outcome"] != "Unauthenticated" ||
		lines[len(lines)-2]["outcome"] != "InvalidArgument" {
		t.Fatalf("audit lines %v", lines[len(lines)-2:])
	}
}

// Sign-ins queued for the one hashing slot until their deadline nears are
// told to come back on every way in, on both stores: 429 with Retry-After,
// or RESOURCE_EXHAUSTED with a retry delay. None is cut by its deadline
// into a 504, a DEADLINE_EXCEEDED or a 500, as those were whose slot came in
// time to start the hash but not to finish the call.
func TestSignInsNearTheirDeadlineAreToldToRetry(t *testing.T) {
	// The throttle lets five tries of one person run at once: three people
	// make a queue of hashes (0.25 s each on an idle machine, several times
	// that on a loaded one or with -race) longer than a call may wait, and
	// few enough calls that the store's work for all of them, which the
	// load slows as much, fits well within one call's time.
	const people, triesEach = 3, 5
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			e := servertest.StartOn(t, backend, func(cfg *server.Config) {
				cfg.MaxConcurrentHashes = 1
				cfg.RequestTimeout = 2 * time.Second
				// As long as allowed: the queue's wait ends when the call's nearly does.
				cfg.HashQueueTimeout = cfg.RequestTimeout - time.Millisecond
				cfg.PasswordParams = passwords.Params{MemoryKiB: 64 * 1024, Iterations: 4, Parallelism: 1, SaltLength: 16, KeyLength: 32}
			})
			names := make([]string, people)
			for i := range names {
				names[i] = fmt.Sprintf("queued%d", i)
				if err := e.Directory().CreateUser(context.Background(), names[i], servertest.UserPassword, accounts.RoleUser, servertest.UserGrants); err != nil {
					t.Fatal(err)
				}
			}
			for _, way := range signInWays {
				t.Run(way.name, func(t *testing.T) {
					signIns := make([]func() string, people*triesEach)
					for i := range signIns {
						signIns[i] = way.prepare(t, e, names[i%people])
					}
					answers := make([]string, len(signIns))
					start := make(chan struct{})
					var wg sync.WaitGroup
					for i, signIn := range signIns {
						wg.Add(1)
						go func() {
							defer wg.Done()
							<-start
							answers[i] = signIn()
						}()
					}
					close(start)
					wg.Wait()
					counted := map[string]int{}
					for _, answer := range answers {
						counted[answer]++
					}
					for answer, n := range counted {
						if answer != signedIn && answer != retryLater {
							t.Errorf("%d of %d sign-ins answered %s", n, len(answers), answer)
						}
					}
					if t.Failed() {
						for _, line := range strings.Split(e.Logs.String(), "\n") {
							// An answer outside the two says why in the error log.
							if strings.Contains(line, context.DeadlineExceeded.Error()) || strings.Contains(line, "ERROR") {
								t.Log(line)
							}
						}
					}
					if counted[signedIn] == 0 || counted[retryLater] == 0 {
						t.Fatalf("answers %v: the queue was not both served and full; the test proves nothing", counted)
					}
				})
			}
		})
	}
}

// The answers a sign-in behind the hashing queue may get.
const (
	signedIn   = "signed in"
	retryLater = "retry later"
)

// signInWays are the ways in that check a password. Each prepares a
// sign-in of one person (whatever needs no password, as opening the
// sign-in page, done first) and returns it, to run at once with the others;
// the sign-in reports signedIn, retryLater (a refusal saying when to come
// back) or what else it got.
var signInWays = []struct {
	name    string
	prepare func(t *testing.T, e *servertest.Env, name string) func() string
}{
	{"gRPC", func(t *testing.T, e *servertest.Env, name string) func() string {
		client := authv1.NewAuthServiceClient(e.Conn)
		return func() string {
			_, err := client.Token(context.Background(), servertest.PasswordRequest(name, servertest.UserPassword))
			st := status.Convert(err)
			if st.Code() == codes.ResourceExhausted {
				for _, detail := range st.Details() {
					if info, ok := detail.(*errdetails.RetryInfo); ok && info.GetRetryDelay().AsDuration() > 0 {
						return retryLater
					}
				}
			}
			if st.Code() == codes.OK {
				return signedIn
			}
			return st.Code().String() + " without a retry delay"
		}
	}},
	{"REST", func(t *testing.T, e *servertest.Env, name string) func() string {
		body := `{"passwordCredential":{"username":"` + name + `","password":"` + servertest.UserPassword + `"}}`
		return func() string {
			return httpAnswer(http.Post(e.HTTPBase()+"/v1/auth/token", "application/json", strings.NewReader(body)))
		}
	}},
	{"OAuth token endpoint", func(t *testing.T, e *servertest.Env, name string) func() string {
		form := url.Values{"grant_type": {"password"}, "username": {name}, "password": {servertest.UserPassword}}
		return func() string { return httpAnswer(http.PostForm(e.HTTPBase()+"/oauth2/token", form)) }
	}},
	{"sign-in page", func(t *testing.T, e *servertest.Env, name string) func() string {
		authorizeURL, code := servertest.GetAuthorizeURL(t, servertest.Transports(e)["gRPC"], servertest.AuthorizeRequest(servertest.NewVerifier(t), "read"))
		servertest.WantCode(t, "GetAuthorizeUrl", code, codes.OK)
		browser := servertest.NoRedirects(t, e)
		page := browser.Open(t, authorizeURL)
		if page.Status != http.StatusOK {
			t.Fatalf("sign-in page: HTTP %d", page.Status)
		}
		form := url.Values{"username": {name}, "password": {servertest.UserPassword}, "action": {"sign-in"}}
		for field, values := range page.Fields {
			form[field] = values
		}
		target := *page.URL
		target.RawQuery = ""
		return func() string { return httpAnswer(browser.Client.PostForm(target.String(), form)) }
	}},
}

// httpAnswer is what a sign-in over HTTP was answered: success (200, or the
// sign-in page's redirect), 429 with Retry-After, or its status.
func httpAnswer(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusSeeOther:
		return signedIn
	case resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "":
		return retryLater
	}
	return fmt.Sprintf("HTTP %d (Retry-After %q)", resp.StatusCode, resp.Header.Get("Retry-After"))
}
