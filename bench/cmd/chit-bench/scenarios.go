package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/pkg/dpop"
)

// target is a running chitd and the accounts the scenarios call it with.
type target struct {
	conn *grpc.ClientConn
	rest *restClient
	// A service account (client credentials) and a user (password); a
	// scenario that needs one the operator did not give fails its setup.
	clientID, clientSecret string
	// usernames share password; callers sign in as usernames[worker %
	// len(usernames)]: a person signs in once at a time, and Chit counts
	// each username's tries before checking them, so one username signing
	// in from every caller at once would be throttled like a burst of
	// guesses.
	usernames []string
	password  string
	// callers is the concurrency, which sizes per-caller state.
	callers int
	// ssoClient is a registered public OAuth client allowed openid with the
	// redirect URI ssoRedirect, for the sign-in session scenario.
	ssoClient, ssoRedirect string
	// grants are the token exchange and federation scenarios' accounts;
	// grantsProblem says what chitd failed to make of them.
	grants        grantFixtures
	grantsProblem string
	// deviceClient says whether chitd made benchDeviceClient; polls counts
	// the device polls as they are made (warm-up included), for the store
	// operations per poll.
	deviceClient bool
	polls        atomic.Int64
	// feedClientID and feedSecret are a service account allowed
	// chit:revocations, whose token subscribes the fan-out scenario's
	// verifiers.
	feedClientID, feedSecret string
}

const baselineName = "baseline (health check)"

// Scenario names, for --scenario and --only.
const (
	checkHot  = "CheckToken, one hot token"
	checkPool = "CheckToken, pool of 256"
	// RFC 9449: a DPoP-bound token with a fresh proof per call (signed by
	// the load generator, checked by the server: signature, replay record,
	// ath), beside the same call with a bearer token.
	checkDPoP        = "CheckToken, DPoP-bound (a proof per call)"
	clientToken      = "Token, client credentials"
	apiKeyToken      = "Token, API key"
	passwordToken    = "Token, password (argon2id)"
	passwordStampede = "Token, password, 1000 concurrent sign-ins"
	refreshChains    = "RefreshToken, one chain per caller"
	providerRefresh  = "provider refresh, pool of 64"
	// The standard endpoints are on the HTTP port only: their one
	// transport is "rest".
	oauthIntrospect  = "/oauth2/introspect, Basic"
	oauthClientToken = "/oauth2/token, client credentials"
	ssoAuthorize     = "authorize with a session (SSO, no password)"
	// RFC 8693 delegation: a service's token addressed to the exchanger,
	// exchanged for one addressed downstream.
	oauthTokenExchange = "/oauth2/token, token exchange (delegation)"
	// RFC 7523: one workload assertion of a trusted issuer (keys from a
	// file, as cached keys are), presented again and again.
	oauthFederation = "/oauth2/token, workload federation (jwt-bearer)"
	// RFC 8628: each caller polls its own pending device authorization,
	// faster than its interval, as an impatient device would: each answer
	// is authorization_pending or slow_down.
	oauthDevicePoll = "/oauth2/token, device code polling (pending)"
)

// benchDeviceClient is the public client the device polling scenario
// starts its device authorizations with.
const benchDeviceClient = "bench-device"

// The OAuth client the suite registers for ssoAuthorize: public, openid,
// a loopback redirect (its code is never redeemed).
const (
	benchSSOClient   = "bench-sso"
	benchSSORedirect = "http://127.0.0.1/callback"
)

// comparedWith names, for a scenario compared with another scenario rather
// than with the health check, the scenario (over the same transport) that
// takes turns with it as its reference: /oauth2/token's client credentials
// cost what the REST Token's do but for the form and the answer's shape.
// The grants that stand in for a service's client secret (token exchange,
// workload federation) are compared with client credentials on the same
// endpoint.
var comparedWith = map[string]string{checkDPoP: checkHot, oauthClientToken: clientToken, oauthTokenExchange: oauthClientToken, oauthFederation: oauthClientToken}

// suiteOnly are the scenarios whose accounts (exchanging services, a
// federation rule with its issuer's key, a device client) the suite makes
// with chitd's commands before the server starts; run, against a server
// someone else started, leaves them out.
var suiteOnly = map[string]bool{oauthTokenExchange: true, oauthFederation: true, oauthDevicePoll: true}

