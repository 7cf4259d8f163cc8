package federation_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/federation"
	"github.com/chit-auth/chit/internal/federation/federationtest"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/passwords"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/sqlite"
	"github.com/chit-auth/chit/internal/storage/sqlite/sqlitetest"
	"github.com/chit-auth/chit/internal/tokens"
)

type clock struct{ nanos atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.nanos.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.nanos.Add(int64(d)) }

// syncBuffer is a log sink the test reads while the service writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines() []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) == nil {
			out = append(out, entry)
		}
	}
	return out
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type fixture struct {
	service *federation.Service
	tokens  *tokens.Service
	store   storage.Store
	clock   *clock
	logs    *syncBuffer
	// k8s is a Kubernetes-shaped issuer whose keys a rule holds inline;
	// gha is GitHub Actions, fetched over discovery; plain is an issuer at
	// its own URL (for discovery cases).
	k8s, gha, plain *federationtest.Issuer
}

const chitAudience = "https://chit.example"

// fetchTimeout is the fixture's, short so the slow issuer's case is quick.
const fetchTimeout = 300 * time.Millisecond

var deployerGrants = storage.Grants{AllowedScopes: []string{"deploy", "read"}, DefaultScopes: []string{"read"}, AllowedAudiences: []string{"inventory"}}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlitetest.Dir(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	c := &clock{}
	c.nanos.Store(time.Now().Truncate(time.Second).UnixNano())
	hasher, err := passwords.NewHasher(passwords.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}, 4, time.Second, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	directory := accounts.NewDirectory(accounts.Config{ServerAudience: "chit"}, accounts.Dependencies{Store: store, Hasher: hasher, Now: c.Now, Random: rand.Reader})
	for _, name := range []string{"deployer", "builder"} {
		if _, err := directory.CreateServiceAccount(ctx, name, deployerGrants); err != nil {
			t.Fatal(err)
		}
	}
	signingKeys, err := keys.Load(ctx, store, jwa.ES256, &keys.Sealer{}, c.Now())
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	tokenService := tokens.NewService(tokens.Config{Issuer: "https://chit.test", Audience: "chit", AccessTokenTTL: 15 * time.Minute, RefreshTokenTTL: time.Hour,
		ClockSkew: 30 * time.Second, RevocationCacheTTL: time.Second}, tokens.Dependencies{Keys: signingKeys, Store: store, Directory: directory, Now: c.Now, Random: rand.Reader, Logger: logger})
	f := &fixture{tokens: tokenService, store: store, clock: c, logs: logs,
		k8s: federationtest.NewIssuer(t, federationtest.KubernetesIssuer), gha: federationtest.NewIssuer(t, federationtest.GitHubIssuer)}
	f.plain = federationtest.NewIssuer(t, "")
	// One client reaches both fetched issuers: gha under its real name,
	// plain at its own address.
	f.service = federation.New(federation.Config{ClockSkew: 30 * time.Second, FetchTimeout: fetchTimeout}, federation.Dependencies{Store: store, Directory: directory, Tokens: tokenService,
		HTTPClient: routed(f.gha, f.plain), Now: c.Now, Logger: logger})
	return f
}

// routed is a client that reaches gha for its host name and plain for the
// others.
func routed(gha, plain *federationtest.Issuer) *http.Client {
	ghaClient, plainClient := gha.Client(), plain.Server.Client()
	return &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		if r.URL.Host == "token.actions.githubusercontent.com" {
			return ghaClient.Transport.RoundTrip(r)
		}
		return plainClient.Transport.RoundTrip(r)
	})}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (f *fixture) create(t *testing.T, rule storage.FederationRule) storage.FederationRule {
	t.Helper()
	created, err := f.service.CreateRule(context.Background(), rule)
	if err != nil {
		t.Fatalf("create rule %s: %v", rule.Name, err)
	}
	return created
}

func (f *fixture) k8sRule(t *testing.T) storage.FederationRule {
	return storage.FederationRule{Name: "k8s-deployer", Issuer: federationtest.KubernetesIssuer, Audience: chitAudience, ServiceAccount: "deployer",
		Claims: map[string]string{"sub": "system:serviceaccount:prod:deployer"}, JWKS: f.k8s.PublicJWKS(t)}
}

func ghaRule() storage.FederationRule {
	return storage.FederationRule{Name: "gha-builder", Issuer: federationtest.GitHubIssuer, Audience: chitAudience, ServiceAccount: "builder",
		Claims: map[string]string{"repository_id": "123456", "repository_owner_id": "987", "ref": "refs/heads/*"}}
}

func (f *fixture) k8sToken(t *testing.T, edit func(map[string]any)) string {
	claims := federationtest.Kubernetes(federationtest.KubernetesIssuer, "prod", "deployer", chitAudience, f.clock.Now())
	if edit != nil {
		edit(claims)
	}
	return f.k8s.Sign(t, "", claims)
}

func (f *fixture) ghaToken(t *testing.T, edit func(map[string]any)) string {
	claims := federationtest.GitHub("acme", "shop", "123456", "987", "refs/heads/main", chitAudience, f.clock.Now())
	if edit != nil {
		edit(claims)
	}
	return f.gha.Sign(t, "", claims)
}

func (f *fixture) exchange(assertion string) (tokens.Grant, error) {
	return f.service.Exchange(context.Background(), federation.ExchangeRequest{Assertion: assertion})
}

