package tokens_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/passwords"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/sqlite"
	"github.com/chit-auth/chit/internal/storage/sqlite/sqlitetest"
	"github.com/chit-auth/chit/internal/tokens"
)

// clock is a settable time source shared by the fixture and the test.
type clock struct{ nanos atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.nanos.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.nanos.Add(int64(d)) }

// What the fixture's principals may obtain.
var (
	aliceGrants   = storage.Grants{AllowedScopes: []string{"read", "write"}}
	billingGrants = storage.Grants{AllowedScopes: []string{"inventory:read"}, AllowedAudiences: []string{"inventory"}}
	apiClient     = accounts.FirstPartyClient(accounts.APIClientID)
)

type fixture struct {
	service *tokens.Service
	clock   *clock
	secret  string
	cfg     tokens.Config
	keys    *keys.Set
	// operator changes principals as chitd's commands do: another
	// directory on the same store, with no cache of its own.
	operator *accounts.Directory
	store    storage.Store
}

// fixtureOptions adjust the server's directory: a store wrapped to act in
// the middle of a sign-in, and a service-account cache.
type fixtureOptions struct {
	wrapStore       func(storage.Store) storage.Store
	serviceCacheTTL time.Duration
}

func newFixture(t testing.TB, options ...func(*fixtureOptions)) *fixture {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlitetest.Dir(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	c := &clock{}
	c.nanos.Store(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).UnixNano())
	hasher, err := passwords.NewHasher(passwords.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}, 4, time.Second, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var opts fixtureOptions
	for _, option := range options {
		option(&opts)
	}
	operator := accounts.NewDirectory(accounts.Config{ServerAudience: "chit"}, accounts.Dependencies{Store: store, Hasher: hasher, Now: c.Now, Random: rand.Reader})
	directoryStore := storage.Store(store)
	if opts.wrapStore != nil {
		directoryStore = opts.wrapStore(store)
	}
	directory := accounts.NewDirectory(accounts.Config{ServerAudience: "chit", ServiceAccountCacheTTL: opts.serviceCacheTTL}, accounts.Dependencies{Store: directoryStore, Hasher: hasher, Now: c.Now, Random: rand.Reader})
	if err := directory.CreateUser(ctx, "alice", "wonderland", accounts.RoleUser, aliceGrants); err != nil {
		t.Fatal(err)
	}
	secret, err := directory.CreateServiceAccount(ctx, "billing", billingGrants)
	if err != nil {
		t.Fatal(err)
	}
	signingKeys, err := keys.Load(ctx, store, jwa.ES256, &keys.Sealer{}, c.Now())
	if err != nil {
		t.Fatal(err)
	}
	refreshKeys, err := keys.LoadRefreshTokenKeys(ctx, store, &keys.Sealer{}, c.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg := tokens.Config{Issuer: "https://chit.test", Audience: "chit", AccessTokenTTL: 15 * time.Minute, RefreshTokenTTL: 24 * time.Hour, ClockSkew: 30 * time.Second, RefreshGracePeriod: 10 * time.Second, RefreshIdleTimeout: 12 * time.Hour, RevocationCacheTTL: 3 * time.Second}
	return &fixture{service: tokens.NewService(cfg, tokens.Dependencies{Keys: signingKeys, RefreshKeys: refreshKeys, Store: store, Directory: directory, Now: c.Now, Random: rand.Reader}), clock: c, secret: secret, cfg: cfg, keys: signingKeys, operator: operator, store: store}
}

func wantKind(t *testing.T, err error, kind chiterr.Kind) {
	t.Helper()
	if chiterr.KindOf(err) != kind || err == nil {
		t.Fatalf("got error %v, want kind %v", err, kind)
	}
}

func TestPasswordGrantAndCheck(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	grant, err := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland", Scope: "read write read"})
	if err != nil {
		t.Fatal(err)
	}
	if grant.RefreshToken == "" || !strings.HasPrefix(grant.RefreshToken, tokens.RefreshTokenPrefix) {
		t.Fatalf("refresh token %q", grant.RefreshToken)
	}
	if raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(grant.RefreshToken, tokens.RefreshTokenPrefix)); len(raw) < 32 {
		t.Fatalf("refresh token carries %d random bytes, want at least 32", len(raw))
	}
	if grant.ExpiresIn != 15*time.Minute || grant.Scope != "read write" {
		t.Fatalf("grant = %+v", grant)
	}
	claims, err := f.service.Check(ctx, grant.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	now := f.clock.Now()
	if claims.Subject != "alice" || claims.Role != accounts.RoleUser || strings.Join(claims.Scopes, " ") != "read write" ||
		claims.Issuer != "https://chit.test" || len(claims.Audience) != 1 || claims.Audience[0] != "chit" ||
		claims.ID == "" || !claims.IssuedAt.Equal(now) || !claims.ExpiresAt.Equal(now.Add(15*time.Minute)) {
		t.Fatalf("claims = %+v", claims)
	}
}

func TestClientCredentialsGrant(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	grant, err := issueForClient(ctx, f.service, "billing", f.secret, "")
	if err != nil {
		t.Fatal(err)
	}
	if grant.RefreshToken != "" {
		t.Fatal("client credentials must not get a refresh token")
	}
	claims, err := f.service.Check(ctx, grant.AccessToken)
	if err != nil || claims.Subject != "service:billing" || claims.ClientID != "billing" || claims.Role != accounts.RoleService {
		t.Fatalf("claims = %+v, %v", claims, err)
	}
	_, err = issueForClient(ctx, f.service, "billing", "chit_cs_wrong", "")
	wantKind(t, err, chiterr.Unauthenticated)
}

func TestRefreshRotates(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first, err := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland", Scope: "read"})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	second, err := f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: first.RefreshToken})
	if err != nil {
		t.Fatal(err)
	}
	if second.RefreshToken == first.RefreshToken || second.Scope != "read" {
		t.Fatalf("second grant = %+v", second)
	}
	claims, err := f.service.Check(ctx, second.AccessToken)
	if err != nil || claims.Subject != "alice" || claims.FamilyID == "" {
		t.Fatalf("refreshed access token: %+v, %v", claims, err)
	}
	third, err := f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: second.RefreshToken})
	if err != nil || third.RefreshToken == second.RefreshToken {
		t.Fatalf("the successor must rotate in turn: %+v, %v", third, err)
	}
}