// call is one request of a scenario; worker numbers let scenarios keep
// per-worker state such as refresh chains.
type call func(ctx context.Context, worker int) error

type scenario struct {
	name, transport string
	// setup runs before the load (fresh refresh chains, say); may be nil.
	setup func(ctx context.Context) error
	call  call
	// callers overrides the run's concurrency; such a scenario is a burst,
	// measured from its first call without a warm-up.
	callers int
}

// setUp runs the scenario's setup, if any.
func (sc scenario) setUp() error {
	if sc.setup == nil {
		return nil
	}
	if err := sc.setup(context.Background()); err != nil {
		return fmt.Errorf("%s setup: %w", sc.name, err)
	}
	return nil
}

// fixtures are tokens the scenarios share, made on first use.
type fixtures struct {
	t *target

	serviceOnce          sync.Once
	serviceAuthorization string // "Bearer " + a service account's token
	serviceErr           error

	poolOnce           sync.Once
	poolAuthorizations []string // "Bearer " + a distinct token
	poolErr            error

	apiKeyOnce sync.Once
	apiKey     string // the service account's API key
	apiKeyErr  error

	dpopOnce sync.Once
	// dpopSigner holds the key dpopAuthorization ("DPoP " + a service
	// account's token) is bound to; dpopCheckURL is CheckToken's htu.
	dpopSigner        *dpop.Signer
	dpopAuthorization string
	dpopCheckURL      string
	dpopErr           error
	// dpopProofs are CheckToken proofs signed before the load, taken in
	// turn (dpopNext), so that the turns measure the server's check of a
	// proof and not the load generator's signing, which shares the
	// machine; past the last one, calls sign their own.
	dpopProofs []string
	dpopNext   atomic.Int64

	providersOnce  sync.Once
	providerTokens []string
	providersErr   error

	chainsMu sync.Mutex
	chains   []string

	// exchangeForm is a token exchange request for a fresh subject token.
	exchangeForm []byte

	// devicePolls are the device polling scenario's requests, one per
	// caller.
	devicePolls [][]byte

	// sessionCookies are "name=value" Cookie headers of sign-in sessions,
	// one per user; authorizePath is the authorization request they answer.
	sessionCookies []string
	authorizePath  string
}