func wantRefused(t *testing.T, err error, check, text string) {
	t.Helper()
	var refused *federation.RefusedError
	if !errors.As(err, &refused) || refused.Check != check || chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("error %v; want a refusal by check %s", err, check)
	}
	if !strings.Contains(err.Error(), text) {
		t.Fatalf("refusal %q does not say %q", err, text)
	}
}

func TestKubernetesTokenExchanged(t *testing.T) {
	f := newFixture(t)
	f.create(t, f.k8sRule(t))
	assertion := f.k8sToken(t, nil)
	grant, err := f.exchange(assertion)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := f.tokens.Check(context.Background(), grant.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if claims.Subject != "service:deployer" || strings.Join(claims.Scopes, " ") != "read" || grant.RefreshToken != "" {
		t.Fatalf("claims %+v, grant %+v", claims, grant)
	}
	// The same assertion again, within its life: a rule that is not
	// single-use exchanges it again.
	if _, err := f.exchange(assertion); err != nil {
		t.Fatalf("second exchange: %v", err)
	}
	// An audit line per exchange, naming the rule; never the assertion or
	// the token.
	var exchanged int
	for _, line := range f.logs.lines() {
		if line["event"] == "federation_exchange" && line["audit"] == true && line["rule"] == "k8s-deployer" && line["service"] == "deployer" {
			exchanged++
		}
	}
	if exchanged != 2 {
		t.Fatalf("%d exchange audit lines, want 2:\n%s", exchanged, f.logs)
	}
	signature := assertion[strings.LastIndex(assertion, ".")+1:]
	if logs := f.logs.String(); strings.Contains(logs, signature) || strings.Contains(logs, grant.AccessToken) {
		t.Fatal("a log line holds the assertion or the access token")
	}
}

func TestGrantPolicyOfTheService(t *testing.T) {
	f := newFixture(t)
	f.create(t, f.k8sRule(t))
	ctx := context.Background()
	grant, err := f.service.Exchange(ctx, federation.ExchangeRequest{Assertion: f.k8sToken(t, nil), Scope: "deploy", Audience: "inventory"})
	if err != nil {
		t.Fatal(err)
	}
	if grant.Scope != "deploy" {
		t.Fatalf("scope %q", grant.Scope)
	}
	if _, err := f.service.Exchange(ctx, federation.ExchangeRequest{Assertion: f.k8sToken(t, nil), Scope: "admin"}); err == nil {
		t.Fatal("a scope the service account does not hold was granted")
	}
	if _, err := f.service.Exchange(ctx, federation.ExchangeRequest{Assertion: f.k8sToken(t, nil), Audience: "payroll"}); err == nil {
		t.Fatal("an audience the service account may not ask for was granted")
	}
}

func TestIssuedTokenNeverOutlivesTheAssertion(t *testing.T) {
	f := newFixture(t)
	f.create(t, f.k8sRule(t))
	now := f.clock.Now()
	expires := now.Add(3 * time.Minute)
	grant, err := f.exchange(f.k8sToken(t, func(c map[string]any) { c["exp"] = expires.Unix() }))
	if err != nil {
		t.Fatal(err)
	}
	claims, err := f.tokens.Check(context.Background(), grant.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if claims.ExpiresAt.After(expires) || grant.ExpiresIn > 3*time.Minute {
		t.Fatalf("token expires %s (in %s), after the assertion's %s", claims.ExpiresAt, grant.ExpiresIn, expires)
	}
}

func TestGitHubActionsTokenExchangedOverDiscovery(t *testing.T) {
	f := newFixture(t)
	f.create(t, ghaRule())
	if _, err := f.exchange(f.ghaToken(t, nil)); err != nil {
		t.Fatal(err)
	}
	if f.gha.DiscoveryFetches.Load() != 1 || f.gha.JWKSFetches.Load() != 1 {
		t.Fatalf("%d discovery and %d JWKS fetches, want one each", f.gha.DiscoveryFetches.Load(), f.gha.JWKSFetches.Load())
	}
	// Cached: a second exchange fetches nothing.
	if _, err := f.exchange(f.ghaToken(t, nil)); err != nil {
		t.Fatal(err)
	}
	if f.gha.JWKSFetches.Load() != 1 {
		t.Fatalf("keys fetched %d times for two exchanges", f.gha.JWKSFetches.Load())
	}
	// An ES256 key of the same set verifies too.
	claims := federationtest.GitHub("acme", "shop", "123456", "987", "refs/heads/main", chitAudience, f.clock.Now())
	if _, err := f.exchange(f.gha.Sign(t, federationtest.ECKeyID, claims)); err != nil {
		t.Fatalf("ES256: %v", err)
	}
	// And an EdDSA key the issuer adds (found by refetching for its kid).
	f.gha.AddKey(t, "ed-1", jwa.EdDSA)
	f.clock.Advance(federation.RefetchInterval)
	if _, err := f.exchange(f.gha.Sign(t, "ed-1", claims)); err != nil {
		t.Fatalf("EdDSA: %v", err)
	}
}

// Every check refuses on its own, saying which.
func TestRefusals(t *testing.T) {
	f := newFixture(t)
	f.create(t, f.k8sRule(t))
	f.create(t, ghaRule())
	now := f.clock.Now()
	stranger := federationtest.NewIssuer(t, federationtest.KubernetesIssuer)
	for _, tc := range []struct {
		name, check, text string
		assertion         func() string
	}{
		{"bad signature", federation.CheckSignature, "signature does not verify", func() string {
			// Signed by another issuer's key under the trusted kid.
			return stranger.Sign(t, "", federationtest.Kubernetes(federationtest.KubernetesIssuer, "prod", "deployer", chitAudience, now))
		}},
		{"tampered payload", federation.CheckSignature, "signature does not verify", func() string {
			parts := strings.Split(f.k8sToken(t, nil), ".")
			claims := federationtest.Kubernetes(federationtest.KubernetesIssuer, "prod", "deployer", chitAudience, now)
			claims["sub"] = "system:serviceaccount:prod:deployer "
			payload, _ := json.Marshal(claims)
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
		}},
		{"alg none", federation.CheckAlgorithm, "none", func() string {
			return federationtest.Unsigned(t, map[string]any{"alg": "none", "kid": federationtest.KeyID},
				federationtest.Kubernetes(federationtest.KubernetesIssuer, "prod", "deployer", chitAudience, now), nil)
		}},
		{"alg HS256 keyed with the public key", federation.CheckAlgorithm, "HS256", func() string {
			header := map[string]any{"alg": "HS256", "kid": federationtest.KeyID}
			claims := federationtest.Kubernetes(federationtest.KubernetesIssuer, "prod", "deployer", chitAudience, now)
			unsigned := federationtest.Unsigned(t, header, claims, nil)
			mac := hmac.New(sha256.New, []byte(f.k8s.PublicJWKS(t)))
			mac.Write([]byte(strings.TrimSuffix(unsigned, ".")))
			return federationtest.Unsigned(t, header, claims, mac.Sum(nil))
		}},
		{"unknown kid", federation.CheckKeyID, "kid", func() string {
			stranger.AddKey(t, "rsa-9", jwa.RS256)
			return stranger.Sign(t, "rsa-9", federationtest.Kubernetes(federationtest.KubernetesIssuer, "prod", "deployer", chitAudience, now))
		}},
		{"iss mismatch", federation.CheckIssuer, "not trusted", func() string {
			return f.k8sToken(t, func(c map[string]any) { c["iss"] = federationtest.KubernetesIssuer + "/" })
		}},
		{"unknown issuer", federation.CheckIssuer, "not trusted", func() string {
			return f.k8sToken(t, func(c map[string]any) { c["iss"] = "https://evil.example" })
		}},
		{"aud missing", federation.CheckAudience, "aud does not contain", func() string {
			return f.k8sToken(t, func(c map[string]any) { delete(c, "aud") })
		}},
		{"aud of another service", federation.CheckAudience, "aud does not contain", func() string {
			return f.k8sToken(t, func(c map[string]any) { c["aud"] = []string{"https://vault.example"} })
		}},
		{"expired", federation.CheckExpiry, "expired", func() string {
			return f.k8sToken(t, func(c map[string]any) {
				c["iat"], c["nbf"], c["exp"] = now.Add(-time.Hour).Unix(), now.Add(-time.Hour).Unix(), now.Add(-time.Minute).Unix()
			})
		}},
		{"no exp", federation.CheckExpiry, "no exp", func() string {
			return f.k8sToken(t, func(c map[string]any) { delete(c, "exp") })
		}},
		{"nbf in the future", federation.CheckNotBefore, "not valid before", func() string {
			return f.k8sToken(t, func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute).Unix() })
		}},
		{"iat in the future", federation.CheckIssuedAt, "issued in the future", func() string {
			return f.k8sToken(t, func(c map[string]any) { c["iat"] = now.Add(5 * time.Minute).Unix(); delete(c, "nbf") })
		}},
		{"lifetime too long", federation.CheckLifetime, "longer than", func() string {
			return f.k8sToken(t, func(c map[string]any) { c["exp"] = now.Add(2 * time.Hour).Unix() })
		}},
		{"claim mismatch", federation.CheckClaims, `"sub"`, func() string {
			return f.k8sToken(t, func(c map[string]any) { c["sub"] = "system:serviceaccount:prod:intruder" })
		}},
		{"owner mismatch", federation.CheckClaims, `"repository_owner_id"`, func() string {
			return f.ghaToken(t, func(c map[string]any) { c["repository_owner_id"] = "988" })
		}},
		{"glob mismatch", federation.CheckClaims, `"ref"`, func() string {
			return f.ghaToken(t, func(c map[string]any) { c["ref"] = "refs/tags/v1" })
		}},
		{"glob does not cross a slash", federation.CheckClaims, `"ref"`, func() string {
			return f.ghaToken(t, func(c map[string]any) { c["ref"] = "refs/heads/team/feature" })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertion := tc.assertion()
			_, err := f.exchange(assertion)
			wantRefused(t, err, tc.check, tc.text)
			if strings.Contains(err.Error(), assertion) || strings.Contains(err.Error(), assertion[strings.LastIndex(assertion, ".")+1:]) && len(assertion)-strings.LastIndex(assertion, ".") > 8 {
				t.Fatal("the refusal echoes the assertion")
			}
			var audited bool
			for _, line := range f.logs.lines() {
				if line["event"] == "federation_refused" && line["check"] == tc.check && line["audit"] == true {
					audited = true
				}
			}
			if !audited {
				t.Fatalf("no audit line for check %s:\n%s", tc.check, f.logs)
			}
		})
	}
	if logs := f.logs.String(); strings.Contains(logs, "eyJ") {
		t.Fatal("a log line holds a JWT")
	}
}

