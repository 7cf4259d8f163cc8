package tokens_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/tokens"
)

// Each scope releases its claims and no others; a claim without a value is
// left out rather than sent empty.
func TestProfileClaims(t *testing.T) {
	full := accounts.Principal{Subject: "alice", Name: "alice", Role: accounts.RoleUser, Profile: storage.Profile{
		Email: "alice@example.com", EmailVerified: true, DisplayName: "Alice Liddell", Groups: []string{"readers", "ops"}}}
	bare := accounts.Principal{Subject: "bob", Name: "bob", Role: accounts.RoleUser}
	service := accounts.Principal{Subject: "service:billing", Name: "billing", Role: accounts.RoleService}
	for _, tc := range []struct {
		name      string
		principal accounts.Principal
		scopes    []string
		want      map[string]any
	}{
		{"openid alone", full, []string{"openid"}, map[string]any{}},
		{"profile", full, []string{"openid", "profile"}, map[string]any{"preferred_username": "alice", "name": "Alice Liddell"}},
		{"email", full, []string{"openid", "email"}, map[string]any{"email": "alice@example.com", "email_verified": true}},
		{"groups", full, []string{"openid", "groups"}, map[string]any{"groups": []string{"readers", "ops"}}},
		{"every scope", full, []string{"openid", "profile", "email", "groups", "offline_access"}, map[string]any{"preferred_username": "alice",
			"name": "Alice Liddell", "email": "alice@example.com", "email_verified": true, "groups": []string{"readers", "ops"}}},
		{"a scope that is no claim's", full, []string{"reports:read"}, map[string]any{}},
		{"a person without a profile", bare, []string{"openid", "profile", "email", "groups"}, map[string]any{"preferred_username": "bob"}},
		{"an unverified address", accounts.Principal{Subject: "carol", Profile: storage.Profile{Email: "carol@example.com"}}, []string{"email"},
			map[string]any{"email": "carol@example.com", "email_verified": false}},
		{"a service account", service, []string{"openid", "profile", "email", "groups"}, map[string]any{"preferred_username": "service:billing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tokens.ProfileClaims(tc.principal, tc.scopes); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	claims := tokens.ProfileClaims(full, []string{"groups"})
	claims["groups"].([]string)[0] = "changed"
	if full.Profile.Groups[0] != "readers" {
		t.Fatal("the groups claim shares the principal's slice")
	}
}

// An ID token states the profile claims of its scopes, read with the
// person; userinfo states them as stored now, and refuses a token whose
// person is gone.
func TestIDTokenAndUserinfoStateTheProfile(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	profile := storage.Profile{Email: "alice@example.com", EmailVerified: true, DisplayName: "Alice Liddell", Groups: []string{"readers"}}
	if err := f.operator.SetUserProfile(ctx, "alice", profile, accounts.AllProfileFields); err != nil {
		t.Fatal(err)
	}
	principal, err := f.service.Directory.LookupUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	scopes := []string{"openid", "email", "groups"}
	grant, err := f.service.IssueForLogin(ctx, tokens.Login{
		Grantee: accounts.Grantee{Principal: principal, Client: apiClient}, FamilyID: "f", Scopes: scopes,
		IDToken: &tokens.IDTokenRequest{ClientID: "dashboard", AuthTime: f.clock.Now(), Scopes: scopes},
	})
	if err != nil {
		t.Fatal(err)
	}
	idToken, err := jwt.ParseInsecure([]byte(grant.IDToken))
	if err != nil {
		t.Fatal(err)
	}
	stated := idToken.PrivateClaims()
	if stated["email"] != "alice@example.com" || stated["email_verified"] != true || !reflect.DeepEqual(stated["groups"], []any{"readers"}) {
		t.Fatalf("the ID token states %v; want the email, its verification and the groups", stated)
	}
	for _, absent := range []string{"name", "preferred_username"} {
		if _, has := stated[absent]; has {
			t.Errorf("the ID token states %s without the profile scope: %v", absent, stated)
		}
	}

	claims, err := f.service.Authenticate(ctx, grant.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.operator.SetUserProfile(ctx, "alice", storage.Profile{Groups: []string{"writers"}}, accounts.ProfileFields{Groups: true}); err != nil {
		t.Fatal(err)
	}
	answer, err := f.service.Userinfo(ctx, claims)
	want := map[string]any{"sub": "alice", "role": "USER", "email": "alice@example.com", "email_verified": true, "groups": []string{"writers"}}
	if err != nil || !reflect.DeepEqual(answer, want) {
		t.Fatalf("userinfo = %v, %v; want %v (the groups as they are now)", answer, err, want)
	}
	if err := f.operator.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	_, err = f.service.Userinfo(ctx, claims)
	wantKind(t, err, chiterr.Unauthenticated)
	// Without a scope that needs the record, userinfo reads nothing.
	claims.Scopes = []string{"openid"}
	if answer, err := f.service.Userinfo(ctx, claims); err != nil || !reflect.DeepEqual(answer, map[string]any{"sub": "alice", "role": "USER"}) {
		t.Fatalf("userinfo for openid alone = %v, %v", answer, err)
	}
}