// newSessions signs each user in once on the sign-in page's form, as a
// browser would, and keeps the session cookie it sets: the scenario then
// asks for codes with it and never types a password.
func (f *fixtures) newSessions(ctx context.Context) error {
	if err := f.t.needUser(); err != nil {
		return err
	}
	if f.t.ssoClient == "" {
		return errors.New("this scenario needs a registered public OAuth client allowed openid: --sso-client and --sso-redirect-uri")
	}
	// A fixed challenge: the codes are never redeemed (they expire).
	query := url.Values{"response_type": {"code"}, "client_id": {f.t.ssoClient}, "redirect_uri": {f.t.ssoRedirect}, "scope": {"openid"},
		"state": {"bench"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	f.authorizePath = "/oauth2/authorize?" + query.Encode()
	cookies := make([]string, len(f.t.usernames))
	for i, name := range f.t.usernames {
		cookie, err := f.t.signInOnPage(ctx, f.authorizePath, name)
		if err != nil {
			return fmt.Errorf("sign %s in on the page: %w", name, err)
		}
		cookies[i] = cookie
	}
	f.sessionCookies = cookies
	return nil
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// signInOnPage opens the sign-in page at path, submits its form as name
// and returns the session cookie the answer sets, as a Cookie header.
func (t *target) signInOnPage(ctx context.Context, path, name string) (string, error) {
	browser, err := t.rest.browser()
	if err != nil {
		return "", err
	}
	base := t.rest.scheme + "://" + t.rest.host
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := browser.Do(req)
	if err != nil {
		return "", err
	}
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the page answered HTTP %d (%v)", resp.StatusCode, err)
	}
	form := url.Values{"username": {name}, "password": {t.password}, "action": {"sign-in"}}
	for _, match := range hiddenInput.FindAllStringSubmatch(string(page), -1) {
		form.Set(html.UnescapeString(match[1]), html.UnescapeString(match[2]))
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, base+"/oauth2/authorize", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err = browser.Do(req); err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return "", fmt.Errorf("the sign-in answered HTTP %d", resp.StatusCode)
	}
	for _, cookie := range resp.Cookies() {
		if strings.HasSuffix(cookie.Name, "chit_session") {
			return cookie.Name + "=" + cookie.Value, nil
		}
	}
	return "", errors.New("the sign-in set no session cookie: does this chitd keep sign-in sessions (--session-lifetime)?")
}

// service signs the service account in once and returns its Authorization
// header value.
func (f *fixtures) service(ctx context.Context) (string, error) {
	f.serviceOnce.Do(func() {
		if f.t.clientID == "" || f.t.clientSecret == "" {
			f.serviceErr = errors.New("this scenario needs a service account: --client-id and CHIT_BENCH_CLIENT_SECRET")
			return
		}
		var resp *authv1.TokenResponse
		resp, f.serviceErr = authv1.NewAuthServiceClient(f.t.conn).Token(ctx, f.t.clientRequest())
		f.serviceAuthorization = "Bearer " + resp.GetAccessToken()
	})
	return f.serviceAuthorization, f.serviceErr
}

// dpopToken signs the service account in with a DPoP proof once: its
// token is bound to the fixture's key.
func (f *fixtures) dpopToken(ctx context.Context) error {
	f.dpopOnce.Do(func() {
		if f.t.clientID == "" || f.t.clientSecret == "" {
			f.dpopErr = errors.New("this scenario needs a service account: --client-id and CHIT_BENCH_CLIENT_SECRET")
			return
		}
		auth := authv1.NewAuthServiceClient(f.t.conn)
		status, err := auth.GetAuthStatus(ctx, &authv1.GetAuthStatusRequest{})
		if err != nil {
			f.dpopErr = err
			return
		}
		issuer := strings.TrimSuffix(status.GetIssuer(), "/")
		if f.dpopSigner, f.dpopErr = dpop.GenerateSigner(); f.dpopErr != nil {
			return
		}
		proof, err := f.dpopSigner.Proof(http.MethodPost, issuer+"/v1/auth/token", "", "")
		if err != nil {
			f.dpopErr = err
			return
		}
		resp, err := auth.Token(metadata.AppendToOutgoingContext(ctx, "dpop", proof), f.t.clientRequest())
		if err != nil {
			f.dpopErr = err
			return
		}
		if resp.GetTokenType() != "DPoP" {
			f.dpopErr = fmt.Errorf("a token request with a DPoP proof got a %q token: does this chitd support DPoP?", resp.GetTokenType())
			return
		}
		f.dpopAuthorization, f.dpopCheckURL = "DPoP "+resp.GetAccessToken(), issuer+"/v1/auth/check"
		f.dpopProofs, f.dpopErr = f.signCheckProofs(dpopPregenerated)
	})
	return f.dpopErr
}

// dpopPregenerated is how many proofs the DPoP scenario signs before its
// turns: more than its turns take at the rates measured here, and all
// within the server's one-minute proof lifetime of their use.
const dpopPregenerated = 120_000

// signCheckProofs signs n CheckToken proofs on every core.
func (f *fixtures) signCheckProofs(n int) ([]string, error) {
	proofs := make([]string, n)
	workers := runtime.NumCPU()
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := w; i < n; i += workers {
				proof, err := f.dpopSigner.Proof(http.MethodGet, f.dpopCheckURL, strings.TrimPrefix(f.dpopAuthorization, "DPoP "), "")
				if err != nil {
					errs <- err
					return
				}
				proofs[i] = proof
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			return nil, err
		}
	}
	return proofs, nil
}

// checkProof is a fresh DPoP proof for a CheckToken call with the
// fixture's token.
func (f *fixtures) checkProof() (string, error) {
	if i := f.dpopNext.Add(1) - 1; i < int64(len(f.dpopProofs)) {
		return f.dpopProofs[i], nil
	}
	return f.dpopSigner.Proof(http.MethodGet, f.dpopCheckURL, strings.TrimPrefix(f.dpopAuthorization, "DPoP "), "")
}

// tokenPool signs 256 distinct access tokens and returns their Authorization
// header values.
func (f *fixtures) tokenPool(ctx context.Context) ([]string, error) {
	f.poolOnce.Do(func() {
		if _, f.poolErr = f.service(ctx); f.poolErr != nil {
			return
		}
		auth := authv1.NewAuthServiceClient(f.t.conn)
		for range 256 {
			resp, err := auth.Token(ctx, f.t.clientRequest())
			if err != nil {
				f.poolErr = err
				return
			}
			f.poolAuthorizations = append(f.poolAuthorizations, "Bearer "+resp.GetAccessToken())
		}
	})
	return f.poolAuthorizations, f.poolErr
}

// serviceAPIKey makes the service account an API key once (with a fresh
// client-credentials token, the recent sign-in it needs) and returns it.
func (f *fixtures) serviceAPIKey(ctx context.Context) (string, error) {
	f.apiKeyOnce.Do(func() {
		if _, f.apiKeyErr = f.service(ctx); f.apiKeyErr != nil {
			return
		}
		// A token of its own: the shared one may be older than a recent
		// sign-in by now.
		auth := authv1.NewAuthServiceClient(f.t.conn)
		var fresh *authv1.TokenResponse
		if fresh, f.apiKeyErr = auth.Token(ctx, f.t.clientRequest()); f.apiKeyErr != nil {
			return
		}
		var resp *authv1.CreateApiKeyResponse
		resp, f.apiKeyErr = auth.CreateApiKey(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+fresh.GetAccessToken()),
			&authv1.CreateApiKeyRequest{Name: fmt.Sprintf("bench-%d", time.Now().UnixNano())})
		f.apiKey = resp.GetKey()
	})
	return f.apiKey, f.apiKeyErr
}