func TestMalformedAssertions(t *testing.T) {
	f := newFixture(t)
	f.create(t, f.k8sRule(t))
	for name, assertion := range map[string]string{
		"empty":          "",
		"not a JWT":      "hello",
		"four parts":     "a.b.c.d",
		"not JSON":       "e30.bm90IGpzb24.c2ln",
		"no iss":         federationtest.Unsigned(t, map[string]any{"alg": "RS256"}, map[string]any{"sub": "x"}, []byte("sig")),
		"too long":       strings.Repeat("a", federation.MaxAssertionBytes) + "..",
		"exp not number": federationtest.Unsigned(t, map[string]any{"alg": "RS256"}, map[string]any{"iss": "https://x.example", "exp": "soon"}, []byte("sig")),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.exchange(assertion)
			if chiterr.KindOf(err) != chiterr.InvalidArgument && !(name == "exp not number" && chiterr.KindOf(err) == chiterr.Unauthenticated) {
				t.Fatalf("error %v (%v), want invalid argument", err, chiterr.KindOf(err))
			}
		})
	}
}

// A token naming where its keys are (jku) is not believed: no fetch goes
// there, and it is refused.
func TestKeysNeverComeFromTheToken(t *testing.T) {
	f := newFixture(t)
	f.create(t, f.k8sRule(t))
	attacker := federationtest.NewIssuer(t, federationtest.KubernetesIssuer)
	attacker.AddKey(t, "attacker", jwa.RS256)
	claims := federationtest.Kubernetes(federationtest.KubernetesIssuer, "prod", "deployer", chitAudience, f.clock.Now())
	signed := attacker.Sign(t, "attacker", claims)
	// Put a jku in the header: the signature is then wrong too, but the
	// point is that nothing is fetched from it.
	parts := strings.Split(signed, ".")
	header, _ := json.Marshal(map[string]any{"alg": "RS256", "kid": "attacker", "jku": attacker.Server.URL + "/keys"})
	forged := base64.RawURLEncoding.EncodeToString(header) + "." + parts[1] + "." + parts[2]
	_, err := f.exchange(forged)
	wantRefused(t, err, federation.CheckKeyID, "kid")
	if attacker.JWKSFetches.Load() != 0 {
		t.Fatal("keys were fetched from the URL the token named")
	}
}

