package accounts_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// cacheFixture is a server's directory and an operator's (chitd service
// ...) on one store, a settable clock, and a count of the server's reads
// of service accounts (and of clients).
type cacheFixture struct {
	server, operator *accounts.Directory
	mu               sync.Mutex
	now              time.Time
	reads            atomic.Int32
	clientReads      atomic.Int32
	// afterRead, when set, runs once as the server's next read of a service
	// account returns.
	afterRead func()
}

func newCacheFixture(t *testing.T, ttl time.Duration) *cacheFixture {
	t.Helper()
	store, hasher := newStoreAndHasher(t)
	f := &cacheFixture{now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	counted := storage.Timed(store, func(operation string, _ time.Duration) {
		if operation == "GetClient" {
			f.clientReads.Add(1)
		}
		if operation == "GetServiceAccount" {
			f.reads.Add(1)
			if hook := f.afterRead; hook != nil {
				f.afterRead = nil
				hook()
			}
		}
	})
	f.server = accounts.NewDirectory(accounts.Config{ServiceAccountCacheTTL: ttl}, accounts.Dependencies{Store: counted, Hasher: hasher, Now: f.clock, Random: rand.Reader})
	f.operator = accounts.NewDirectory(accounts.Config{}, accounts.Dependencies{Store: store, Hasher: hasher, Now: f.clock, Random: rand.Reader})
	return f
}

func (f *cacheFixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *cacheFixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func (f *cacheFixture) signIn(clientID, secret string) error {
	_, err := f.server.AuthenticateService(context.Background(), clientID, secret)
	return err
}

// createBilling creates the service "billing" through d and returns its
// secret.
func createBilling(t *testing.T, d *accounts.Directory) string {
	t.Helper()
	secret, err := d.CreateServiceAccount(context.Background(), "billing", storage.Grants{})
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func (f *cacheFixture) mustSignIn(t *testing.T, secret string) {
	t.Helper()
	if err := f.signIn("billing", secret); err != nil {
		t.Fatal(err)
	}
}

func TestServiceSignInsWithinTheCacheTimeReadTheStoreOnce(t *testing.T) {
	f := newCacheFixture(t, time.Second)
	secret := createBilling(t, f.operator)
	for range 20 {
		f.mustSignIn(t, secret)
		f.advance(40 * time.Millisecond)
	}
	// 20 sign-ins over 800ms.
	if n := f.reads.Load(); n != 1 {
		t.Fatalf("the store was read %d times, want 1", n)
	}
	f.advance(time.Second)
	f.mustSignIn(t, secret)
	if n := f.reads.Load(); n != 2 {
		t.Fatalf("after the cache time the store was read %d times in all, want 2", n)
	}
}

// A service deleted by the operator stops signing in once the server's
// entry expires, and a new account under the same name does not accept
// the old secret after that.
func TestDeletedServiceIsRefusedAfterTheCacheTime(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, time.Second)
	oldSecret := createBilling(t, f.operator)
	f.mustSignIn(t, oldSecret)
	if err := f.operator.DeleteServiceAccount(ctx, "billing"); err != nil {
		t.Fatal(err)
	}
	f.advance(time.Second)
	if err := f.signIn("billing", oldSecret); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("a deleted service signed in after the cache time: %v", err)
	}
	newSecret := createBilling(t, f.operator)
	if err := f.signIn("billing", oldSecret); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("the old secret of a re-created service signed in: %v", err)
	}
	if err := f.signIn("billing", newSecret); err != nil {
		t.Fatalf("the re-created service's secret: %v", err)
	}
}

// The cached account is compared with the secret on every sign-in, and a
// wrong secret is always checked against the store, as an unknown client id
// is: a failure answered from memory would be faster and tell that the id
// exists.
func TestCachedServiceStillRefusesAWrongSecret(t *testing.T) {
	f := newCacheFixture(t, time.Minute)
	secret := createBilling(t, f.operator)
	f.mustSignIn(t, secret)
	wrongSecrets := []string{"chit_cs_guess", secret[:len(secret)-1], secret + "x"}
	for _, wrong := range wrongSecrets {
		if err := f.signIn("billing", wrong); chiterr.KindOf(err) != chiterr.Unauthenticated {
			t.Fatalf("secret %q with the account cached: got %v, want Unauthenticated", wrong, err)
		}
	}
	if n, want := f.reads.Load(), int32(1+len(wrongSecrets)); n != want {
		t.Fatalf("the store was read %d times, want %d: once per failed sign-in", n, want)
	}
}

