package accounts_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/passwords"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/sqlite"
	"github.com/chit-auth/chit/internal/storage/sqlite/sqlitetest"
)

func newDirectory(t *testing.T) *accounts.Directory {
	t.Helper()
	return newDirectoryObserved(t, func(string, time.Duration) {})
}

// newDirectoryObserved reports every store operation the directory makes.
func newDirectoryObserved(t *testing.T, observe func(operation string, took time.Duration)) *accounts.Directory {
	t.Helper()
	store, hasher := newStoreAndHasher(t)
	return accounts.NewDirectory(accounts.Config{}, accounts.Dependencies{Store: storage.Timed(store, observe), Hasher: hasher, Now: time.Now, Random: rand.Reader})
}

// newStoreAndHasher returns a fresh store, closed when the test ends, and a
// hasher with parameters cheap enough for tests.
func newStoreAndHasher(t *testing.T) (storage.Store, *passwords.Hasher) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), sqlitetest.Dir(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	hasher, err := passwords.NewHasher(passwords.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}, 2, time.Second, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return store, hasher
}

func TestUserLifecycle(t *testing.T) {
	ctx := context.Background()
	d := newDirectory(t)
	if err := d.CreateUser(ctx, "alice", "wonderland", accounts.RoleAdmin, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	principal, err := d.AuthenticateUser(ctx, "", "alice", "wonderland")
	if err != nil {
		t.Fatal(err)
	}
	if principal.Subject != "alice" || principal.Role != accounts.RoleAdmin || principal.Name != "alice" {
		t.Fatalf("principal = %+v", principal)
	}
	if err := d.CreateUser(ctx, "alice", "wonderland", accounts.RoleUser, storage.Grants{}); chiterr.KindOf(err) != chiterr.AlreadyExists {
		t.Fatalf("duplicate user: got %v, want AlreadyExists", err)
	}
	if err := d.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AuthenticateUser(ctx, "", "alice", "wonderland"); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("deleted user signed in: %v", err)
	}
	if err := d.DeleteUser(ctx, "alice"); chiterr.KindOf(err) != chiterr.NotFound {
		t.Fatalf("deleting a missing user: got %v, want NotFound", err)
	}
}

func TestUnknownUserAndWrongPasswordAreIndistinguishable(t *testing.T) {
	ctx := context.Background()
	d := newDirectory(t)
	if err := d.CreateUser(ctx, "alice", "wonderland", accounts.RoleUser, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	_, wrongPassword := d.AuthenticateUser(ctx, "", "alice", "not-the-password")
	_, unknownUser := d.AuthenticateUser(ctx, "", "nobody", "not-the-password")
	if chiterr.KindOf(wrongPassword) != chiterr.Unauthenticated || chiterr.KindOf(unknownUser) != chiterr.Unauthenticated {
		t.Fatalf("got %v and %v, want Unauthenticated for both", wrongPassword, unknownUser)
	}
	if wrongPassword.Error() != unknownUser.Error() {
		t.Fatalf("messages differ: %q vs %q", wrongPassword, unknownUser)
	}
}

func TestCreateUserValidates(t *testing.T) {
	ctx := context.Background()
	d := newDirectory(t)
	for _, tc := range []struct {
		name, user, password string
		role                 accounts.Role
	}{
		{"empty name", "", "long enough", accounts.RoleUser},
		{"name with space", "a b", "long enough", accounts.RoleUser},
		{"name too long", strings.Repeat("a", 65), "long enough", accounts.RoleUser},
		{"short password", "bob", "short", accounts.RoleUser},
		{"service role for a person", "bob", "long enough", accounts.RoleService},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := d.CreateUser(ctx, tc.user, tc.password, tc.role, storage.Grants{}); chiterr.KindOf(err) != chiterr.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
		})
	}
}