// An unknown kid refetches the issuer's keys at most every 10 seconds; a
// key the issuer added is then found.
func TestUnknownKidRefetchIsThrottled(t *testing.T) {
	f := newFixture(t)
	f.create(t, ghaRule())
	if _, err := f.exchange(f.ghaToken(t, nil)); err != nil {
		t.Fatal(err)
	}
	f.gha.AddKey(t, "rotated", jwa.RS256)
	claims := federationtest.GitHub("acme", "shop", "123456", "987", "refs/heads/main", chitAudience, f.clock.Now())
	// Within 10 s of the last fetch: the new kid is unknown, nothing fetched.
	f.clock.Advance(5 * time.Second)
	for range 5 {
		_, err := f.exchange(f.gha.Sign(t, "rotated", claims))
		wantRefused(t, err, federation.CheckKeyID, "kid")
	}
	if n := f.gha.JWKSFetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches within the interval, want 1", n)
	}
	f.clock.Advance(federation.RefetchInterval)
	if _, err := f.exchange(f.gha.Sign(t, "rotated", claims)); err != nil {
		t.Fatalf("after the interval, the rotated key: %v", err)
	}
	if n := f.gha.JWKSFetches.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches, want 2", n)
	}
	// Made-up kids cost one fetch per interval, not one per request.
	stranger := federationtest.NewIssuer(t, federationtest.GitHubIssuer)
	stranger.AddKey(t, "made-up", jwa.RS256)
	for range 5 {
		_, err := f.exchange(stranger.Sign(t, "made-up", claims))
		wantRefused(t, err, federation.CheckKeyID, "kid")
	}
	if n := f.gha.JWKSFetches.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches after made-up kids within the interval, want 2", n)
	}
}