// An account deleted and created again elsewhere takes its new secret at
// once, while the old account is still cached.
func TestRecreatedServiceTakesItsNewSecretAtOnce(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, time.Minute)
	oldSecret := createBilling(t, f.operator)
	f.mustSignIn(t, oldSecret)
	if err := f.operator.DeleteServiceAccount(ctx, "billing"); err != nil {
		t.Fatal(err)
	}
	newSecret := createBilling(t, f.operator)
	if err := f.signIn("billing", newSecret); err != nil {
		t.Fatalf("the new secret with the old account cached: %v", err)
	}
	// The successful read replaced the cached entry: the old secret is
	// refused from now on, without waiting for the cache time.
	if err := f.signIn("billing", oldSecret); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("the old secret after the new one signed in: %v", err)
	}
}

// A sign-in that read the account just before this directory deleted it
// does not put the deleted account back into the cache.
func TestDeleteDuringASignInIsNotUndone(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, time.Minute)
	secret := createBilling(t, f.server)
	f.afterRead = func() {
		if err := f.server.DeleteServiceAccount(ctx, "billing"); err != nil {
			t.Error(err)
		}
	}
	// The read came before the delete, so this sign-in succeeds...
	f.mustSignIn(t, secret)
	// ...but the next one must not be answered from a cache entry it made.
	if err := f.signIn("billing", secret); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("a service deleted during a sign-in was still cached: %v", err)
	}
}

// Unknown client ids are not remembered: each one is looked up (so a flood
// of made-up ids cannot fill the cache), and an account created a moment
// after a failed sign-in works at once.
func TestUnknownServicesAreNotCached(t *testing.T) {
	f := newCacheFixture(t, time.Minute)
	for range 3 {
		if err := f.signIn("billing", "chit_cs_guess"); chiterr.KindOf(err) != chiterr.Unauthenticated {
			t.Fatalf("unknown service: got %v, want Unauthenticated", err)
		}
	}
	if n := f.reads.Load(); n != 3 {
		t.Fatalf("3 sign-ins as an unknown service read the store %d times, want 3", n)
	}
	secret := createBilling(t, f.operator)
	if err := f.signIn("billing", secret); err != nil {
		t.Fatalf("a service created after a failed sign-in: %v", err)
	}
}

// Deleting through the server's own directory takes effect at once.
func TestServiceDeletedByTheSameDirectoryIsRefusedAtOnce(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, time.Minute)
	secret := createBilling(t, f.server)
	f.mustSignIn(t, secret)
	if err := f.server.DeleteServiceAccount(ctx, "billing"); err != nil {
		t.Fatal(err)
	}
	if err := f.signIn("billing", secret); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("a service deleted by this directory signed in: %v", err)
	}
}

func TestServiceAccountCacheOff(t *testing.T) {
	f := newCacheFixture(t, 0)
	secret := createBilling(t, f.operator)
	for range 3 {
		f.mustSignIn(t, secret)
	}
	if n := f.reads.Load(); n != 3 {
		t.Fatalf("with the cache off, 3 sign-ins read the store %d times, want 3", n)
	}
}

// An entry whose read time is in the future (the clock was set back) is not
// trusted: otherwise it could live far longer than the cache time.
func TestServiceCacheDistrustsAClockSetBack(t *testing.T) {
	f := newCacheFixture(t, time.Minute)
	secret := createBilling(t, f.operator)
	f.mustSignIn(t, secret)
	f.advance(-time.Hour)
	f.mustSignIn(t, secret)
	if n := f.reads.Load(); n != 2 {
		t.Fatalf("after the clock went back the store was read %d times in all, want 2", n)
	}
}

// authenticateClient is the client authentication of /oauth2/introspect,
// /oauth2/revoke and the token grants, for a service acting as its client.
func (f *cacheFixture) authenticateClient(clientID, secret string) error {
	client, err := f.server.AuthenticateClient(context.Background(), clientID, secret)
	if err == nil && (!client.Service || client.ID != clientID) {
		return fmt.Errorf("authenticated %+v, want the service %q", client, clientID)
	}
	return err
}

// A service authenticating as a client (introspection with Basic) is
// answered from the service account cache like its client credentials: no
// read of the clients, whose answer is that the id is none of theirs.
func TestServiceClientAuthenticationUsesTheServiceCache(t *testing.T) {
	f := newCacheFixture(t, time.Second)
	secret := createBilling(t, f.operator)
	for range 20 {
		if err := f.authenticateClient("billing", secret); err != nil {
			t.Fatal(err)
		}
		f.advance(40 * time.Millisecond)
	}
	// 20 authentications over 800ms: the first reads both.
	if services, clients := f.reads.Load(), f.clientReads.Load(); services != 1 || clients != 1 {
		t.Fatalf("the store was read for %d service accounts and %d clients, want 1 and 1", services, clients)
	}
	f.advance(time.Second)
	if err := f.authenticateClient("billing", secret); err != nil {
		t.Fatal(err)
	}
	if services, clients := f.reads.Load(), f.clientReads.Load(); services != 2 || clients != 2 {
		t.Fatalf("after the cache time the store was read for %d service accounts and %d clients in all, want 2 and 2", services, clients)
	}
}