func (f *fixtures) providers(ctx context.Context) ([]string, error) {
	f.providersOnce.Do(func() {
		var authorization string
		if authorization, f.providersErr = f.service(ctx); f.providersErr == nil {
			f.providerTokens, f.providersErr = claimProviders(ctx, f.t.conn, authorization, 64)
		}
	})
	return f.providerTokens, f.providersErr
}

// newChains signs in once per caller: each caller then rotates its own
// refresh chain.
func (f *fixtures) newChains(ctx context.Context) error {
	if err := f.t.needUser(); err != nil {
		return err
	}
	auth := authv1.NewAuthServiceClient(f.t.conn)
	chains := make([]string, f.t.callers)
	for i := range chains {
		resp, err := auth.Token(ctx, f.t.passwordRequest(i))
		if err != nil {
			return err
		}
		chains[i] = resp.GetRefreshToken()
	}
	f.chainsMu.Lock()
	f.chains = chains
	f.chainsMu.Unlock()
	return nil
}

// rotate replaces worker's refresh token with the one rotation answers.
func (f *fixtures) rotate(worker int, rotation func(refreshToken string) (string, error)) error {
	f.chainsMu.Lock()
	token := f.chains[worker]
	f.chainsMu.Unlock()
	next, err := rotation(token)
	if err != nil {
		return err
	}
	f.chainsMu.Lock()
	f.chains[worker] = next
	f.chainsMu.Unlock()
	return nil
}