// A failed fetch refuses that issuer's assertions with a clear error,
// retried no more than the backoff allows, while another issuer serves.
func TestKeyFetchFailure(t *testing.T) {
	f := newFixture(t)
	f.create(t, f.k8sRule(t))
	f.create(t, ghaRule())
	f.gha.SetHandlers(nil, func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
	for range 3 {
		_, err := f.exchange(f.ghaToken(t, nil))
		wantRefused(t, err, federation.CheckKeys, "keys are unavailable: JWKS: answered HTTP 503")
	}
	if n := f.gha.JWKSFetches.Load(); n != 1 {
		t.Fatalf("%d fetches for 3 requests in a second, want 1 (throttled)", n)
	}
	// Everything else keeps serving.
	if _, err := f.exchange(f.k8sToken(t, nil)); err != nil {
		t.Fatalf("another issuer's assertion while one's keys are down: %v", err)
	}
	// Failing again, the wait doubles: 10 s, then 20 s.
	f.clock.Advance(federation.RefetchInterval)
	_, err := f.exchange(f.ghaToken(t, nil))
	wantRefused(t, err, federation.CheckKeys, "unavailable")
	f.clock.Advance(federation.RefetchInterval)
	_, err = f.exchange(f.ghaToken(t, nil))
	wantRefused(t, err, federation.CheckKeys, "unavailable")
	if n := f.gha.JWKSFetches.Load(); n != 2 {
		t.Fatalf("%d fetches after two failures and 20 s, want 2 (the second wait is 20 s)", n)
	}
	f.clock.Advance(federation.RefetchInterval)
	// Once the issuer is back and the backoff has passed, it serves again.
	f.gha.SetHandlers(nil, nil)
	if _, err := f.exchange(f.ghaToken(t, nil)); err != nil {
		t.Fatalf("after the issuer came back: %v", err)
	}
}

func TestKeyFetchHardening(t *testing.T) {
	for _, tc := range []struct {
		name      string
		discovery func(i *federationtest.Issuer) http.HandlerFunc
		jwks      http.HandlerFunc
		text      string
	}{
		{"JWKS redirect refused", nil, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/keys-elsewhere", http.StatusFound)
		}, "redirects are not followed"},
		{"oversize JWKS refused", nil, func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"keys":[` + strings.Repeat(" ", federation.MaxDocumentBytes) + `]}`))
		}, "larger than"},
		{"slow JWKS times out", nil, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * fetchTimeout):
			}
		}, "the request failed"},
		{"not a JWKS", nil, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"keys": "no"}`)) }, "not a JSON Web Key Set"},
		{"discovery jwks_uri on another host refused", func(i *federationtest.Issuer) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				_ = json.NewEncoder(w).Encode(map[string]any{"issuer": i.URL, "jwks_uri": "https://keys.elsewhere.example/keys"})
			}
		}, nil, "jwks_uri is not https on the issuer's host"},
		{"discovery jwks_uri over http refused", func(i *federationtest.Issuer) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				_ = json.NewEncoder(w).Encode(map[string]any{"issuer": i.URL, "jwks_uri": strings.Replace(i.URL, "https", "http", 1) + "/keys"})
			}
		}, nil, "jwks_uri is not https on the issuer's host"},
		{"discovery of another issuer refused", func(i *federationtest.Issuer) http.HandlerFunc {
			return func(w http.ResponseWriter, _ *http.Request) {
				_ = json.NewEncoder(w).Encode(map[string]any{"issuer": "https://other.example", "jwks_uri": i.URL + "/keys"})
			}
		}, nil, "its issuer is not the rule's"},
		{"discovery redirect refused", func(i *federationtest.Issuer) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/elsewhere", http.StatusMovedPermanently)
			}
		}, nil, "redirects are not followed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			rule := storage.FederationRule{Name: "plain", Issuer: f.plain.URL, Audience: chitAudience, ServiceAccount: "deployer",
				Claims: map[string]string{"sub": "workload"}}
			f.create(t, rule)
			var discovery http.HandlerFunc
			if tc.discovery != nil {
				discovery = tc.discovery(f.plain)
			}
			f.plain.SetHandlers(discovery, tc.jwks)
			claims := map[string]any{"iss": f.plain.URL, "sub": "workload", "aud": chitAudience, "iat": f.clock.Now().Unix(), "exp": f.clock.Now().Add(time.Minute).Unix()}
			_, err := f.exchange(f.plain.Sign(t, "", claims))
			wantRefused(t, err, federation.CheckKeys, tc.text)
			// The same rule serves once the issuer answers properly.
			f.plain.SetHandlers(nil, nil)
			f.clock.Advance(federation.RefetchInterval)
			if _, err := f.exchange(f.plain.Sign(t, "", claims)); err != nil {
				t.Fatalf("once fixed: %v", err)
			}
		})
	}
}

// An explicit jwks_uri is fetched as named, on whatever host.
func TestExplicitJWKSURI(t *testing.T) {
	f := newFixture(t)
	f.create(t, storage.FederationRule{Name: "explicit", Issuer: "https://spiffe.example", Audience: chitAudience, ServiceAccount: "deployer",
		Claims: map[string]string{"sub": "spiffe://example.org/ns/prod/sa/deployer"}, JWKSURI: f.plain.URL + "/keys"})
	claims := map[string]any{"iss": "https://spiffe.example", "sub": "spiffe://example.org/ns/prod/sa/deployer", "aud": []string{chitAudience},
		"exp": f.clock.Now().Add(5 * time.Minute).Unix()}
	if _, err := f.exchange(f.plain.Sign(t, federationtest.ECKeyID, claims)); err != nil {
		t.Fatal(err)
	}
	if f.plain.DiscoveryFetches.Load() != 0 {
		t.Fatal("discovery was read despite an explicit jwks_uri")
	}
}

func TestSingleUse(t *testing.T) {
	f := newFixture(t)
	rule := ghaRule()
	rule.SingleUse = true
	f.create(t, rule)
	assertion := f.ghaToken(t, nil)
	// Refused by the service's policy, it is not spent.
	if _, err := f.service.Exchange(context.Background(), federation.ExchangeRequest{Assertion: assertion, Scope: "admin"}); err == nil {
		t.Fatal("a scope the service does not hold was granted")
	}
	if _, err := f.exchange(assertion); err != nil {
		t.Fatal(err)
	}
	_, err := f.exchange(assertion)
	wantRefused(t, err, federation.CheckReplay, "exchanged already")
	// Of concurrent exchanges of one assertion, exactly one gets a token.
	again := f.ghaToken(t, nil)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := f.exchange(again); err == nil {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d of 8 concurrent exchanges of one single-use assertion got a token", wins.Load())
	}
	_, err = f.exchange(f.ghaToken(t, func(c map[string]any) { delete(c, "jti") }))
	wantRefused(t, err, federation.CheckJTI, "no jti")
	// The record goes once the assertion cannot be presented any more.
	f.clock.Advance(10 * time.Minute)
	if n, err := f.service.DeleteExpiredAssertions(context.Background(), f.clock.Now()); err != nil || n != 2 {
		t.Fatalf("DeleteExpiredAssertions = %d, %v; want 2", n, err)
	}
}

