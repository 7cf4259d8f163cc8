package tokens_test

import (
	"context"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"math/big"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/secrets"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/tokens"
)

// Changes that land between reading a principal and signing its token: the
// races an outside attack run found. Each token must count as issued when
// its grants were read, so the change refuses it like every older token.

// changeDuringSignIn wraps the directory's store so that the next read of
// alice runs change right after it, as if an operator committed it while
// the password was being hashed.
func changeDuringSignIn(change func()) func(*fixtureOptions) {
	return func(o *fixtureOptions) {
		o.wrapStore = func(store storage.Store) storage.Store {
			return &userReadHook{Store: store, after: change}
		}
	}
}

type userReadHook struct {
	storage.Store
	after func()
	fired atomic.Bool
}

func (h *userReadHook) GetUser(ctx context.Context, name string) (storage.User, error) {
	user, err := h.Store.GetUser(ctx, name)
	if name == "alice" && h.fired.CompareAndSwap(false, true) {
		h.after()
	}
	return user, err
}

func TestSignInRacingAChangeIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(ctx context.Context, f *fixture) error
	}{
		{"demotion", func(ctx context.Context, f *fixture) error {
			return f.operator.SetUserRole(ctx, "alice", accounts.RoleAdmin)
		}},
		{"scope removal", func(ctx context.Context, f *fixture) error {
			return f.operator.SetUserGrants(ctx, "alice", storage.Grants{AllowedScopes: []string{"read"}})
		}},
		{"delete", func(ctx context.Context, f *fixture) error { return f.operator.DeleteUser(ctx, "alice") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			var f *fixture
			f = newFixture(t, changeDuringSignIn(func() {
				f.clock.Advance(100 * time.Millisecond) // the hash takes a while
				if err := tc.change(ctx, f); err != nil {
					t.Error(err)
				}
				f.clock.Advance(100 * time.Millisecond)
			}))
			grant, err := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland", Scope: "read write"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.service.Check(ctx, grant.AccessToken)
			wantKind(t, err, chiterr.Unauthenticated)
		})
	}
}

// A refresh token stored after its user was deleted (the sign-in raced the
// delete) must not refresh as a new user who took the name.
func TestRefreshTokenOfADeletedUserDoesNotPassToTheNameTakenAgain(t *testing.T) {
	ctx := context.Background()
	var f *fixture
	f = newFixture(t, changeDuringSignIn(func() {
		f.clock.Advance(100 * time.Millisecond)
		if err := f.operator.DeleteUser(ctx, "alice"); err != nil {
			t.Error(err)
		}
		f.clock.Advance(100 * time.Millisecond)
	}))
	grant, err := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland"})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	if err := f.operator.CreateUser(ctx, "alice", "another-pass", accounts.RoleUser, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	_, err = f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: grant.RefreshToken})
	wantKind(t, err, chiterr.Unauthenticated)
}

