package accounts_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

func (f *cacheFixture) authenticate(id, secret string) error {
	_, err := f.server.AuthenticateClient(context.Background(), id, secret)
	return err
}

// A registered client's token requests within the cache time read it
// once: a device polling every few seconds costs its poll alone. Public and
// confidential clients alike.
func TestClientAuthenticationsWithinTheCacheTimeReadTheStoreOnce(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, time.Second)
	if _, err := f.operator.CreateClient(ctx, "tv", []string{"http://127.0.0.1/cb"}, false, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	secret, err := f.operator.CreateClient(ctx, "portal", []string{"https://portal.example/cb"}, true, storage.Grants{})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err := f.authenticate("tv", ""); err != nil {
			t.Fatal(err)
		}
		if err := f.authenticate("portal", secret); err != nil {
			t.Fatal(err)
		}
		f.advance(50 * time.Millisecond)
	}
	if n := f.clientReads.Load(); n != 2 {
		t.Fatalf("the store was read %d times for two clients, want 2", n)
	}
	f.advance(time.Second)
	if err := f.authenticate("tv", ""); err != nil {
		t.Fatal(err)
	}
	if n := f.clientReads.Load(); n != 3 {
		t.Fatalf("after the cache time the store was read %d times in all, want 3", n)
	}
}

// The cache answers only an authentication that succeeds against it: a
// wrong secret, or a secret sent by a public client, reads the store and
// fails, as an unknown id does.
func TestCachedClientStillRefusesAWrongSecret(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, time.Minute)
	secret, err := f.operator.CreateClient(ctx, "portal", []string{"https://portal.example/cb"}, true, storage.Grants{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.operator.CreateClient(ctx, "tv", []string{"http://127.0.0.1/cb"}, false, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	if err := f.authenticate("portal", secret); err != nil {
		t.Fatal(err)
	}
	if err := f.authenticate("tv", ""); err != nil {
		t.Fatal(err)
	}
	before := f.clientReads.Load()
	for _, attempt := range []struct{ id, secret string }{{"portal", "wrong"}, {"portal", ""}, {"tv", "made-up"}} {
		if err := f.authenticate(attempt.id, attempt.secret); chiterr.KindOf(err) != chiterr.Unauthenticated {
			t.Fatalf("%s with %q: %v", attempt.id, attempt.secret, err)
		}
	}
	if n := f.clientReads.Load() - before; n != 3 {
		t.Fatalf("three failed authentications read the store %d times, want 3", n)
	}
}

// A change made on this server takes effect at once (the entry is
// forgotten after the write); one made elsewhere (the operator's
// directory: chitd, another replica) once the entry expires.
func TestClientChangesAndTheCache(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, time.Second)
	secret, err := f.server.CreateClient(ctx, "portal", []string{"https://portal.example/cb"}, true, storage.Grants{AllowedScopes: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.authenticate("portal", secret); err != nil {
		t.Fatal(err)
	}
	rotated, err := f.server.RotateClientSecret(ctx, "portal")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.authenticate("portal", secret); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("the old secret after a rotation on this server: %v", err)
	}
	if err := f.server.SetClientGrants(ctx, "portal", storage.Grants{AllowedScopes: []string{"read", "write"}}); err != nil {
		t.Fatal(err)
	}
	client, err := f.server.AuthenticateClient(ctx, "portal", rotated)
	if err != nil || !slices.Contains(client.Grants.AllowedScopes, "write") {
		t.Fatalf("grants after a change on this server: %+v %v", client.Grants, err)
	}
	// Elsewhere: seen when the entry expires.
	if err := f.operator.DeleteClient(ctx, "portal"); err != nil {
		t.Fatal(err)
	}
	f.advance(time.Second)
	if err := f.authenticate("portal", rotated); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("a client deleted elsewhere, after the cache time: %v", err)
	}
	// Deleted here: at once.
	if _, err := f.server.CreateClient(ctx, "tv", []string{"http://127.0.0.1/cb"}, false, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	if err := f.authenticate("tv", ""); err != nil {
		t.Fatal(err)
	}
	if err := f.server.DeleteClient(ctx, "tv"); err != nil {
		t.Fatal(err)
	}
	if err := f.authenticate("tv", ""); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("a client deleted on this server: %v", err)
	}
}

// With the cache off (0s), every authentication reads the store.
func TestClientCacheOff(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, 0)
	if _, err := f.operator.CreateClient(ctx, "tv", []string{"http://127.0.0.1/cb"}, false, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := f.authenticate("tv", ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.clientReads.Load(); n != 3 {
		t.Fatalf("%d reads, want 3", n)
	}
}

// That an id is no client's is remembered for the cache time: a token
// exchange asks for each audience it addresses. A client registered under
// it on this server is seen at once; elsewhere, once the entry expires.
func TestIsRegisteredClientRemembersAbsentIDs(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, time.Second)
	for range 5 {
		if client, err := f.server.IsRegisteredClient(ctx, "ledger"); err != nil || client {
			t.Fatalf("ledger: %v %v", client, err)
		}
	}
	if n := f.clientReads.Load(); n != 1 {
		t.Fatalf("%d reads for five questions, want 1", n)
	}
	if _, err := f.operator.CreateClient(ctx, "ledger", []string{"https://ledger.example/cb"}, false, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	f.advance(time.Second)
	if client, err := f.server.IsRegisteredClient(ctx, "ledger"); err != nil || !client {
		t.Fatalf("a client registered elsewhere, after the cache time: %v %v", client, err)
	}
	if client, _ := f.server.IsRegisteredClient(ctx, "books"); client {
		t.Fatal("books is no client")
	}
	if _, err := f.server.CreateClient(ctx, "books", []string{"https://books.example/cb"}, false, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	if client, err := f.server.IsRegisteredClient(ctx, "books"); err != nil || !client {
		t.Fatalf("a client registered on this server, at once: %v %v", client, err)
	}
	for _, id := range []string{"chit-api", "chit-cli"} {
		if client, _ := f.server.IsRegisteredClient(ctx, id); !client {
			t.Fatalf("%s is Chit's own client", id)
		}
	}
}