func TestRuleCreationRefusals(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		edit func(*storage.FederationRule)
		text string
	}{
		{"shared issuer without owner pin", func(r *storage.FederationRule) {
			r.Claims = map[string]string{"sub": "repo:acme/shop:ref:refs/heads/main"}
		}, "must pin an owner by its immutable numeric id"},
		{"shared issuer with no claims", func(r *storage.FederationRule) { r.Claims = nil }, "issues tokens to every repository"},
		{"GitLab without owner pin", func(r *storage.FederationRule) {
			r.Issuer, r.Claims = federationtest.GitLabIssuer, map[string]string{"ref": "main"}
		}, "project_id or namespace_id"},
		{"owner pin by name", func(r *storage.FederationRule) { r.Claims = map[string]string{"repository_owner_id": "acme"} }, "numeric id"},
		{"glob in owner pin", func(r *storage.FederationRule) { r.Claims = map[string]string{"repository_id": "12*"} }, "takes no glob"},
		{"no sub", func(r *storage.FederationRule) {
			r.Issuer, r.Claims = federationtest.KubernetesIssuer, map[string]string{"kubernetes.io": "x"}
		}, "must pin who the workload is with claim sub"},
		{"glob in sub", func(r *storage.FederationRule) {
			r.Issuer, r.Claims = federationtest.KubernetesIssuer, map[string]string{"sub": "system:serviceaccount:prod:*"}
		}, "sub pins who the workload is and takes no glob"},
		{"unknown service account", func(r *storage.FederationRule) { r.ServiceAccount = "nobody" }, "does not exist"},
		{"http issuer", func(r *storage.FederationRule) { r.Issuer = "http://token.actions.githubusercontent.com" }, "issuer must be an https URL"},
		{"issuer not a URL", func(r *storage.FederationRule) { r.Issuer = "kubernetes" }, "issuer must be an https URL"},
		{"http jwks_uri", func(r *storage.FederationRule) { r.JWKSURI = "http://keys.example/jwks" }, "jwks_uri must be an https URL"},
		{"jwks and jwks_uri", func(r *storage.FederationRule) { r.JWKS, r.JWKSURI = `{"keys":[]}`, "https://keys.example/jwks" }, "not both"},
		{"bad jwks", func(r *storage.FederationRule) { r.JWKS = `{"keys":"no"}` }, "jwks is not a JSON Web Key Set"},
		{"private key in jwks", func(r *storage.FederationRule) { r.JWKS = privateJWKS(t) }, "private key"},
		{"no audience", func(r *storage.FederationRule) { r.Audience = "" }, "audience is required"},
		{"claim checked by the rule", func(r *storage.FederationRule) { r.Claims["aud"] = "x" }, "checked by the rule itself"},
		{"bad pattern", func(r *storage.FederationRule) { r.Claims["ref"] = "refs/[heads" }, "not a valid pattern"},
		{"lifetime too long", func(r *storage.FederationRule) { r.MaxAssertionLifetime = 48 * time.Hour }, "max_assertion_lifetime"},
		{"bad name", func(r *storage.FederationRule) { r.Name = "no spaces" }, "name must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rule := ghaRule()
			tc.edit(&rule)
			_, err := f.service.CreateRule(context.Background(), rule)
			if err == nil || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("CreateRule = %v; want a refusal saying %q", err, tc.text)
			}
			if kind := chiterr.KindOf(err); kind != chiterr.InvalidArgument && kind != chiterr.NotFound {
				t.Fatalf("kind %v", kind)
			}
		})
	}
	// The good rule is made, once.
	created := f.create(t, ghaRule())
	if created.MaxAssertionLifetime != federation.DefaultMaxAssertionLifetime || created.CreatedAt.IsZero() {
		t.Fatalf("defaults not filled: %+v", created)
	}
	if _, err := f.service.CreateRule(context.Background(), ghaRule()); chiterr.KindOf(err) != chiterr.AlreadyExists {
		t.Fatalf("a taken name: %v", err)
	}
}

func privateJWKS(t *testing.T) string {
	t.Helper()
	// RFC 7517 Appendix A.2's EC private key.
	private, err := jwk.ParseKey([]byte(`{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}`))
	if err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	_ = set.AddKey(private)
	encoded, _ := json.Marshal(set)
	return string(encoded)
}

// A rule's max lifetime is its own; a deleted rule stops exchanging at once
// on this replica.
func TestRuleLifetimeAndDeletion(t *testing.T) {
	f := newFixture(t)
	rule := f.k8sRule(t)
	rule.MaxAssertionLifetime = 2 * time.Hour
	f.create(t, rule)
	long := f.k8sToken(t, func(c map[string]any) { c["exp"] = f.clock.Now().Add(90 * time.Minute).Unix() })
	if _, err := f.exchange(long); err != nil {
		t.Fatalf("a 90-minute assertion under a 2-hour rule: %v", err)
	}
	if err := f.service.DeleteRule(context.Background(), rule.Name); err != nil {
		t.Fatal(err)
	}
	_, err := f.exchange(f.k8sToken(t, nil))
	wantRefused(t, err, federation.CheckIssuer, "not trusted")
	if err := f.service.DeleteRule(context.Background(), rule.Name); chiterr.KindOf(err) != chiterr.NotFound {
		t.Fatalf("deleting twice: %v", err)
	}
}