// scenarios lists every scenario on both transports, baseline first.
func (t *target) scenarios() []scenario {
	f := &fixtures{t: t}
	auth := authv1.NewAuthServiceClient(t.conn)
	providerAPI := authv1.NewAuthProvidersClient(t.conn)
	health := grpc_health_v1.NewHealthClient(t.conn)
	// The header values are built once, as a busy caller would keep them:
	// the load generator shares the machine's cores with the server.
	withAuthorization := func(ctx context.Context, authorization string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", authorization)
	}
	// pick spreads the calls over a pool without a shared counter.
	pick := func(pool []string) string { return pool[int(time.Now().UnixNano()/7)%len(pool)] }
	needService := func(ctx context.Context) error { _, err := f.service(ctx); return err }
	needPool := func(ctx context.Context) error { _, err := f.tokenPool(ctx); return err }
	needProviders := func(ctx context.Context) error { _, err := f.providers(ctx); return err }
	needAPIKey := func(ctx context.Context) error { _, err := f.serviceAPIKey(ctx); return err }
	needUser := func(context.Context) error { return t.needUser() }
	needFederation := func(context.Context) error {
		if t.grants.federationForm == nil {
			return fmt.Errorf("no federation rule: %s", t.grantsProblem)
		}
		return nil
	}
	restPasswords := make([]map[string]any, len(t.usernames))
	for i, name := range t.usernames {
		restPasswords[i] = map[string]any{"passwordCredential": map[string]string{"username": name, "password": t.password}}
	}
	restPassword := func(worker int) map[string]any { return restPasswords[worker%len(restPasswords)] }
	restClient := map[string]any{"clientCredential": map[string]string{"clientId": t.clientID, "clientSecret": t.clientSecret}}
	basicClient := basicAuthorization(t.clientID, t.clientSecret)
	clientCredentialsForm := []byte("grant_type=client_credentials")
	var introspectionForm []byte
	needIntrospection := func(ctx context.Context) error {
		authorization, err := f.service(ctx)
		introspectionForm = []byte("token=" + url.QueryEscape(strings.TrimPrefix(authorization, "Bearer ")))
		return err
	}
	return []scenario{
		{baselineName, "grpc", nil, func(ctx context.Context, _ int) error {
			_, err := health.Check(ctx, &grpc_health_v1.HealthCheckRequest{})
			return err
		}, 0},
		{baselineName, "rest", nil, func(ctx context.Context, _ int) error { _, err := t.get(ctx, "/healthz", ""); return err }, 0},
		{checkHot, "grpc", needService, func(ctx context.Context, _ int) error {
			_, err := auth.CheckToken(withAuthorization(ctx, f.serviceAuthorization), &authv1.CheckTokenRequest{})
			return err
		}, 0},
		{checkHot, "rest", needService, func(ctx context.Context, _ int) error {
			_, err := t.get(ctx, "/v1/auth/check", f.serviceAuthorization)
			return err
		}, 0},
		{checkDPoP, "grpc", f.dpopToken, func(ctx context.Context, _ int) error {
			proof, err := f.checkProof()
			if err != nil {
				return err
			}
			_, err = auth.CheckToken(metadata.AppendToOutgoingContext(withAuthorization(ctx, f.dpopAuthorization), "dpop", proof), &authv1.CheckTokenRequest{})
			return err
		}, 0},
		{checkDPoP, "rest", f.dpopToken, func(ctx context.Context, _ int) error {
			proof, err := f.checkProof()
			if err != nil {
				return err
			}
			_, err = t.rest.callWithProof(ctx, http.MethodGet, "/v1/auth/check", f.dpopAuthorization, proof)
			return err
		}, 0},
		{checkPool, "grpc", needPool, func(ctx context.Context, _ int) error {
			_, err := auth.CheckToken(withAuthorization(ctx, pick(f.poolAuthorizations)), &authv1.CheckTokenRequest{})
			return err
		}, 0},
		{checkPool, "rest", needPool, func(ctx context.Context, _ int) error {
			_, err := t.get(ctx, "/v1/auth/check", pick(f.poolAuthorizations))
			return err
		}, 0},
		{clientToken, "grpc", needService, func(ctx context.Context, _ int) error {
			_, err := auth.Token(ctx, t.clientRequest())
			return err
		}, 0},
		{clientToken, "rest", needService, func(ctx context.Context, _ int) error {
			_, err := t.post(ctx, "/v1/auth/token", restClient, "")
			return err
		}, 0},
		{oauthClientToken, "rest", needService, func(ctx context.Context, _ int) error {
			_, err := t.postForm(ctx, "/oauth2/token", clientCredentialsForm, basicClient)
			return err
		}, 0},
		{oauthIntrospect, "rest", needIntrospection, func(ctx context.Context, _ int) error {
			raw, err := t.postForm(ctx, "/oauth2/introspect", introspectionForm, basicClient)
			if err == nil && !bytes.Contains(raw, []byte(`"active":true`)) {
				// An inactive answer is a 200 too, and far cheaper.
				err = fmt.Errorf("the token is not active: %s", raw)
			}
			return err
		}, 0},
		{ssoAuthorize, "rest", f.newSessions, func(ctx context.Context, worker int) error {
			location, err := t.rest.redirect(ctx, f.authorizePath, f.sessionCookies[worker%len(f.sessionCookies)])
			if err == nil && !strings.Contains(location, "code=") {
				// An error answered at the redirect URI is a 303 too.
				err = fmt.Errorf("no code in %s", location)
			}
			return err
		}, 0},
		{oauthTokenExchange, "rest", f.newExchange, func(ctx context.Context, _ int) error {
			_, err := t.postForm(ctx, "/oauth2/token", f.exchangeForm, t.grants.exchangerBasic)
			return err
		}, 0},
		{oauthFederation, "rest", needFederation, func(ctx context.Context, _ int) error {
			_, err := t.postForm(ctx, "/oauth2/token", t.grants.federationForm, "")
			return err
		}, 0},
		{oauthDevicePoll, "rest", f.newDeviceAuthorizations, func(ctx context.Context, worker int) error {
			t.polls.Add(1)
			_, err := t.postForm(ctx, "/oauth2/token", f.devicePolls[worker%len(f.devicePolls)], "")
			if err != nil && (strings.Contains(err.Error(), `"slow_down"`) || strings.Contains(err.Error(), `"authorization_pending"`)) {
				// The answers a device polling too early gets: HTTP 400.
				return nil
			}
			if err == nil {
				err = errors.New("a pending device authorization answered tokens")
			}
			return err
		}, 0},
		{apiKeyToken, "grpc", needAPIKey, func(ctx context.Context, _ int) error {
			_, err := auth.Token(ctx, &authv1.TokenRequest{Credential: &authv1.TokenRequest_ApiKeyCredential{
				ApiKeyCredential: &authv1.ApiKeyCredential{ApiKey: f.apiKey}}})
			return err
		}, 0},
		{apiKeyToken, "rest", needAPIKey, func(ctx context.Context, _ int) error {
			_, err := t.post(ctx, "/v1/auth/token", map[string]any{"apiKeyCredential": map[string]string{"apiKey": f.apiKey}}, "")
			return err
		}, 0},
		{passwordToken, "grpc", needUser, func(ctx context.Context, worker int) error {
			_, err := auth.Token(ctx, t.passwordRequest(worker))
			return err
		}, 0},
		{passwordToken, "rest", needUser, func(ctx context.Context, worker int) error {
			_, err := t.post(ctx, "/v1/auth/token", restPassword(worker), "")
			return err
		}, 0},
		{passwordStampede, "grpc", needUser, func(ctx context.Context, worker int) error {
			_, err := auth.Token(ctx, t.passwordRequest(worker))
			return err
		}, 1000},
		{refreshChains, "grpc", f.newChains, func(ctx context.Context, worker int) error {
			return f.rotate(worker, func(token string) (string, error) {
				resp, err := auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: token})
				return resp.GetRefreshToken(), err
			})
		}, 0},
		{refreshChains, "rest", f.newChains, func(ctx context.Context, worker int) error {
			return f.rotate(worker, func(token string) (string, error) {
				raw, err := t.post(ctx, "/v1/auth/token/refresh", map[string]string{"refreshToken": token}, "")
				if err != nil {
					return "", err
				}
				var answer struct {
					RefreshToken string `json:"refreshToken"`
				}
				return answer.RefreshToken, json.Unmarshal(raw, &answer)
			})
		}, 0},
		{providerRefresh, "grpc", needProviders, func(ctx context.Context, worker int) error {
			_, err := providerAPI.Refresh(ctx, &authv1.AuthProvidersRefreshRequest{
				Items: []*authv1.RefreshToken{{RefreshToken: f.providerTokens[worker%len(f.providerTokens)]}}})
			return err
		}, 0},
		{providerRefresh, "rest", needProviders, func(ctx context.Context, worker int) error {
			_, err := t.post(ctx, "/auth/providers/refresh",
				map[string]any{"items": []map[string]string{{"refreshToken": f.providerTokens[worker%len(f.providerTokens)]}}}, "")
			return err
		}, 0},
	}
}

