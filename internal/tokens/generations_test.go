package tokens

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/secrets"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/postgres"
	"github.com/chit-auth/chit/internal/storage/postgres/postgrestest"
	"github.com/chit-auth/chit/internal/storage/sqlite"
	"github.com/chit-auth/chit/internal/storage/sqlite/sqlitetest"
)

// These tests look inside refresh tokens, so they live in the package; the
// fixture is the external tests' (tokens_test.go) rebuilt here.

type generationsFixture struct {
	service *Service
	store   storage.Store
	now     time.Time
}

// forEachStore runs test on a fixture of each store.
func forEachStore(t *testing.T, test func(t *testing.T, f *generationsFixture)) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { test(t, newGenerationsFixtureOn(t, backend)) })
	}
}

func newGenerationsFixture(t *testing.T) *generationsFixture {
	return newGenerationsFixtureOn(t, "sqlite")
}

func newGenerationsFixtureOn(t *testing.T, backend string) *generationsFixture {
	t.Helper()
	f := &generationsFixture{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	ctx := context.Background()
	var store storage.Store
	var err error
	if backend == "postgres" {
		store, err = postgres.Open(ctx, postgrestest.FreshDSN(t))
	} else {
		store, err = sqlite.Open(ctx, sqlitetest.Dir(t))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f.store = store
	signing, err := keys.Load(ctx, store, "ES256", &keys.Sealer{}, f.now)
	if err != nil {
		t.Fatal(err)
	}
	refreshKeys, err := keys.LoadRefreshTokenKeys(ctx, store, &keys.Sealer{}, f.now)
	if err != nil {
		t.Fatal(err)
	}
	directory := accounts.NewDirectory(accounts.Config{}, accounts.Dependencies{Store: store, Now: func() time.Time { return f.now }, Random: rand.Reader})
	if err := store.CreateUser(ctx, storage.User{Name: "alice", PasswordHash: "x", Role: "USER", CreatedAt: f.now.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	f.service = NewService(Config{
		Issuer: "https://chit.test", Audience: "chit", AccessTokenTTL: 15 * time.Minute, RefreshTokenTTL: 30 * 24 * time.Hour,
		ClockSkew: 30 * time.Second, RefreshGracePeriod: 10 * time.Second, RefreshIdleTimeout: 7 * 24 * time.Hour, RevocationCacheTTL: time.Second,
	}, Dependencies{Keys: signing, RefreshKeys: refreshKeys, Store: store, Directory: directory, Now: func() time.Time { return f.now }, Random: rand.Reader})
	return f
}

var firstParty = accounts.FirstPartyClient(accounts.APIClientID)

// login signs alice in and returns her first refresh token.
func (f *generationsFixture) login(t *testing.T) string {
	t.Helper()
	principal, err := f.service.Directory.LookupUser(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	familyID, _ := f.service.NewFamilyID()
	grant, err := f.service.IssueForLogin(context.Background(), Login{
		Grantee: accounts.Grantee{Principal: principal, Client: firstParty}, FamilyID: familyID, WithRefreshToken: true, Kind: "password",
	})
	if err != nil {
		t.Fatal(err)
	}
	return grant.RefreshToken
}

// rotate refreshes token n times, past the grace period each time, and
// returns every token of the chain (token first).
func (f *generationsFixture) rotate(t *testing.T, token string, n int) []string {
	t.Helper()
	chain := []string{token}
	for range n {
		f.now = f.now.Add(11 * time.Second)
		grant, err := f.service.Refresh(context.Background(), RefreshRequest{Client: firstParty, RefreshToken: chain[len(chain)-1]})
		if err != nil {
			t.Fatalf("rotation %d: %v", len(chain), err)
		}
		chain = append(chain, grant.RefreshToken)
	}
	return chain
}

// tokenFromBefore stores a refresh token as they were before one record per
// login (a random secret, one record of generation 0) and returns it.
func (f *generationsFixture) tokenFromBefore(t *testing.T, familyID string) string {
	t.Helper()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	token := RefreshTokenPrefix + base64.RawURLEncoding.EncodeToString(secret)
	if err := f.store.CreateRefreshToken(context.Background(), storage.RefreshToken{
		Hash: secrets.Digest(token), FamilyID: familyID, Subject: "alice", Role: "USER", Scope: "openid",
		ClientID: accounts.APIClientID, IssuedAt: f.now, ExpiresAt: f.now.Add(time.Hour), FamilyExpiresAt: f.now.Add(24 * time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	return token
}

func (f *generationsFixture) refresh(token string) error {
	_, err := f.service.Refresh(context.Background(), RefreshRequest{Client: firstParty, RefreshToken: token})
	return err
}

func wantReuse(t *testing.T, err error) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "already been used") {
		t.Fatalf("got %v, want reuse detected", err)
	}
}

func wantInvalid(t *testing.T, err error) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "refresh token is invalid") {
		t.Fatalf("got %v, want refresh token is invalid", err)
	}
}

// The first token of a login is recognised as reused after 1,000
// rotations, when the store keeps only the last two; it ends the login.
// A thousand shows what ten thousand would: the generation is a fixed
// 64-bit field of the token and the store holds two records whatever the
// count (its size after 10,000 rotations is measured by make bench-growth),
// and each rotation costs 3 ms under the race detector.
func TestReuseOfTheFirstTokenAfter1000Rotations(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("1,000 rotations")
	}
	f := newGenerationsFixture(t)
	chain := f.rotate(t, f.login(t), 1_000)
	wantReuse(t, f.refresh(chain[0]))
	wantInvalid(t, f.refresh(chain[len(chain)-1]))
}

func TestReuseOfAMiddleGenerationEndsTheLogin(t *testing.T) {
	forEachStore(t, testReuseOfAMiddleGenerationEndsTheLogin)
}

func testReuseOfAMiddleGenerationEndsTheLogin(t *testing.T, f *generationsFixture) {
	other := f.login(t)
	chain := f.rotate(t, f.login(t), 20)
	wantReuse(t, f.refresh(chain[7]))
	wantInvalid(t, f.refresh(chain[20]))
	// Another login of the same person is untouched.
	if err := f.refresh(other); err != nil {
		t.Fatalf("another login: %v", err)
	}
}

// A token altered in any part (its generation, its login, its secret, its
// MAC) is refused and ends nothing, even when it names a live login and an
// earlier generation: only the server's MAC key makes a token that counts.
func TestAlteredTokensAreRefusedAndEndNothing(t *testing.T) {
	forEachStore(t, testAlteredTokensAreRefusedAndEndNothing)
}

func testAlteredTokensAreRefusedAndEndNothing(t *testing.T, f *generationsFixture) {
	chain := f.rotate(t, f.login(t), 5)
	victim := f.rotate(t, f.login(t), 1)
	genuine, ok := parseRefreshToken(chain[1])
	if !ok {
		t.Fatalf("%q does not parse", chain[1])
	}
	victimToken, _ := parseRefreshToken(victim[1])
	variants := map[string]refreshToken{}
	earlier := genuine
	earlier.generation = 0 // an earlier generation than any kept
	variants["generation"] = earlier
	otherLogin := genuine
	otherLogin.familyID = victimToken.familyID
	variants["login id"] = otherLogin
	secret := genuine
	secret.secret = append([]byte{}, genuine.secret...)
	secret.secret[0] ^= 1
	variants["secret"] = secret
	tag := genuine
	tag.tag = append([]byte{}, genuine.tag...)
	tag.tag[0] ^= 1
	variants["MAC"] = tag
	key := genuine
	key.keyID++
	variants["key id"] = key
	for name, variant := range variants {
		if err := f.refresh(variant.encode()); err == nil || !strings.Contains(err.Error(), "refresh token is invalid") {
			t.Fatalf("a token with another %s: %v, want refresh token is invalid", name, err)
		}
	}
	// Nothing was ended: both logins refresh.
	if err := f.refresh(chain[5]); err != nil {
		t.Fatalf("the login named by altered tokens: %v", err)
	}
	if err := f.refresh(victim[1]); err != nil {
		t.Fatalf("the other login: %v", err)
	}
}

// With the MAC key but not the current token's secret (a leaked key, even
// with a copy of the database), no token for the current generation works:
// the current token is accepted only by its digest.
func TestMACKeyAloneDoesNotMakeTheCurrentToken(t *testing.T) {
	forEachStore(t, testMACKeyAloneDoesNotMakeTheCurrentToken)
}

func testMACKeyAloneDoesNotMakeTheCurrentToken(t *testing.T, f *generationsFixture) {
	chain := f.rotate(t, f.login(t), 3)
	current, _ := parseRefreshToken(chain[3])
	login, err := f.store.GetRefreshLogin(context.Background(), current.familyID)
	if err != nil {
		t.Fatal(err)
	}
	forged := refreshToken{generation: current.generation, familyID: current.familyID, secret: make([]byte, refreshSecretBytes)}
	forged.keyID, forged.tag = f.service.RefreshKeys.Tag(forged.macInput(login.LoginSalt)...)
	wantInvalid(t, f.refresh(forged.encode()))
	next := forged
	next.generation++
	next.keyID, next.tag = f.service.RefreshKeys.Tag(next.macInput(login.LoginSalt)...)
	wantInvalid(t, f.refresh(next.encode()))
	if err := f.refresh(chain[3]); err != nil {
		t.Fatalf("the genuine current token: %v", err)
	}
}

// A new MAC key signs nobody out, and tokens made under the old one are
// still recognised as reuse.
func TestNewMACKeyKeepsLoginsAndReuseDetection(t *testing.T) {
	forEachStore(t, testNewMACKeyKeepsLoginsAndReuseDetection)
}

func testNewMACKeyKeepsLoginsAndReuseDetection(t *testing.T, f *generationsFixture) {
	chain := f.rotate(t, f.login(t), 3)
	if err := keys.AddRefreshTokenKey(context.Background(), f.store, &keys.Sealer{}, f.now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := f.service.RefreshKeys.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	chain = append(chain, f.rotate(t, chain[3], 3)[1:]...)
	before, _ := parseRefreshToken(chain[1])
	after, _ := parseRefreshToken(chain[5])
	if before.keyID == after.keyID {
		t.Fatal("the new key does not make the new MACs")
	}
	wantReuse(t, f.refresh(chain[1]))
}

// Refresh tokens stored before logins kept one record (a random secret, no
// MAC) keep working: the first refresh moves the login to its one record,
// and the old token presented again after the grace period is reuse.
func TestTokensFromBeforeKeepWorking(t *testing.T) { forEachStore(t, testTokensFromBeforeKeepWorking) }

func testTokensFromBeforeKeepWorking(t *testing.T, f *generationsFixture) {
	old := f.tokenFromBefore(t, "legacy-family")
	chain := f.rotate(t, old, 3)
	if parsed, ok := parseRefreshToken(chain[1]); !ok || parsed.generation != 1 || parsed.familyID != "legacy-family" {
		t.Fatalf("the successor of a token from before = %+v, %v", parsed, ok)
	}
	wantReuse(t, f.refresh(chain[1]))
}

// Revoking with an earlier token, no longer stored, still ends its login.
func TestRevokeWithAnEarlierTokenEndsTheLogin(t *testing.T) {
	forEachStore(t, testRevokeWithAnEarlierTokenEndsTheLogin)
}

func testRevokeWithAnEarlierTokenEndsTheLogin(t *testing.T, f *generationsFixture) {
	chain := f.rotate(t, f.login(t), 3)
	if err := f.service.Revoke(context.Background(), firstParty, chain[0]); err != nil {
		t.Fatal(err)
	}
	wantInvalid(t, f.refresh(chain[3]))
}

// A token naming a login id no login can have (not base64url: a NUL byte,
// bytes that are not UTF-8) is refused before any lookup; PostgreSQL
// cannot even look such an id up.
func TestOddLoginIDsAreRefusedBeforeTheStore(t *testing.T) {
	f := newGenerationsFixture(t)
	chain := f.rotate(t, f.login(t), 2)
	genuine, _ := parseRefreshToken(chain[0])
	for _, id := range []string{"a\x00b", "\xff\xfe", ""} {
		odd := genuine
		odd.familyID = id
		if _, ok := parseRefreshToken(odd.encode()); ok {
			t.Fatalf("a login id %q parsed", id)
		}
		wantInvalid(t, f.refresh(odd.encode()))
	}
	// Line breaks inside the token are another encoding of it: refused.
	withBreak := chain[0][:40] + "\n" + chain[0][40:]
	if _, ok := parseRefreshToken(withBreak); ok {
		t.Fatal("a token with a line break parsed")
	}
}

// The token that was current when logins moved to one record carries no
// MAC; it stays recognised as reuse however often the login rotates on.
func TestTheTokenFromBeforeStaysKnownAsRotated(t *testing.T) {
	forEachStore(t, testTheTokenFromBeforeStaysKnownAsRotated)
}

func testTheTokenFromBeforeStaysKnownAsRotated(t *testing.T, f *generationsFixture) {
	old := f.tokenFromBefore(t, "legacy-family-2")
	chain := f.rotate(t, old, 3)
	wantReuse(t, f.refresh(old))
	wantInvalid(t, f.refresh(chain[3]))
}

// An API key whose id PostgreSQL cannot hold as text (a NUL, invalid UTF-8:
// a form-encoded /oauth2/token request carries any bytes) is an invalid
// key on both stores, not an internal error.
func TestAPIKeysWithOddIDsAreInvalid(t *testing.T) {
	forEachStore(t, func(t *testing.T, f *generationsFixture) {
		secret := strings.Repeat("s", apiKeyLength-len(APIKeyPrefix)-apiKeyIDLength)
		for _, id := range []string{strings.Repeat("\xff", apiKeyIDLength), "a\x00" + strings.Repeat("b", apiKeyIDLength-2)} {
			_, err := f.service.IssueForAPIKey(context.Background(), APIKeyRequest{Key: APIKeyPrefix + id + secret})
			if chiterr.KindOf(err) != chiterr.Unauthenticated {
				t.Fatalf("API key id %q: %v, want Unauthenticated", id, err)
			}
		}
	})
}