func TestServiceAccounts(t *testing.T) {
	ctx := context.Background()
	d := newDirectory(t)
	secret, err := d.CreateServiceAccount(ctx, "billing", storage.Grants{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, accounts.ClientSecretPrefix) || len(secret) < len(accounts.ClientSecretPrefix)+43 {
		t.Fatalf("secret %q lacks the prefix or 256 bits", secret)
	}
	principal, err := d.AuthenticateService(ctx, "billing", secret)
	if err != nil || principal.Subject != "service:billing" || principal.Role != accounts.RoleService || principal.Name != "billing" {
		t.Fatalf("AuthenticateService = %+v, %v", principal, err)
	}
	for _, tc := range []struct{ name, id, secret string }{
		{"wrong secret", "billing", secret + "x"},
		{"unknown client", "nobody", secret},
		{"decoy secret for unknown client", "nobody", "decoy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := d.AuthenticateService(ctx, tc.id, tc.secret); chiterr.KindOf(err) != chiterr.Unauthenticated {
				t.Fatalf("got %v, want Unauthenticated", err)
			}
		})
	}
	if _, err := d.CreateServiceAccount(ctx, "billing", storage.Grants{}); chiterr.KindOf(err) != chiterr.AlreadyExists {
		t.Fatalf("duplicate service: got %v", err)
	}
	if err := d.DeleteServiceAccount(ctx, "billing"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.AuthenticateService(ctx, "billing", secret); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("deleted service authenticated: %v", err)
	}
}

func TestParseUserRole(t *testing.T) {
	for in, want := range map[string]accounts.Role{"user": accounts.RoleUser, "ADMIN": accounts.RoleAdmin} {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			if got, err := accounts.ParseUserRole(in); err != nil || got != want {
				t.Errorf("ParseUserRole(%q) = %v, %v", in, got, err)
			}
		})
	}
	for _, tc := range []struct{ name, in string }{
		{"service", "service"},
		{"provider", "provider"},
		{"an unknown role", "root"},
		{"empty", ""},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			t.Parallel()
			if _, err := accounts.ParseUserRole(tc.in); err == nil {
				t.Errorf("ParseUserRole(%q) accepted", tc.in)
			}
		})
	}
}

func TestSignInUpgradesOldHashes(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlitetest.Dir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	weak, _ := passwords.NewHasher(passwords.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}, 1, time.Second, rand.Reader)
	strong, _ := passwords.NewHasher(passwords.Params{MemoryKiB: 128, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}, 1, time.Second, rand.Reader)
	if err := accounts.NewDirectory(accounts.Config{}, accounts.Dependencies{Store: store, Hasher: weak, Now: time.Now, Random: rand.Reader}).CreateUser(ctx, "alice", "wonderland", accounts.RoleUser, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	before, _ := store.GetUser(ctx, "alice")
	upgraded := accounts.NewDirectory(accounts.Config{}, accounts.Dependencies{Store: store, Hasher: strong, Now: time.Now, Random: rand.Reader})
	if _, err := upgraded.AuthenticateUser(ctx, "", "alice", "wonderland"); err != nil {
		t.Fatal(err)
	}
	after, _ := store.GetUser(ctx, "alice")
	if after.PasswordHash == before.PasswordHash || !strings.HasPrefix(after.PasswordHash, "$argon2id$v=19$m=128,t=2,p=1$") {
		t.Fatalf("hash after sign-in = %q, want it rehashed with the new parameters", after.PasswordHash)
	}
	if _, err := upgraded.AuthenticateUser(ctx, "", "alice", "wonderland"); err != nil {
		t.Fatalf("sign-in with the upgraded hash: %v", err)
	}
}

func TestOverlongPasswordIsRefusedWithoutHashing(t *testing.T) {
	d := newDirectory(t)
	_, err := d.AuthenticateUser(context.Background(), "", "alice", strings.Repeat("x", passwords.MaxLength+1))
	if chiterr.KindOf(err) != chiterr.InvalidArgument || !strings.Contains(err.Error(), "password") {
		t.Fatalf("got %v", err)
	}
}