// newDeviceAuthorizations starts one device authorization per caller,
// never approved.
func (f *fixtures) newDeviceAuthorizations(ctx context.Context) error {
	if !f.t.deviceClient {
		return fmt.Errorf("no device client: %s", f.t.grantsProblem)
	}
	f.devicePolls = make([][]byte, f.t.callers)
	for i := range f.devicePolls {
		raw, err := f.t.postForm(ctx, "/oauth2/device_authorization", []byte("client_id="+benchDeviceClient), "")
		if err != nil {
			return err
		}
		var answer struct {
			DeviceCode string `json:"device_code"`
		}
		if err := json.Unmarshal(raw, &answer); err != nil || answer.DeviceCode == "" {
			return fmt.Errorf("no device_code in %s (%v)", raw, err)
		}
		f.devicePolls[i] = []byte(url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
			"device_code": {answer.DeviceCode}, "client_id": {benchDeviceClient}}.Encode())
	}
	return nil
}

// storeOperations reads the server's count of store operations (all, and
// those named operation) from its metrics.
func (t *target) storeOperations(ctx context.Context, operation string) (all, named float64, err error) {
	raw, err := t.get(ctx, "/metrics", "")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		rest, ok := strings.CutPrefix(line, "chit_store_duration_seconds_count{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		all += n
		if strings.Contains(labels, `operation="`+operation+`"`) {
			named += n
		}
	}
	return all, named, nil
}