// An assertion presented again is not verified again, but only while the
// key that verified it is still its issuer's: another signature over the
// same claims is checked on its own, and once the rule holds other keys
// the remembered assertion is refused. Its times are checked every time.
func TestARememberedAssertionNeedsItsKeyStill(t *testing.T) {
	f := newFixture(t)
	rule := f.k8sRule(t)
	f.create(t, rule)
	assertion := f.k8sToken(t, nil)
	for range 2 {
		if _, err := f.exchange(assertion); err != nil {
			t.Fatal(err)
		}
	}
	parts := strings.Split(assertion, ".")
	forged := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 64))
	_, err := f.exchange(forged)
	wantRefused(t, err, federation.CheckSignature, "signature")

	if err := f.service.DeleteRule(context.Background(), rule.Name); err != nil {
		t.Fatal(err)
	}
	rule.JWKS = federationtest.NewIssuer(t, federationtest.KubernetesIssuer).PublicJWKS(t)
	f.create(t, rule)
	_, err = f.exchange(assertion)
	var refused *federation.RefusedError
	if !errors.As(err, &refused) || refused.Check != federation.CheckSignature && refused.Check != federation.CheckKeyID {
		t.Fatalf("a remembered assertion after its key left the rule: %v", err)
	}

	// Back to the original key: remembered or not, an expired one is out.
	if err := f.service.DeleteRule(context.Background(), rule.Name); err != nil {
		t.Fatal(err)
	}
	f.create(t, f.k8sRule(t))
	if _, err := f.exchange(assertion); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(2 * time.Hour)
	_, err = f.exchange(assertion)
	wantRefused(t, err, federation.CheckExpiry, "expired")
}