func TestSignInThrottling(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlitetest.Dir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	hasher, _ := passwords.NewHasher(passwords.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}, 2, time.Second, rand.Reader)
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	d := accounts.NewDirectory(accounts.Config{}, accounts.Dependencies{Store: store, Hasher: hasher, Now: clock, Random: rand.Reader})
	if err := d.CreateUser(ctx, "alice", "wonderland", accounts.RoleUser, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	attacker := "192.0.2.7"
	for i := range accounts.DefaultThrottle.FreeFailures {
		if _, err := d.AuthenticateUser(ctx, attacker, "alice", "guess"); chiterr.KindOf(err) != chiterr.Unauthenticated {
			t.Fatalf("free failure %d: %v", i, err)
		}
	}
	// The sixth try comes too soon: refused without checking the password,
	// even the right one, with a hint.
	_, err = d.AuthenticateUser(ctx, attacker, "alice", "wonderland")
	if chiterr.KindOf(err) != chiterr.ResourceExhausted || chiterr.RetryAfter(err) != time.Second {
		t.Fatalf("throttled try: %v (retry after %v)", err, chiterr.RetryAfter(err))
	}
	// From another address the person is not locked out: the lockout
	// belongs to the username at the attacker's address.
	if _, err := d.AuthenticateUser(ctx, "198.51.100.1", "alice", "wonderland"); err != nil {
		t.Fatalf("the right password from another address: %v", err)
	}
	// The delays grow, then a lockout.
	for failure := accounts.DefaultThrottle.FreeFailures; failure < accounts.DefaultThrottle.LockoutAfter; failure++ {
		now = now.Add(time.Hour / 2)
		if _, err := d.AuthenticateUser(ctx, attacker, "alice", "guess"); chiterr.KindOf(err) != chiterr.Unauthenticated {
			t.Fatalf("failure %d after waiting: %v", failure, err)
		}
	}
	now = now.Add(10 * time.Minute)
	_, err = d.AuthenticateUser(ctx, attacker, "alice", "wonderland")
	if chiterr.KindOf(err) != chiterr.ResourceExhausted || chiterr.RetryAfter(err) != 5*time.Minute {
		t.Fatalf("during the lockout: %v (retry after %v), want 5m left", err, chiterr.RetryAfter(err))
	}
	// After it, the right password works and resets the counts.
	now = now.Add(5 * time.Minute)
	if _, err := d.AuthenticateUser(ctx, attacker, "alice", "wonderland"); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
	if failures, _ := store.GetLoginFailures(ctx, "user:alice@192.0.2.7"); failures.Count != 0 {
		t.Fatalf("a successful sign-in left %d failures", failures.Count)
	}
}