func TestGracePeriodAnswersTheSameSuccessor(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first, err := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland"})
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: first.RefreshToken})
	if err != nil {
		t.Fatal(err)
	}
	// The answer was lost; the client retries with the old token.
	f.clock.Advance(f.cfg.RefreshGracePeriod)
	retry, err := f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: first.RefreshToken})
	if err != nil || retry.RefreshToken != second.RefreshToken {
		t.Fatalf("retry within the grace period = %+v, %v; want the same successor", retry, err)
	}
	if _, err := f.service.Check(ctx, retry.AccessToken); err != nil {
		t.Fatalf("retry's access token: %v", err)
	}
	if _, err := f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: second.RefreshToken}); err != nil {
		t.Fatalf("the successor must still work: %v", err)
	}
}

func TestReuseRevokesTheFamily(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first, err := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland"})
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: first.RefreshToken})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(f.cfg.RefreshGracePeriod + time.Second)
	_, err = f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: first.RefreshToken})
	wantKind(t, err, chiterr.Unauthenticated)
	if !strings.Contains(err.Error(), "already been used") {
		t.Fatalf("reuse message %q", err)
	}
	_, err = f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: second.RefreshToken})
	wantKind(t, err, chiterr.Unauthenticated)
	_, err = f.service.Check(ctx, second.AccessToken)
	wantKind(t, err, chiterr.Unauthenticated)
	// Another login of the same person is untouched.
	if _, err := f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: other.RefreshToken}); err != nil {
		t.Fatalf("another family was revoked: %v", err)
	}
}

