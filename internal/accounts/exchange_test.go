package accounts_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// A token exchange policy names valid, distinct audiences; impersonation
// needs some; Chit's own clients and the service's own id are refused, the
// server's audience and another service's id are not.
func TestTokenExchangePolicy(t *testing.T) {
	ctx := context.Background()
	d := newDirectory(t)
	for _, tc := range []struct {
		name          string
		audiences     []string
		impersonation bool
		refused       string
	}{
		{"impersonation without audiences", nil, true, "impersonation"},
		{"an invalid name", []string{"no spaces"}, false, "audience"},
		{"too many", slices.Repeat([]string{"a"}, accounts.MaxTokenExchangeAudiences+1), false, "at most"},
	} {
		if _, err := accounts.NewTokenExchange(tc.audiences, tc.impersonation); chiterr.KindOf(err) != chiterr.InvalidArgument || !strings.Contains(err.Error(), tc.refused) {
			t.Errorf("%s: %v, want INVALID_ARGUMENT naming %q", tc.name, err, tc.refused)
		}
	}
	policy, err := accounts.NewTokenExchange([]string{"orders", "orders", "chit"}, false)
	if err != nil || !slices.Equal(policy.Audiences, []string{"orders", "chit"}) {
		t.Fatalf("NewTokenExchange = %+v, %v", policy, err)
	}
	if _, err := d.AddServiceAccount(ctx, accounts.NewServiceAccount{Name: "gateway", TokenExchange: policy}); err != nil {
		t.Fatal(err)
	}
	for _, audience := range []string{"chit-api", "CHIT-CLI", "gateway"} {
		if err := d.SetServiceTokenExchange(ctx, "gateway", storage.TokenExchange{Audiences: []string{audience}}); chiterr.KindOf(err) != chiterr.InvalidArgument {
			t.Errorf("exchange audience %q: %v, want INVALID_ARGUMENT", audience, err)
		}
		if _, err := d.AddServiceAccount(ctx, accounts.NewServiceAccount{Name: "other", TokenExchange: storage.TokenExchange{Audiences: []string{audience, "other"}}}); audience != "gateway" && err == nil {
			t.Errorf("a new service exchanging for %q was made", audience)
		}
	}
	if err := d.SetServiceTokenExchange(ctx, "nobody", storage.TokenExchange{}); chiterr.KindOf(err) != chiterr.NotFound {
		t.Errorf("a missing service: %v", err)
	}
	if account, _ := d.GetServiceAccount(ctx, "gateway"); !slices.Equal(account.TokenExchange.Audiences, []string{"orders", "chit"}) {
		t.Errorf("a refused change was stored: %+v", account.TokenExchange)
	}
	// A client may be allowed the service's id as an audience: tokens
	// addressed to it, for it to exchange.
	if _, err := d.CreateClient(ctx, "portal", []string{"https://portal.example/cb"}, true, storage.Grants{AllowedAudiences: []string{"gateway"}}); err != nil {
		t.Fatalf("a client allowed a service's id as audience: %v", err)
	}
}