// newExchange gets the caller service a token addressed to the exchanger
// and makes the exchange request for it; the token outlives the scenario.
func (f *fixtures) newExchange(ctx context.Context) error {
	g := f.t.grants
	if g.exchangerBasic == "" {
		return fmt.Errorf("no token exchange services: %s", f.t.grantsProblem)
	}
	raw, err := f.t.postForm(ctx, "/oauth2/token", []byte("grant_type=client_credentials&resource="+url.QueryEscape(g.exchangerID)), g.callerBasic)
	if err != nil {
		return err
	}
	var answer struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		return err
	}
	f.exchangeForm = []byte(url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {answer.AccessToken},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
		"audience":           {benchExchangeAudience},
	}.Encode())
	return nil
}

func (t *target) needUser() error {
	if len(t.usernames) == 0 || t.password == "" {
		return errors.New("this scenario needs a user: --username and CHIT_BENCH_PASSWORD")
	}
	return nil
}

func (t *target) passwordRequest(worker int) *authv1.TokenRequest {
	return &authv1.TokenRequest{Credential: &authv1.TokenRequest_PasswordCredential{
		PasswordCredential: &authv1.PasswordCredential{Username: t.usernames[worker%len(t.usernames)], Password: t.password}}}
}

func (t *target) clientRequest() *authv1.TokenRequest {
	return &authv1.TokenRequest{Credential: &authv1.TokenRequest_ClientCredential{
		ClientCredential: &authv1.ClientCredential{ClientId: t.clientID, ClientSecret: t.clientSecret}}}
}

func (t *target) post(ctx context.Context, path string, body any, authorization string) ([]byte, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return t.rest.call(ctx, http.MethodPost, path, raw, authorization)
}

// postForm posts an application/x-www-form-urlencoded body, as the
// standard endpoints take.
func (t *target) postForm(ctx context.Context, path string, form []byte, authorization string) ([]byte, error) {
	return t.rest.send(ctx, http.MethodPost, path, "application/x-www-form-urlencoded", form, authorization, "")
}

// get calls path with an Authorization header value such as "Bearer ..."
// (none when empty).
func (t *target) get(ctx context.Context, path, authorization string) ([]byte, error) {
	return t.rest.call(ctx, http.MethodGet, path, nil, authorization)
}

// claimProviders registers and claims n providers, calling with the
// service's Authorization header value, and returns their refresh tokens.
func claimProviders(ctx context.Context, conn *grpc.ClientConn, authorization string, n int) ([]string, error) {
	api := authv1.NewAuthProvidersClient(conn)
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authorization)
	register := &authv1.AuthProvidersRegisterRequest{}
	prefix := fmt.Sprintf("bench-%d-", time.Now().UnixNano())
	for i := range n {
		register.Items = append(register.Items, &authv1.AuthProvidersRegisterRequestItem{Id: prefix + strconv.Itoa(i)})
	}
	registered, err := api.Register(ctx, register)
	if err != nil {
		return nil, err
	}
	claim := &authv1.AuthProvidersClaimRequest{}
	for _, item := range registered.GetResponses() {
		claim.Items = append(claim.Items, &authv1.AuthProvidersRegisterResponseItem{ClaimToken: item.GetClaimToken()})
	}
	claimed, err := api.Claim(ctx, claim)
	if err != nil {
		return nil, err
	}
	var refreshTokens []string
	for _, item := range claimed.GetResponses() {
		refreshTokens = append(refreshTokens, item.GetRefreshToken())
	}
	return refreshTokens, nil
}
