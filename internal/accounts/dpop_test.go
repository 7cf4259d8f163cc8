package accounts_test

import (
	"context"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// A client's DPoP requirement is what it was registered with, changed by
// SetClientRequireDPoP, and seen at once by the directory that changed it
// even while the client is cached; Chit's own clients require none.
func TestClientRequireDPoP(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, time.Minute)
	if _, err := f.server.RegisterClient(ctx, accounts.ClientRegistration{ID: "spa", RedirectURIs: []string{"https://spa.example/cb"}, RequireDPoP: true}); err != nil {
		t.Fatal(err)
	}
	secret, err := f.server.CreateClient(ctx, "portal", []string{"https://portal.example/cb"}, true, storage.Grants{})
	if err != nil {
		t.Fatal(err)
	}
	requires := func(id, secret string) bool {
		t.Helper()
		client, err := f.server.AuthenticateClient(ctx, id, secret)
		if err != nil {
			t.Fatal(err)
		}
		looked, err := f.server.LookupClient(ctx, id)
		if err != nil || looked.RequireDPoP != client.RequireDPoP {
			t.Fatalf("LookupClient(%q) = %+v, %v; AuthenticateClient said RequireDPoP %v", id, looked, err, client.RequireDPoP)
		}
		return client.RequireDPoP
	}
	if !requires("spa", "") || requires("portal", secret) {
		t.Fatal("the registered requirements were not kept")
	}
	for _, id := range accounts.FirstPartyClientIDs {
		if requires(id, "") {
			t.Errorf("Chit's own client %q requires DPoP", id)
		}
	}
	if err := f.server.SetClientRequireDPoP(ctx, "portal", true); err != nil {
		t.Fatal(err)
	}
	if err := f.server.SetClientRequireDPoP(ctx, "spa", false); err != nil {
		t.Fatal(err)
	}
	if !requires("portal", secret) || requires("spa", "") {
		t.Fatal("a change on this server was not seen at once")
	}
	if stored, err := f.server.GetClient(ctx, "portal"); err != nil || !stored.RequireDPoP {
		t.Fatalf("GetClient = %+v, %v", stored, err)
	}
	if err := f.server.SetClientRequireDPoP(ctx, "nobody", true); chiterr.KindOf(err) != chiterr.NotFound {
		t.Fatalf("an unknown client: %v, want NOT_FOUND", err)
	}
}

// A service account's DPoP requirement reaches its principal (client
// credentials) and the client it acts as; a change on this server is seen
// at once, one made elsewhere once the cached entry expires.
func TestServiceAccountRequireDPoP(t *testing.T) {
	ctx := context.Background()
	f := newCacheFixture(t, time.Second)
	secret, err := f.server.AddServiceAccount(ctx, accounts.NewServiceAccount{Name: "billing", RequireDPoP: true})
	if err != nil {
		t.Fatal(err)
	}
	requires := func() bool {
		t.Helper()
		principal, err := f.server.AuthenticateService(ctx, "billing", secret)
		if err != nil {
			t.Fatal(err)
		}
		client, err := f.server.AuthenticateClient(ctx, "billing", secret)
		if err != nil || !client.Service || client.RequireDPoP != principal.RequireDPoP {
			t.Fatalf("AuthenticateClient = %+v, %v; the principal said RequireDPoP %v", client, err, principal.RequireDPoP)
		}
		return principal.RequireDPoP
	}
	if !requires() {
		t.Fatal("the requirement the account was created with was not kept")
	}
	if err := f.server.SetServiceAccountRequireDPoP(ctx, "billing", false); err != nil {
		t.Fatal(err)
	}
	if requires() {
		t.Fatal("a change on this server was not seen at once")
	}
	if err := f.operator.SetServiceAccountRequireDPoP(ctx, "billing", true); err != nil {
		t.Fatal(err)
	}
	if requires() {
		t.Fatal("a change elsewhere was seen before the cached entry expired: the cache was not used")
	}
	f.advance(time.Second)
	if !requires() {
		t.Fatal("a change elsewhere was not seen after the cache time")
	}
	if account, err := f.server.GetServiceAccount(ctx, "billing"); err != nil || !account.RequireDPoP {
		t.Fatalf("GetServiceAccount = %+v, %v", account, err)
	}
	if err := f.server.SetServiceAccountRequireDPoP(ctx, "nobody", true); chiterr.KindOf(err) != chiterr.NotFound {
		t.Fatalf("an unknown service: %v, want NOT_FOUND", err)
	}
}