func TestRefreshLifetimes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	grant, err := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland"})
	if err != nil {
		t.Fatal(err)
	}
	// Used every 11 hours, the login lives until its absolute end.
	for elapsed := time.Duration(0); elapsed+11*time.Hour < f.cfg.RefreshTokenTTL; elapsed += 11 * time.Hour {
		f.clock.Advance(11 * time.Hour)
		if grant, err = f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: grant.RefreshToken}); err != nil {
			t.Fatalf("refresh after %v: %v", elapsed+11*time.Hour, err)
		}
	}
	f.clock.Advance(11 * time.Hour)
	_, err = f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: grant.RefreshToken})
	wantKind(t, err, chiterr.Unauthenticated)
	if !strings.Contains(err.Error(), "expired") {
		t.Fatalf("message %q, want it to say expired (absolute lifetime)", err)
	}

	// Left unused past the idle timeout, a login ends early.
	idle, err := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland"})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(f.cfg.RefreshIdleTimeout)
	_, err = f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: idle.RefreshToken})
	wantKind(t, err, chiterr.Unauthenticated)
}

// Fifty clients refreshing one token at once: one rotation happens and every
// one of them gets its successor (none is punished with a revoked session).
func TestConcurrentRefreshRotatesOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	grant, err := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland"})
	if err != nil {
		t.Fatal(err)
	}
	const clients = 50
	results := make([]string, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next, err := f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: grant.RefreshToken})
			results[i], errs[i] = next.RefreshToken, err
		}()
	}
	wg.Wait()
	for i := range clients {
		if errs[i] != nil || results[i] != results[0] {
			t.Fatalf("client %d: %q, %v; want the one successor %q", i, results[i], errs[i], results[0])
		}
	}
	if _, err := f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: results[0]}); err != nil {
		t.Fatalf("the successor does not work: %v", err)
	}
}

func TestRevoke(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	grant, err := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.service.Check(ctx, grant.AccessToken); err != nil {
		t.Fatal(err)
	}
	if err := f.service.Revoke(ctx, apiClient, grant.RefreshToken); err != nil {
		t.Fatal(err)
	}
	_, err = f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: grant.RefreshToken})
	wantKind(t, err, chiterr.Unauthenticated)
	// This server forgets its cached answer at once.
	_, err = f.service.Check(ctx, grant.AccessToken)
	wantKind(t, err, chiterr.Unauthenticated)
	for _, token := range []string{grant.RefreshToken, tokens.RefreshTokenPrefix + "unknown", "garbage", grant.AccessToken} {
		if err := f.service.Revoke(ctx, apiClient, token); err != nil {
			t.Errorf("Revoke(%.20q) = %v; RFC 7009 says it succeeds", token, err)
		}
	}
	wantKind(t, f.service.Revoke(ctx, apiClient, ""), chiterr.InvalidArgument)
	// A token over the documented limit is a bad request, not one more
	// unknown token: RFC 7009's silence is for tokens, not for any input.
	if err := f.service.Revoke(ctx, apiClient, strings.Repeat("a", tokens.MaxTokenLength)); err != nil {
		t.Errorf("Revoke of a token at the limit = %v", err)
	}
	err = f.service.Revoke(ctx, apiClient, strings.Repeat("a", tokens.MaxTokenLength+1))
	if wantKind(t, err, chiterr.InvalidArgument); !strings.Contains(err.Error(), "token is longer than 8192 bytes") {
		t.Errorf("Revoke of a token over the limit: %v, want a message naming token and the limit", err)
	}

	// Revoking by access token ends its login too.
	second, _ := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland"})
	if err := f.service.Revoke(ctx, apiClient, second.AccessToken); err != nil {
		t.Fatal(err)
	}
	_, err = f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: second.RefreshToken})
	wantKind(t, err, chiterr.Unauthenticated)
}