// A replica keeps a service account for a second; a narrowing made by
// another process in that second reaches the replica's sign-ins late, and
// the tokens they issue must be refused.
func TestServiceNarrowedElsewhereWhileCachedIsRefused(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(o *fixtureOptions) { o.serviceCacheTTL = time.Second })
	if _, err := issueForClient(ctx, f.service, "billing", f.secret, ""); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(100 * time.Millisecond)
	if err := f.operator.SetServiceGrants(ctx, "billing", storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(100 * time.Millisecond)
	stale, err := issueForClient(ctx, f.service, "billing", f.secret, "inventory:read")
	if err != nil {
		t.Fatalf("within the cache time the old grants still answer: %v", err)
	}
	_, err = f.service.Check(ctx, stale.AccessToken)
	wantKind(t, err, chiterr.Unauthenticated)

	// Deleted elsewhere: the same.
	f.clock.Advance(2 * time.Second)
	if err := f.operator.SetServiceGrants(ctx, "billing", billingGrants); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(2 * time.Second)
	if _, err := issueForClient(ctx, f.service, "billing", f.secret, ""); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(100 * time.Millisecond)
	if err := f.operator.DeleteServiceAccount(ctx, "billing"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(100 * time.Millisecond)
	stale, err = issueForClient(ctx, f.service, "billing", f.secret, "")
	if err != nil {
		t.Fatalf("within the cache time the deleted account still answers: %v", err)
	}
	_, err = f.service.Check(ctx, stale.AccessToken)
	wantKind(t, err, chiterr.Unauthenticated)
}

// A refresh token stored before clients were recorded refreshes through
// Chit's own clients only, and its successor is bound to the one used.
func TestLegacyRefreshTokenBindsToTheFirstPartyClientThatRefreshesIt(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	legacy := tokens.RefreshTokenPrefix + "legacy-token-issued-before-clients-were-recorded"
	now := f.clock.Now()
	if err := f.store.CreateRefreshToken(ctx, storage.RefreshToken{
		Hash: secrets.Digest(legacy), FamilyID: "legacy-family", Subject: "alice", Role: "USER", Scope: "read payments:admin",
		IssuedAt: now, ExpiresAt: now.Add(time.Hour), FamilyExpiresAt: now.Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	registered := accounts.Client{ID: "dashboard", Grants: storage.Grants{AllowedScopes: []string{"read"}}}
	_, err := f.service.Refresh(ctx, tokens.RefreshRequest{Client: registered, RefreshToken: legacy})
	wantKind(t, err, chiterr.Unauthenticated)
	grant, err := f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: legacy})
	if err != nil {
		t.Fatal(err)
	}
	// Scopes the user is not granted (any more) are dropped.
	if grant.Scope != "read" {
		t.Fatalf("legacy login refreshed with scope %q, want read", grant.Scope)
	}
	_, err = f.service.Refresh(ctx, tokens.RefreshRequest{Client: accounts.FirstPartyClient(accounts.CLIClientID), RefreshToken: grant.RefreshToken})
	wantKind(t, err, chiterr.Unauthenticated)
	if _, err := f.service.Refresh(ctx, tokens.RefreshRequest{Client: apiClient, RefreshToken: grant.RefreshToken}); err != nil {
		t.Fatalf("the successor refreshes through the client that bound it: %v", err)
	}
}

// updateHook runs during inside an update's transaction, after the change
// is computed and before it commits.
type updateHook struct {
	storage.Store
	during func()
}

func (h *updateHook) UpdateServiceAccount(ctx context.Context, id string, update func(*storage.ServiceAccount) (*storage.SubjectRevocation, error)) error {
	return h.Store.UpdateServiceAccount(ctx, id, func(account *storage.ServiceAccount) (*storage.SubjectRevocation, error) {
		revoke, err := update(account)
		h.during()
		return revoke, err
	})
}

// A sign-in that reads the old record while a narrowing is committing gets
// a read time after the revocation the change computed, yet the old grants:
// the revocation recorded once the change has committed refuses its token.
func TestSignInWhileANarrowingCommitsIsRefused(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	var stale tokens.Grant
	operator := accounts.NewDirectory(accounts.Config{ServerAudience: "chit"}, accounts.Dependencies{Store: &updateHook{Store: f.store, during: func() {
		f.clock.Advance(10 * time.Millisecond)
		var err error
		if stale, err = issueForClient(ctx, f.service, "billing", f.secret, "inventory:read"); err != nil {
			t.Error(err)
		}
		f.clock.Advance(10 * time.Millisecond)
	}}, Now: f.clock.Now, Random: rand.Reader})
	if err := operator.SetServiceGrants(ctx, "billing", storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	if stale.AccessToken == "" {
		t.Fatal("no sign-in ran during the change")
	}
	_, err := f.service.Check(ctx, stale.AccessToken)
	wantKind(t, err, chiterr.Unauthenticated)
}

// A password sign-in through a registered client reads the client first
// and the user afterwards: a narrowing of the client committed in between
// must refuse the token, which counts from the earlier read.
func TestClientNarrowedBetweenItsReadAndTheUsersIsRefused(t *testing.T) {
	ctx := context.Background()
	var f *fixture
	var hook *clientReadHook
	f = newFixture(t, func(o *fixtureOptions) {
		o.wrapStore = func(store storage.Store) storage.Store {
			hook = &clientReadHook{Store: store}
			return hook
		}
	})
	secret, err := f.operator.CreateClient(ctx, "dashboard", []string{"https://d.example/cb"}, true, storage.Grants{AllowedScopes: []string{"read", "write"}})
	if err != nil {
		t.Fatal(err)
	}
	hook.after = func() {
		f.clock.Advance(10 * time.Millisecond)
		if err := f.operator.SetClientGrants(ctx, "dashboard", storage.Grants{AllowedScopes: []string{"read"}}); err != nil {
			t.Error(err)
		}
		f.clock.Advance(10 * time.Millisecond)
	}
	client, err := f.service.Directory.AuthenticateClient(ctx, "dashboard", secret)
	if err != nil {
		t.Fatal(err)
	}
	grant, err := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: client, Username: "alice", Password: "wonderland", Scope: "write"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.service.Check(ctx, grant.AccessToken)
	wantKind(t, err, chiterr.Unauthenticated)
}

type clientReadHook struct {
	storage.Store
	after func()
	// fail, when set, is every read's answer.
	fail error
}

func (h *clientReadHook) GetClient(ctx context.Context, id string) (storage.Client, error) {
	if h.fail != nil {
		return storage.Client{}, h.fail
	}
	client, err := h.Store.GetClient(ctx, id)
	if h.after != nil {
		after := h.after
		h.after = nil
		after()
	}
	return client, err
}

// A refresh token issued to a client that was deleted (stored by a sign-in
// that raced the delete) is not the business of a new client registered
// under the same id: introspection shows it inactive, and it does not
// refresh.
func TestRefreshTokenOfADeletedClientIsNotTheNewClients(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	if _, err := f.operator.CreateClient(ctx, "dashboard", []string{"https://d.example/cb"}, true, storage.Grants{AllowedScopes: []string{"read"}}); err != nil {
		t.Fatal(err)
	}
	issuedAt := f.clock.Now()
	f.clock.Advance(time.Second)
	if err := f.operator.DeleteClient(ctx, "dashboard"); err != nil {
		t.Fatal(err)
	}
	// What a sign-in that read the old client stores after the delete.
	raced := tokens.RefreshTokenPrefix + "stored-by-a-sign-in-that-raced-the-delete"
	if err := f.store.CreateRefreshToken(ctx, storage.RefreshToken{
		Hash: secrets.Digest(raced), FamilyID: "raced-family", Subject: "alice", Role: "USER", Scope: "read", ClientID: "dashboard",
		IssuedAt: issuedAt, ExpiresAt: issuedAt.Add(time.Hour), FamilyExpiresAt: issuedAt.Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	secret, err := f.operator.CreateClient(ctx, "dashboard", []string{"https://d.example/cb"}, true, storage.Grants{AllowedScopes: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	newClient, err := f.service.Directory.AuthenticateClient(ctx, "dashboard", secret)
	if err != nil {
		t.Fatal(err)
	}
	if answer, err := f.service.Introspect(ctx, newClient, raced); err != nil || answer.Active {
		t.Fatalf("the new client introspecting the old client's refresh token: %+v, %v; want inactive", answer, err)
	}
	_, err = f.service.Refresh(ctx, tokens.RefreshRequest{Client: newClient, RefreshToken: raced})
	wantKind(t, err, chiterr.Unauthenticated)
}

// CheckToken, introspection and userinfo take access tokens only: at+jwt,
// or JWT with Chit's role claim from before access tokens were typed. ID
// tokens keep typ JWT and carry no role.
func TestCheckAcceptsAccessTokensOnly(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	sign := func(typ string) string {
		t.Helper()
		now := f.clock.Now()
		token, err := jwt.NewBuilder().Issuer(f.cfg.Issuer).Subject("alice").Audience([]string{f.cfg.Audience}).
			IssuedAt(now).Expiration(now.Add(time.Minute)).Claim("role", "USER").Build()
		if err != nil {
			t.Fatal(err)
		}
		signed, err := f.keys.SignAs(token, typ)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	for typ, accepted := range map[string]bool{"at+jwt": true, "JWT": true, "logout+jwt": false, "secevent+jwt": false} {
		token := sign(typ) // sign reports to the parent test: called here, not in the subtest
		t.Run("typ "+typ, func(t *testing.T) {
			if _, err := f.service.Check(ctx, token); (err == nil) != accepted {
				t.Errorf("typ %s: %v, accepted wanted %v", typ, err, accepted)
			}
		})
	}
	principal, err := f.service.Directory.LookupUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	grant, err := f.service.IssueForLogin(ctx, tokens.Login{
		Grantee: accounts.Grantee{Principal: principal, Client: apiClient}, FamilyID: "f",
		IDToken: &tokens.IDTokenRequest{ClientID: f.cfg.Audience, AuthTime: f.clock.Now()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if typ := tokenType(t, grant.AccessToken); typ != "at+jwt" {
		t.Fatalf("access token typ %q, want at+jwt", typ)
	}
	if typ := tokenType(t, grant.IDToken); typ != "JWT" {
		t.Fatalf("ID token typ %q, want JWT", typ)
	}
	// Even with the server's audience as its client, an ID token is no
	// access token.
	_, err = f.service.Check(ctx, grant.IDToken)
	wantKind(t, err, chiterr.Unauthenticated)
}

func tokenType(t *testing.T, token string) string {
	t.Helper()
	message, err := jws.Parse([]byte(token))
	if err != nil {
		t.Fatal(err)
	}
	return message.Signatures()[0].ProtectedHeaders().Type()
}

// A token has one encoding: Chit signs with the low s, 1,000 tokens in a
// row all verify, and every variant of a genuine token is refused without
// entering the verified-token cache.
func TestOneEncodingPerToken(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for i := range 1000 {
		grant, err := issueForClient(ctx, f.service, "billing", f.secret, "")
		if err != nil {
			t.Fatal(err)
		}
		if !keys.HasLowS(grant.AccessToken, jwa.ES256) {
			t.Fatalf("token %d was signed with a high s", i)
		}
		if _, err := f.service.Check(ctx, grant.AccessToken); err != nil {
			t.Fatalf("token %d does not verify: %v", i, err)
		}
	}
	// A token whose signature has a character the standard alphabet writes
	// otherwise, so that the variants below all differ from it.
	var grant tokens.Grant
	var parts []string
	for !strings.ContainsAny(strings.Join(parts, ""), "-_") {
		var err error
		if grant, err = issueForClient(ctx, f.service, "billing", f.secret, ""); err != nil {
			t.Fatal(err)
		}
		parts = strings.Split(grant.AccessToken, ".")
		parts = parts[2:]
	}
	parts = strings.Split(grant.AccessToken, ".")
	signature, _ := base64.RawURLEncoding.DecodeString(parts[2])
	highS := slices.Clone(signature)
	order := elliptic.P256().Params().N
	new(big.Int).Sub(order, new(big.Int).SetBytes(signature[32:])).FillBytes(highS[32:])
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	for name, variant := range map[string]string{
		"high s":                       parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(highS),
		"padded signature":             parts[0] + "." + parts[1] + "." + base64.URLEncoding.EncodeToString(signature),
		"standard alphabet":            parts[0] + "." + parts[1] + "." + base64.RawStdEncoding.EncodeToString(signature),
		"JSON serialization":           `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`,
		"padded header":                base64.URLEncoding.EncodeToString(header) + "." + parts[1] + "." + parts[2],
		"trailing bits in the payload": parts[0] + "." + parts[1] + "x" + "." + parts[2],
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := f.service.Check(ctx, variant); chiterr.KindOf(err) != chiterr.Unauthenticated {
				t.Errorf("%v, want refused", err)
			}
		})
	}
	// The genuine token still verifies: no variant poisoned the cache.
	if _, err := f.service.Check(ctx, grant.AccessToken); err != nil {
		t.Fatal(err)
	}
}

// A refresh through a registered client reads the client again; a store
// that cannot be reached then is "try again shortly", never "the refresh
// token is invalid", which would end the login.
func TestRefreshWhoseClientCannotBeReadIsUnavailable(t *testing.T) {
	ctx := context.Background()
	var hook *clientReadHook
	f := newFixture(t, func(o *fixtureOptions) {
		o.wrapStore = func(store storage.Store) storage.Store {
			hook = &clientReadHook{Store: store}
			return hook
		}
	})
	secret, err := f.operator.CreateClient(ctx, "dashboard", []string{"https://d.example/cb"}, true, storage.Grants{AllowedScopes: []string{"read", "offline_access"}})
	if err != nil {
		t.Fatal(err)
	}
	client, err := f.service.Directory.AuthenticateClient(ctx, "dashboard", secret)
	if err != nil {
		t.Fatal(err)
	}
	grant, err := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: client, Username: "alice", Password: "wonderland", Scope: "read"})
	if err != nil {
		t.Fatal(err)
	}
	hook.fail = storage.Unavailable(errors.New("connection refused"))
	_, err = f.service.Refresh(ctx, tokens.RefreshRequest{Client: client, RefreshToken: grant.RefreshToken})
	wantKind(t, err, chiterr.Unavailable)
	hook.fail = nil
	if _, err := f.service.Refresh(ctx, tokens.RefreshRequest{Client: client, RefreshToken: grant.RefreshToken}); err != nil {
		t.Fatalf("the login did not survive: %v", err)
	}
}