// Client authentication keeps the service account cache's rules: a wrong
// secret reads the store; a change made by this directory applies at once,
// one made elsewhere when the entry expires; an id taken over by a client
// is the client's after that.
func TestServiceClientAuthenticationKeepsTheCacheRules(t *testing.T) {
	ctx := context.Background()
	refused := func(t *testing.T, f *cacheFixture, secret, what string) {
		t.Helper()
		if err := f.authenticateClient("billing", secret); chiterr.KindOf(err) != chiterr.Unauthenticated {
			t.Fatalf("%s: got %v, want Unauthenticated", what, err)
		}
	}
	accepted := func(t *testing.T, f *cacheFixture, secret, what string) {
		t.Helper()
		if err := f.authenticateClient("billing", secret); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, f *cacheFixture, secret string)
	}{
		{"a wrong secret reads the store every time", func(t *testing.T, f *cacheFixture, secret string) {
			for _, wrong := range []string{"chit_cs_guess", secret[:len(secret)-1], secret + "x"} {
				refused(t, f, wrong, "a wrong secret")
			}
			if services, clients := f.reads.Load(), f.clientReads.Load(); services != 4 || clients != 4 {
				t.Fatalf("the store was read for %d service accounts and %d clients, want 4 and 4: once each per failure", services, clients)
			}
		}},
		{"deleted here, refused at once", func(t *testing.T, f *cacheFixture, secret string) {
			if err := f.server.DeleteServiceAccount(ctx, "billing"); err != nil {
				t.Fatal(err)
			}
			refused(t, f, secret, "a service deleted by this directory")
		}},
		{"rotated here, the old secret refused at once", func(t *testing.T, f *cacheFixture, secret string) {
			rotated, err := f.server.RotateServiceSecret(ctx, "billing", 0)
			if err != nil {
				t.Fatal(err)
			}
			refused(t, f, secret, "the secret a rotation without overlap replaced")
			accepted(t, f, rotated, "the rotated secret")
		}},
		{"rotated elsewhere, the old secret refused after the cache time", func(t *testing.T, f *cacheFixture, secret string) {
			rotated, err := f.operator.RotateServiceSecret(ctx, "billing", 0)
			if err != nil {
				t.Fatal(err)
			}
			accepted(t, f, rotated, "the rotated secret, at once")
			f.advance(time.Second)
			refused(t, f, secret, "the replaced secret after the cache time")
		}},
		{"deleted elsewhere, refused after the cache time", func(t *testing.T, f *cacheFixture, secret string) {
			if err := f.operator.DeleteServiceAccount(ctx, "billing"); err != nil {
				t.Fatal(err)
			}
			f.advance(time.Second)
			refused(t, f, secret, "a service deleted elsewhere, after the cache time")
		}},
		{"re-created elsewhere, the new secret works at once", func(t *testing.T, f *cacheFixture, secret string) {
			if err := f.operator.DeleteServiceAccount(ctx, "billing"); err != nil {
				t.Fatal(err)
			}
			accepted(t, f, createBilling(t, f.operator), "the re-created service's secret")
			refused(t, f, secret, "the old secret once the new one authenticated")
		}},
		{"taken over by a client elsewhere, the client's after the cache time", func(t *testing.T, f *cacheFixture, secret string) {
			if err := f.operator.DeleteServiceAccount(ctx, "billing"); err != nil {
				t.Fatal(err)
			}
			clientSecret, err := f.operator.CreateClient(ctx, "billing", []string{"https://billing.example/cb"}, true, storage.Grants{})
			if err != nil {
				t.Fatal(err)
			}
			f.advance(time.Second)
			refused(t, f, secret, "the deleted service's secret")
			client, err := f.server.AuthenticateClient(ctx, "billing", clientSecret)
			if err != nil || client.Service || !client.Confidential {
				t.Fatalf("the client's secret: %+v, %v; want the confidential client", client, err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newCacheFixture(t, time.Second)
			secret := createBilling(t, f.operator)
			accepted(t, f, secret, "the first authentication")
			tc.run(t, f, secret)
		})
	}
}