// Introspection requires a token and holds it to the same limit; an
// unknown token within it is inactive, as RFC 7662 says.
func TestIntrospectRefusesTokensOverTheLimit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	service := accounts.Client{ID: "reports", Service: true, Confidential: true}
	if _, err := f.service.Introspect(ctx, service, ""); chiterr.KindOf(err) != chiterr.InvalidArgument || !strings.Contains(err.Error(), "token is required") {
		t.Errorf("introspecting no token: %v, want INVALID_ARGUMENT naming token (RFC 7662 §2.1: it is required)", err)
	}
	for _, prefix := range []string{"", tokens.RefreshTokenPrefix} {
		answer, err := f.service.Introspect(ctx, service, prefix+strings.Repeat("a", tokens.MaxTokenLength-len(prefix)))
		if err != nil || answer.Active {
			t.Errorf("introspecting an unknown %q token at the limit: %+v, %v; want inactive", prefix, answer, err)
		}
		_, err = f.service.Introspect(ctx, service, prefix+strings.Repeat("a", tokens.MaxTokenLength+1-len(prefix)))
		if chiterr.KindOf(err) != chiterr.InvalidArgument || !strings.Contains(err.Error(), "token is longer than 8192 bytes") {
			t.Errorf("introspecting a %q token over the limit: %v, want INVALID_ARGUMENT naming token", prefix, err)
		}
	}
}

func TestRevokeSessions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a, _ := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland"})
	b, _ := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland"})
	alice, err := f.service.Check(ctx, a.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	wantKind(t, f.service.RevokeSessions(ctx, alice, "bob"), chiterr.PermissionDenied)
	if err := f.service.RevokeSessions(ctx, alice, ""); err != nil {
		t.Fatal(err)
	}
	for _, grant := range []tokens.Grant{a, b} {
		_, err := f.service.Check(ctx, grant.AccessToken)
		wantKind(t, err, chiterr.Unauthenticated)
		_, err = f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: grant.RefreshToken})
		wantKind(t, err, chiterr.Unauthenticated)
	}
	// A login after the revocation works.
	f.clock.Advance(time.Second)
	fresh, _ := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland"})
	if _, err := f.service.Check(ctx, fresh.AccessToken); err != nil {
		t.Fatalf("a login after the revocation: %v", err)
	}
	admin := tokens.Claims{Subject: "root", Role: accounts.RoleAdmin}
	if err := f.service.RevokeSessions(ctx, admin, "alice"); err != nil {
		t.Fatalf("an admin revoking another subject: %v", err)
	}
}

func TestRefreshRejects(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient})
	wantKind(t, err, chiterr.InvalidArgument)
	for _, token := range []string{"garbage", tokens.RefreshTokenPrefix + "unknown"} {
		_, err := f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: token})
		wantKind(t, err, chiterr.Unauthenticated)
	}
	// Longer than any token can be: a bad request naming the field.
	_, err = f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: strings.Repeat("a", tokens.MaxTokenLength+1)})
	wantKind(t, err, chiterr.InvalidArgument)
	if !strings.Contains(err.Error(), "refresh_token") {
		t.Fatalf("%v does not name the field", err)
	}
}