// Guesses for one username spread over many addresses meet the username's
// own policy: a far higher threshold, then delays that never exceed a
// minute and never become a lockout.
func TestUsernameThrottleDelaysButNeverLocks(t *testing.T) {
	ctx := context.Background()
	store, hasher := newStoreAndHasher(t)
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	d := accounts.NewDirectory(accounts.Config{}, accounts.Dependencies{Store: store, Hasher: hasher, Now: func() time.Time { return now }, Random: rand.Reader})
	if err := d.CreateUser(ctx, "carol", "wonderland", accounts.RoleUser, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	from := func(i int) string { return fmt.Sprintf("203.0.113.%d", i) }
	for i := range accounts.DefaultUsernameThrottle.FreeFailures {
		if _, err := d.AuthenticateUser(ctx, from(i), "carol", "guess"); chiterr.KindOf(err) != chiterr.Unauthenticated {
			t.Fatalf("free failure %d from a fresh address: %v", i, err)
		}
	}
	_, err := d.AuthenticateUser(ctx, from(100), "carol", "wonderland")
	if chiterr.KindOf(err) != chiterr.ResourceExhausted || chiterr.RetryAfter(err) != time.Second {
		t.Fatalf("past the username's free failures: %v (retry after %v), want a 1s wait", err, chiterr.RetryAfter(err))
	}
	// Many more failures, each after its wait: the wait stops growing at a
	// minute, and the right password then works.
	for i := range 20 {
		now = now.Add(time.Minute)
		if _, err := d.AuthenticateUser(ctx, from(200+i), "carol", "guess"); chiterr.KindOf(err) != chiterr.Unauthenticated {
			t.Fatalf("failure %d after its wait: %v", i, err)
		}
	}
	_, err = d.AuthenticateUser(ctx, from(250), "carol", "wonderland")
	if chiterr.RetryAfter(err) > time.Minute {
		t.Fatalf("the username's wait grew to %v, past a minute", chiterr.RetryAfter(err))
	}
	now = now.Add(time.Minute)
	if _, err := d.AuthenticateUser(ctx, from(251), "carol", "wonderland"); err != nil {
		t.Fatalf("the right password after the wait: %v", err)
	}
}

func TestThrottlingPerAddress(t *testing.T) {
	ctx := context.Background()
	d := newDirectory(t)
	if err := d.CreateUser(ctx, "bob", "builder-pass", accounts.RoleUser, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	spray := "203.0.113.9"
	// Password spraying: one guess each for many usernames from one address.
	for i := range accounts.DefaultThrottle.FreeFailures {
		_, _ = d.AuthenticateUser(ctx, spray, "user"+strings.Repeat("x", i), "guess")
	}
	if _, err := d.AuthenticateUser(ctx, spray, "bob", "builder-pass"); chiterr.KindOf(err) != chiterr.ResourceExhausted {
		t.Fatalf("sprayed address: %v, want ResourceExhausted", err)
	}
	if _, err := d.AuthenticateUser(ctx, "203.0.113.10", "bob", "builder-pass"); err != nil {
		t.Fatalf("another address: %v", err)
	}
}

// Signing in to an account of one's own between guesses does not reset the
// address's count of guesses at other people's: only the failures of the
// username that succeeded (its owner's typing mistakes) are taken back.
func TestOwnSuccessDoesNotResetSprayCount(t *testing.T) {
	ctx := context.Background()
	d := newDirectory(t)
	if err := d.CreateUser(ctx, "mallory", "mallory-pass", accounts.RoleUser, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	spray := "203.0.113.9"
	checked := 0
	for round := range 6 {
		for guess := range 4 {
			_, err := d.AuthenticateUser(ctx, spray, fmt.Sprintf("victim%d-%d", round, guess), "guess")
			if chiterr.KindOf(err) == chiterr.Unauthenticated {
				checked++
			}
		}
		_, _ = d.AuthenticateUser(ctx, spray, "mallory", "mallory-pass")
	}
	if checked > accounts.DefaultThrottle.FreeFailures {
		t.Fatalf("%d guesses at other people were checked from one address, want at most %d", checked, accounts.DefaultThrottle.FreeFailures)
	}

	// A person's own typing mistakes are forgiven by their success.
	typist := "203.0.113.20"
	for range accounts.DefaultThrottle.FreeFailures - 1 {
		_, _ = d.AuthenticateUser(ctx, typist, "mallory", "typo")
	}
	if _, err := d.AuthenticateUser(ctx, typist, "mallory", "mallory-pass"); err != nil {
		t.Fatal(err)
	}
	for range accounts.DefaultThrottle.FreeFailures - 1 {
		_, _ = d.AuthenticateUser(ctx, typist, "mallory", "typo")
	}
	if _, err := d.AuthenticateUser(ctx, typist, "mallory", "mallory-pass"); err != nil {
		t.Fatalf("after forgiven typing mistakes: %v", err)
	}
}

// A sign-in's attempt is counted before its password is checked (so a
// burst cannot outrun the throttle) and taken back when it succeeds; a
// failed one stays counted, for the username and for the address.
func TestSignInAttemptsAreCountedBeforeTheCheck(t *testing.T) {
	ctx, address := context.Background(), "203.0.113.9"
	store, hasher := newStoreAndHasher(t)
	d := accounts.NewDirectory(accounts.Config{}, accounts.Dependencies{Store: store, Hasher: hasher, Now: time.Now, Random: rand.Reader})
	if err := d.CreateUser(ctx, "bob", "builder-pass", accounts.RoleUser, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	counted := func() (int, int) {
		user, _ := store.GetLoginFailures(ctx, "user:bob@203.0.113.9")
		addr, _ := store.GetLoginFailures(ctx, "addr:203.0.113.9")
		return user.Count, addr.Count
	}
	if _, err := d.AuthenticateUser(ctx, address, "bob", "wrong-pass"); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("wrong password: %v", err)
	}
	if user, addr := counted(); user != 1 || addr != 1 {
		t.Fatalf("after a failure: %d and %d counted, want 1 and 1", user, addr)
	}
	if _, err := d.AuthenticateUser(ctx, address, "bob", "builder-pass"); err != nil {
		t.Fatal(err)
	}
	if user, addr := counted(); user != 0 || addr != 0 {
		t.Fatalf("after a success: %d and %d counted, want none", user, addr)
	}
}

// One answer to who may use what Chit offers services, for every transport.
func TestOnlyServicesAndAdminsServeServices(t *testing.T) {
	for _, tc := range []struct {
		name string
		role accounts.Role
		want bool
	}{
		{"service", accounts.RoleService, true},
		{"admin", accounts.RoleAdmin, true},
		{"user", accounts.RoleUser, false},
		{"provider", accounts.RoleProvider, false},
		{"no role", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.role.ServesServices(); got != tc.want {
				t.Errorf("%q.ServesServices() = %v, want %v", tc.role, got, tc.want)
			}
		})
	}
}

// A rotated secret keeps working for the overlap and not a moment longer;
// without an overlap it stops at once; a second rotation ends the first
// one's overlap; the overlap is bounded.
func TestRotateServiceSecret(t *testing.T) {
	store, hasher := newStoreAndHasher(t)
	now := time.Now()
	directory := accounts.NewDirectory(accounts.Config{}, accounts.Dependencies{Store: store, Hasher: hasher, Now: func() time.Time { return now }, Random: rand.Reader})
	ctx := context.Background()
	first, err := directory.CreateServiceAccount(ctx, "billing", storage.Grants{})
	if err != nil {
		t.Fatal(err)
	}
	authenticates := func(secret string) bool {
		_, err := directory.AuthenticateService(ctx, "billing", secret)
		return err == nil
	}

	second, err := directory.RotateServiceSecret(ctx, "billing", time.Hour)
	if err != nil || second == first {
		t.Fatalf("RotateServiceSecret = %q, %v", second, err)
	}
	if !authenticates(first) || !authenticates(second) {
		t.Fatal("during the overlap both secrets must work")
	}
	now = now.Add(time.Hour)
	if authenticates(first) || !authenticates(second) {
		t.Fatal("after the overlap only the new secret may work")
	}

	third, err := directory.RotateServiceSecret(ctx, "billing", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fourth, err := directory.RotateServiceSecret(ctx, "billing", 0)
	if err != nil {
		t.Fatal(err)
	}
	if authenticates(second) || authenticates(third) || !authenticates(fourth) {
		t.Fatal("a rotation without overlap must leave only the new secret working")
	}

	for _, tc := range []struct {
		name    string
		overlap time.Duration
	}{
		{"a negative overlap", -time.Second},
		{"an overlap past the maximum", accounts.MaxSecretOverlap + time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := directory.RotateServiceSecret(ctx, "billing", tc.overlap); chiterr.KindOf(err) != chiterr.InvalidArgument {
				t.Errorf("overlap %s: got %v, want InvalidArgument", tc.overlap, err)
			}
		})
	}
	if !authenticates(fourth) {
		t.Fatal("a refused rotation changed the secret")
	}
	if _, err := directory.RotateServiceSecret(ctx, "nobody", 0); chiterr.KindOf(err) != chiterr.NotFound {
		t.Fatalf("rotating an unknown account: %v", err)
	}
}

// With the service-account cache on, a service's API key is exchanged
// without reading the account each time, as its sign-ins are; a change
// still reaches it once the cache's time has passed.
func TestLookupSubjectUsesTheServiceCache(t *testing.T) {
	store, hasher := newStoreAndHasher(t)
	now := time.Now()
	var reads int
	directory := accounts.NewDirectory(accounts.Config{ServiceAccountCacheTTL: time.Second},
		accounts.Dependencies{Store: storage.Timed(store, func(op string, _ time.Duration) {
			if op == "GetServiceAccount" {
				reads++
			}
		}), Hasher: hasher, Now: func() time.Time { return now }, Random: rand.Reader})
	ctx := context.Background()
	if _, err := directory.CreateServiceAccount(ctx, "billing", storage.Grants{AllowedScopes: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if p, err := directory.LookupSubject(ctx, accounts.ServiceSubject("billing")); err != nil || p.Role != accounts.RoleService {
			t.Fatalf("LookupSubject = %+v, %v", p, err)
		}
	}
	if reads != 1 {
		t.Fatalf("%d reads of the account for 3 lookups within the cache's time, want 1", reads)
	}
	if err := store.UpdateServiceAccount(ctx, "billing", func(a *storage.ServiceAccount) (*storage.SubjectRevocation, error) {
		a.AllowedScopes = nil
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Second)
	if p, err := directory.LookupSubject(ctx, accounts.ServiceSubject("billing")); err != nil || len(p.Grants.AllowedScopes) != 0 {
		t.Fatalf("after the cache's time LookupSubject = %+v, %v", p, err)
	}
}