// A platform's token lives minutes so that a workload holds no long-lived
// secret: the access token it is exchanged for carries no auth_time, so it
// cannot make the service account an API key (90 days by default) that
// would outlive the assertion, its rule and the workload.
func TestFederatedTokenCannotMakeAnAPIKey(t *testing.T) {
	f := newFixture(t)
	f.create(t, f.k8sRule(t))
	grant, err := f.exchange(f.k8sToken(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	claims, err := f.tokens.Check(context.Background(), grant.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if !claims.AuthTime.IsZero() {
		t.Fatalf("a federated token carries auth_time %s", claims.AuthTime)
	}
	_, _, err = f.tokens.CreateAPIKey(context.Background(), claims, tokens.NewAPIKey{Name: "persist"})
	if chiterr.KindOf(err) != chiterr.PermissionDenied {
		t.Fatalf("CreateAPIKey with a federated token: %v; want PermissionDenied", err)
	}
}

// A header naming critical extensions (RFC 7515 §4.1.11) asks the recipient
// to understand them or refuse the JWS; Chit understands none, so the
// issuer's signature on such an assertion is not taken, as Chit refuses its
// own tokens with crit.
func TestCriticalHeaderRefused(t *testing.T) {
	f := newFixture(t)
	f.create(t, f.k8sRule(t))
	claims := federationtest.Kubernetes(federationtest.KubernetesIssuer, "prod", "deployer", chitAudience, f.clock.Now())
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	for name, extra := range map[string]map[string]any{
		"crit names a parameter": {"crit": []string{"exp"}, "exp": 1},
		"crit empty":             {"crit": []string{}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.exchange(f.k8s.SignPayload(t, "", extra, payload))
			if chiterr.KindOf(err) != chiterr.InvalidArgument || !strings.Contains(err.Error(), "crit") {
				t.Fatalf("error %v; want invalid argument naming crit", err)
			}
		})
	}
	// The same payload without crit is exchanged: the refusal is the header's.
	if _, err := f.exchange(f.k8s.SignPayload(t, "", nil, payload)); err != nil {
		t.Fatal(err)
	}
}

// A claim named twice is refused, not read as its last value: the issuer
// or another relying party may read the first, so two readers of one
// signed token would see two workloads. Data after the payload's object
// is refused too.
func TestPayloadShapeRefused(t *testing.T) {
	f := newFixture(t)
	f.create(t, f.k8sRule(t))
	claims := federationtest.Kubernetes(federationtest.KubernetesIssuer, "prod", "deployer", chitAudience, f.clock.Now())
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	body := strings.TrimPrefix(string(payload), "{")
	for name, payload := range map[string]string{
		"sub twice, the trusted one last": `{"sub":"system:serviceaccount:prod:intruder",` + body,
		"iss twice":                       `{"iss":"https://other.example",` + body,
		"data after the object":           string(payload) + `{"sub":"x"}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.exchange(f.k8s.SignPayload(t, "", nil, []byte(payload)))
			if chiterr.KindOf(err) != chiterr.InvalidArgument {
				t.Fatalf("error %v; want invalid argument", err)
			}
		})
	}
	if _, err := f.exchange(f.k8s.SignPayload(t, "", nil, payload)); err != nil {
		t.Fatal(err)
	}
}

// Claims in forms an issuer does not send are refused, or read only as
// what they are: an aud nested or a number, dates that are strings, huge or
// negative, a pinned claim as an array, a numeric id written another way.
func TestOddClaimFormsRefused(t *testing.T) {
	f := newFixture(t)
	f.create(t, f.k8sRule(t))
	f.create(t, ghaRule())
	for _, tc := range []struct {
		name  string
		token func() string
		kind  chiterr.Kind
		check string
	}{
		{"aud nested in an array", func() string { return f.k8sToken(t, func(c map[string]any) { c["aud"] = []any{[]any{chitAudience}} }) }, chiterr.Unauthenticated, federation.CheckAudience},
		{"aud an object", func() string {
			return f.k8sToken(t, func(c map[string]any) { c["aud"] = map[string]any{chitAudience: true} })
		}, chiterr.Unauthenticated, federation.CheckAudience},
		{"exp a string", func() string {
			return f.k8sToken(t, func(c map[string]any) { c["exp"] = fmt.Sprint(f.clock.Now().Add(time.Minute).Unix()) })
		}, chiterr.InvalidArgument, ""},
		{"exp huge", func() string { return f.k8sToken(t, func(c map[string]any) { c["exp"] = json.Number("1e400") }) }, chiterr.InvalidArgument, ""},
		{"exp negative", func() string { return f.k8sToken(t, func(c map[string]any) { c["exp"] = -1 }) }, chiterr.InvalidArgument, ""},
		{"nbf a string", func() string { return f.k8sToken(t, func(c map[string]any) { c["nbf"] = "0" }) }, chiterr.InvalidArgument, ""},
		{"sub an array", func() string {
			return f.k8sToken(t, func(c map[string]any) { c["sub"] = []any{"system:serviceaccount:prod:deployer"} })
		}, chiterr.Unauthenticated, federation.CheckClaims},
		{"numeric id in exponent form", func() string {
			return f.ghaToken(t, func(c map[string]any) { c["repository_id"] = json.Number("1.23456e5") })
		}, chiterr.Unauthenticated, federation.CheckClaims},
		{"numeric id with a fraction", func() string {
			return f.ghaToken(t, func(c map[string]any) { c["repository_id"] = json.Number("123456.0") })
		}, chiterr.Unauthenticated, federation.CheckClaims},
		{"glob character in the token's value", func() string { return f.ghaToken(t, func(c map[string]any) { c["ref"] = "refs/*/main" }) }, chiterr.Unauthenticated, federation.CheckClaims},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.exchange(tc.token())
			if chiterr.KindOf(err) != tc.kind {
				t.Fatalf("error %v (%v), want %v", err, chiterr.KindOf(err), tc.kind)
			}
			if tc.check != "" {
				wantRefused(t, err, tc.check, "")
			}
		})
	}
	// A number as written where the rule names it is the same id.
	if _, err := f.exchange(f.ghaToken(t, func(c map[string]any) { c["repository_id"] = 123456 })); err != nil {
		t.Fatalf("a numeric repository_id: %v", err)
	}
}

// Keys named in the header (jwk, x5u, x5c) are never used: an attacker's
// key embedded in its own assertion verifies nothing.
func TestEmbeddedKeysIgnored(t *testing.T) {
	f := newFixture(t)
	f.create(t, f.k8sRule(t))
	attacker := federationtest.NewIssuer(t, federationtest.KubernetesIssuer)
	var embedded map[string]any
	if err := json.Unmarshal([]byte(attacker.PublicJWKS(t)), &embedded); err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(federationtest.Kubernetes(federationtest.KubernetesIssuer, "prod", "deployer", chitAudience, f.clock.Now()))
	if err != nil {
		t.Fatal(err)
	}
	jwkJSON, _ := json.Marshal(embedded["keys"].([]any)[0])
	key, err := jwk.ParseKey(jwkJSON)
	if err != nil {
		t.Fatal(err)
	}
	for name, extra := range map[string]map[string]any{
		"jwk": {"jwk": key},
		"x5u": {"x5u": attacker.Server.URL + "/cert.pem"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.exchange(attacker.SignPayload(t, "", extra, payload))
			wantRefused(t, err, federation.CheckSignature, "signature does not verify")
		})
	}
	if attacker.JWKSFetches.Load() != 0 {
		t.Fatal("keys were fetched from the attacker")
	}
}

// Deleting a service account deletes its rules; a service created again
// under the name is another account, which the old rule, still held in
// memory until the next reread, does not sign in.
func TestRuleOfADeletedServiceDoesNotSignInItsSuccessor(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.create(t, f.k8sRule(t))
	if _, err := f.exchange(f.k8sToken(t, nil)); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	if err := f.service.Directory.DeleteServiceAccount(ctx, "deployer"); err != nil {
		t.Fatal(err)
	}
	_, err := f.exchange(f.k8sToken(t, nil))
	wantRefused(t, err, federation.CheckService, "no longer exists")
	f.clock.Advance(time.Second)
	if _, err := f.service.Directory.CreateServiceAccount(ctx, "deployer", storage.Grants{AllowedScopes: []string{"admin:all"}}); err != nil {
		t.Fatal(err)
	}
	_, err = f.exchange(f.k8sToken(t, nil))
	wantRefused(t, err, federation.CheckService, "no longer exists")
	f.clock.Advance(federation.RulesRefresh)
	_, err = f.exchange(f.k8sToken(t, nil))
	wantRefused(t, err, federation.CheckIssuer, "not trusted")
}