func TestCheckRejects(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	grant, err := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland"})
	if err != nil {
		t.Fatal(err)
	}
	foreignKey := newForeignKey(t)
	now := f.clock.Now()
	sign := func(t *testing.T, build func(*jwt.Builder) *jwt.Builder) string {
		t.Helper()
		base := jwt.NewBuilder().Issuer(f.cfg.Issuer).Subject("alice").Audience([]string{f.cfg.Audience}).
			IssuedAt(now).Expiration(now.Add(time.Minute)).Claim("role", "ADMIN")
		token, err := build(base).Build()
		if err != nil {
			t.Fatal(err)
		}
		signed, err := jwt.Sign(token, jwt.WithKey(jwa.ES256, foreignKey))
		if err != nil {
			t.Fatal(err)
		}
		if signed, err = keys.NormalizeLowS(signed, jwa.ES256); err != nil {
			t.Fatal(err)
		}
		return string(signed)
	}
	parts := strings.Split(grant.AccessToken, ".")
	for _, tc := range []struct{ name, token string }{
		{"empty", ""},
		{"not a JWT", "not-a-jwt"},
		{"truncated", parts[0] + "." + parts[1]},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"root","role":"ADMIN"}`)) + "." + parts[2]},
		{"signed by another key", sign(t, func(b *jwt.Builder) *jwt.Builder { return b })},
		{"alg none", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + "."},
		{"oversized", strings.Repeat("a", tokens.MaxTokenLength+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.service.Check(ctx, tc.token)
			wantKind(t, err, chiterr.Unauthenticated)
		})
	}
}

func TestCheckRefusesExpiredToken(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	grant, err := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland"})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(f.cfg.AccessTokenTTL + f.cfg.ClockSkew + time.Second)
	_, err = f.service.Check(ctx, grant.AccessToken)
	wantKind(t, err, chiterr.Unauthenticated)
	if !strings.Contains(err.Error(), "expired") {
		t.Fatalf("message %q, want it to say expired", err)
	}
}

// Tokens signed with the server's own key but with claims it would never
// issue must still be refused.
func TestCheckRefusesForeignClaims(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	valid := func() *jwt.Builder {
		return jwt.NewBuilder().Issuer(f.cfg.Issuer).Subject("alice").Audience([]string{f.cfg.Audience}).
			IssuedAt(now).Expiration(now.Add(time.Minute)).Claim("role", "USER")
	}
	for _, tc := range []struct {
		name  string
		build *jwt.Builder
	}{
		{"wrong issuer", valid().Issuer("https://evil.example")},
		{"wrong audience", valid().Audience([]string{"someone-else"})},
		{"not yet valid", valid().NotBefore(now.Add(time.Hour))},
		{"no expiry", jwt.NewBuilder().Issuer(f.cfg.Issuer).Subject("alice").Audience([]string{f.cfg.Audience}).Claim("role", "USER")},
		{"no role", jwt.NewBuilder().Issuer(f.cfg.Issuer).Subject("alice").Audience([]string{f.cfg.Audience}).Expiration(now.Add(time.Minute))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token, err := tc.build.Build()
			if err != nil {
				t.Fatal(err)
			}
			signed, err := f.keys.Sign(token)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.service.Check(context.Background(), signed)
			wantKind(t, err, chiterr.Unauthenticated)
		})
	}
	control, _ := valid().Build()
	signed, _ := f.keys.Sign(control)
	if _, err := f.service.Check(context.Background(), signed); err != nil {
		t.Fatalf("the control token must pass: %v", err)
	}
}

func TestScopeValidation(t *testing.T) {
	f := newFixture(t)
	_, err := f.service.IssueForPassword(context.Background(), tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland", Scope: "read \"write\""})
	wantKind(t, err, chiterr.InvalidArgument)
	_, err = f.service.IssueForPassword(context.Background(), tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland", Scope: strings.Repeat("a", 1025)})
	wantKind(t, err, chiterr.InvalidArgument)
}

func newForeignKey(t *testing.T) jwk.Key {
	t.Helper()
	record, err := keys.Generate(jwa.ES256, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.ParseKey(record.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// A token checked again is answered from what its first check verified:
// the key is looked up (and the signature verified) once. A token that only
// looks like it, or a stricter check, still gets the full verification.
func TestCheckVerifiesATokenOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	providerKey := newForeignKey(t)
	publicKey, err := providerKey.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	var lookups atomic.Int32
	f.service.ProviderKeys = func(_ context.Context, kid string) (jwk.Key, bool) {
		if kid != providerKey.KeyID() {
			return nil, false
		}
		lookups.Add(1)
		return publicKey, true
	}
	now := f.clock.Now()
	token, err := jwt.NewBuilder().Issuer(f.cfg.Issuer).Subject("provider-7").Audience([]string{f.cfg.Audience}).
		IssuedAt(now).Expiration(now.Add(time.Minute)).Claim("role", "PROVIDER").Build()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := jwt.Sign(token, jwt.WithKey(jwa.ES256, providerKey))
	if err != nil {
		t.Fatal(err)
	}
	if signed, err = keys.NormalizeLowS(signed, jwa.ES256); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		claims, err := f.service.Check(ctx, string(signed))
		if err != nil {
			t.Fatal(err)
		}
		if claims.Subject != "provider-7" {
			t.Fatalf("subject %q, want provider-7", claims.Subject)
		}
	}
	if got := lookups.Load(); got != 1 {
		t.Fatalf("three checks of one token looked its key up %d times, want 1", got)
	}

	parts := strings.Split(string(signed), ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"root","role":"ADMIN"}`)) + "." + parts[2]
	_, err = f.service.Check(ctx, tampered)
	wantKind(t, err, chiterr.Unauthenticated)
	// Provider tokens never authorize calls to Chit itself, cached or not.
	_, err = f.service.Authenticate(ctx, string(signed))
	wantKind(t, err, chiterr.Unauthenticated)

	// The cached verification lasts only as long as its key: once the
	// provider's key is gone (deleted, renewed), the token is refused
	// within the revocation propagation time.
	f.service.ProviderKeys = func(context.Context, string) (jwk.Key, bool) { return nil, false }
	if _, err := f.service.Check(ctx, string(signed)); err != nil {
		t.Fatalf("within the propagation time the key is still trusted: %v", err)
	}
	f.clock.Advance(f.cfg.RevocationCacheTTL)
	_, err = f.service.Check(ctx, string(signed))
	wantKind(t, err, chiterr.Unauthenticated)
}

