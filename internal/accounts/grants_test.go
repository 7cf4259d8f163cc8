package accounts_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// Client ids and audiences never stand for each other, whatever their case,
// and Chit's own ids and audience are reserved.
func TestClientIDsAndAudiencesStayApart(t *testing.T) {
	ctx := context.Background()
	store, hasher := newStoreAndHasher(t)
	d := accounts.NewDirectory(accounts.Config{ServerAudience: "chit"}, accounts.Dependencies{Store: store, Hasher: hasher, Now: time.Now, Random: rand.Reader})
	if _, err := d.CreateServiceAccount(ctx, "billing", storage.Grants{AllowedAudiences: []string{"inventory"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateClient(ctx, "dashboard", []string{"https://d.example/cb"}, false, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		create func() error
		want   chiterr.Kind
	}{
		{"a service named like an audience", func() error { _, err := d.CreateServiceAccount(ctx, "inventory", storage.Grants{}); return err }, chiterr.AlreadyExists},
		{"a client named like an audience in another case", func() error {
			_, err := d.CreateClient(ctx, "Inventory", []string{"https://i.example/cb"}, false, storage.Grants{})
			return err
		}, chiterr.AlreadyExists},
		{"a service named like the server's audience", func() error { _, err := d.CreateServiceAccount(ctx, "CHIT", storage.Grants{}); return err }, chiterr.InvalidArgument},
		{"a service named like a first-party client", func() error { _, err := d.CreateServiceAccount(ctx, "chit-cli", storage.Grants{}); return err }, chiterr.InvalidArgument},
		{"a service named like a client in another case", func() error { _, err := d.CreateServiceAccount(ctx, "Dashboard", storage.Grants{}); return err }, chiterr.AlreadyExists},
		{"an audience naming a client", func() error {
			return d.SetServiceGrants(ctx, "billing", storage.Grants{AllowedAudiences: []string{"DASHBOARD"}})
		}, chiterr.InvalidArgument},
		{"an audience naming the server's own", func() error {
			return d.SetServiceGrants(ctx, "billing", storage.Grants{AllowedAudiences: []string{"chit"}})
		}, chiterr.InvalidArgument},
		{"a default scope that is not allowed", func() error {
			return d.SetServiceGrants(ctx, "billing", storage.Grants{DefaultScopes: []string{"read"}})
		}, chiterr.InvalidArgument},
		{"a service whose audience is its own id", func() error {
			_, err := d.CreateServiceAccount(ctx, "svcE", storage.Grants{AllowedAudiences: []string{"svce"}})
			return err
		}, chiterr.InvalidArgument},
		{"a client whose audience is its own id", func() error {
			_, err := d.CreateClient(ctx, "cz", []string{"https://cz.example/cb"}, false, storage.Grants{AllowedAudiences: []string{"cz"}})
			return err
		}, chiterr.InvalidArgument},
		{"a person granted an audience", func() error {
			return d.CreateUser(ctx, "alice", "wonderland", accounts.RoleUser, storage.Grants{AllowedAudiences: []string{"inventory"}})
		}, chiterr.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.create(); chiterr.KindOf(err) != tc.want || err == nil {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// The scope rule: defaults when nothing is asked, exactly the request when
// it is allowed, invalid_scope otherwise; a client narrows a person.
func TestGrantScopes(t *testing.T) {
	person := accounts.Principal{Subject: "alice", Role: accounts.RoleUser,
		Grants: storage.Grants{AllowedScopes: []string{"read", "write"}, DefaultScopes: []string{"read"}}}
	spa := accounts.Client{ID: "spa", Grants: storage.Grants{AllowedScopes: []string{"openid", "read"}, DefaultScopes: []string{"openid"}}}
	firstParty := accounts.FirstPartyClient(accounts.APIClientID)
	for _, tc := range []struct {
		name      string
		grantee   accounts.Grantee
		requested []string
		want      []string
		refused   bool
	}{
		{"first-party, nothing asked", accounts.Grantee{Principal: person, Client: firstParty}, nil, []string{"read"}, false},
		{"first-party, OIDC scopes are a person's", accounts.Grantee{Principal: person, Client: firstParty}, []string{"openid", "write"}, []string{"openid", "write"}, false},
		{"first-party, beyond the grants", accounts.Grantee{Principal: person, Client: firstParty}, []string{"admin"}, nil, true},
		{"a client's and the person's defaults", accounts.Grantee{Principal: person, Client: spa}, nil, []string{"read", "openid"}, false},
		{"a scope the client does not allow", accounts.Grantee{Principal: person, Client: spa}, []string{"write"}, nil, true},
		{"an OIDC scope the client does not allow", accounts.Grantee{Principal: person, Client: spa}, []string{"offline_access"}, nil, true},
		{"the OIDC identity scopes need no client grant", accounts.Grantee{Principal: person, Client: spa}, []string{"openid", "profile", "email"},
			[]string{"openid", "profile", "email"}, false},
		{"groups needs a client grant", accounts.Grantee{Principal: person, Client: spa}, []string{"openid", "groups"}, nil, true},
		{"groups granted to the client", accounts.Grantee{Principal: person, Client: accounts.Client{ID: "k8s", Grants: storage.Grants{AllowedScopes: []string{"groups"}}}},
			[]string{"openid", "groups"}, []string{"openid", "groups"}, false},
		{"first-party, groups and email are a person's", accounts.Grantee{Principal: person, Client: firstParty}, []string{"groups", "email"}, []string{"groups", "email"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.grantee.GrantScopes(tc.requested)
			if tc.refused {
				if chiterr.ReasonOf(err) != chiterr.ReasonInvalidScope {
					t.Errorf("got %v, %v; want invalid_scope", got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	service := accounts.Principal{Subject: "service:billing", Role: accounts.RoleService, Grants: storage.Grants{AllowedScopes: []string{"inventory:read"}}}
	for _, scope := range accounts.PersonScopes {
		if _, err := (accounts.Grantee{Principal: service}).GrantScopes([]string{scope}); chiterr.ReasonOf(err) != chiterr.ReasonInvalidScope {
			t.Errorf("a service asking for the OIDC scope %s: %v, want invalid_scope", scope, err)
		}
	}
}

// testFields name the lists as chitd's flags do.
var testFields = accounts.GrantFields{Allowed: "--scope", Default: "--default-scope", Audiences: "--audience"}

// What an operator grants is checked before anything is written, with a
// message naming what is wrong.
func TestNewGrantsRefusesMalformedInput(t *testing.T) {
	long := strings.Repeat("s", accounts.MaxScopeLength+1)
	many := make([]string, accounts.MaxGrantedScopes+1)
	for i := range many {
		many[i] = fmt.Sprintf("scope-%d", i)
	}
	for _, tc := range []struct {
		name                        string
		allowed, defaults, audience []string
		mention                     string
	}{
		{"an empty scope", []string{""}, nil, nil, "--scope"},
		{"a scope with a space", []string{"a b"}, nil, nil, "a b"},
		{"a scope with a quote", []string{`a"b`}, nil, nil, `a\"b`},
		{"a scope over the length", []string{long}, nil, nil, "longer than"},
		{"too many scopes", many, nil, nil, "at most"},
		{"an empty default scope", nil, []string{""}, nil, "--default-scope"},
		{"a malformed audience", nil, nil, []string{"in ventory"}, "audience"},
		{"an audience over the length", nil, nil, []string{strings.Repeat("a", 65)}, "audience"},
		{"too many audiences", nil, nil, many, "--audience: at most"},
		// A huge list of one repeated scope is refused by its length, before
		// duplicates are looked for (which grows with its square).
		{"a huge list of duplicates", slices.Repeat([]string{"a"}, 200_000), nil, nil, "--scope: at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := accounts.NewGrants(testFields, tc.allowed, tc.defaults, tc.audience)
			if chiterr.KindOf(err) != chiterr.InvalidArgument || !strings.Contains(chiterr.PublicMessage(err), tc.mention) {
				t.Errorf("got %v, want INVALID_ARGUMENT mentioning %q", err, tc.mention)
			}
		})
	}
	grants, err := accounts.NewGrants(testFields, []string{"a", "a", "b"}, []string{"a"}, []string{"inventory"})
	if err != nil || !slices.Equal(grants.AllowedScopes, []string{"a", "b"}) {
		t.Fatalf("NewGrants = %+v, %v; want duplicates dropped", grants, err)
	}
}