// A revocation refuses the tokens issued before it and none issued after
// it, also within the same second.
func TestRevocationWithinTheSameSecond(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.clock.Advance(300 * time.Millisecond)
	before, err := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland"})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(100 * time.Millisecond)
	caller, err := f.service.Check(ctx, before.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.service.RevokeSessions(ctx, caller, ""); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(100 * time.Millisecond)
	after, err := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland"})
	if err != nil {
		t.Fatal(err)
	}
	if f.clock.Now().Truncate(time.Second) != f.clock.Now().Add(-200*time.Millisecond).Truncate(time.Second) {
		t.Fatal("the test needs both tokens in one second")
	}
	_, err = f.service.Check(ctx, before.AccessToken)
	wantKind(t, err, chiterr.Unauthenticated)
	if _, err := f.service.Check(ctx, after.AccessToken); err != nil {
		t.Fatalf("a token issued after the revocation, in the same second: %v", err)
	}
}

// A token signed by a key another replica activated moments ago (a forced
// rotation) is accepted here at once: Check reads the keys again for a kid
// it does not know rather than refusing until its next periodic reload.
func TestCheckAcceptsAKeyActivatedElsewhere(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	elsewhere, err := keys.Load(ctx, f.store, jwa.ES256, &keys.Sealer{}, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := keys.Rotate(ctx, f.store, jwa.ES256, &keys.Sealer{}, f.clock.Now(), time.Minute, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := elsewhere.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	other := tokens.NewService(f.cfg, tokens.Dependencies{Keys: elsewhere, RefreshKeys: f.service.RefreshKeys, Store: f.store,
		Directory: f.service.Directory, Now: f.clock.Now, Random: rand.Reader})
	grant, err := issueForClient(ctx, other, "billing", f.secret, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.service.Check(ctx, grant.AccessToken); err != nil {
		t.Fatalf("a token of a key activated on another replica: %v", err)
	}
}

// issueForClient signs the service account id in with secret, as the
// client-credentials grant does: authenticate, then issue.
func issueForClient(ctx context.Context, service *tokens.Service, id, secret, scope string) (tokens.Grant, error) {
	principal, err := service.Directory.AuthenticateService(ctx, id, secret)
	if err != nil {
		return tokens.Grant{}, err
	}
	return service.IssueForClient(ctx, tokens.ClientRequest{Service: principal, Scope: scope})
}
