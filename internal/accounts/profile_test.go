package accounts_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// What an operator says about a person is checked before anything is
// written; each refusal is InvalidArgument and names the field.
func TestCheckProfile(t *testing.T) {
	many := make([]string, accounts.MaxGroups+1)
	for i := range many {
		many[i] = fmt.Sprintf("group-%d", i)
	}
	for _, tc := range []struct {
		name    string
		profile storage.Profile
		mention string // "" when the profile is accepted
	}{
		{"nothing at all", storage.Profile{}, ""},
		{"a whole profile", storage.Profile{Email: "alice+chit@example.com", EmailVerified: true, DisplayName: "Alice Liddell-Ødegård 愛麗絲",
			Groups: []string{"readers", "team:payments", "/org/devs"}}, ""},
		{"an address on a domain literal", storage.Profile{Email: "root@[192.0.2.1]"}, ""},
		{"an address with a display name", storage.Profile{Email: "Alice <alice@example.com>"}, "email"},
		{"an address in angle brackets", storage.Profile{Email: "<alice@example.com>"}, "email"},
		{"an address with a comment", storage.Profile{Email: "alice@example.com (work)"}, "email"},
		{"two addresses", storage.Profile{Email: "alice@example.com, bob@example.com"}, "email"},
		{"no @", storage.Profile{Email: "alice"}, "email"},
		{"spaces around it", storage.Profile{Email: " alice@example.com"}, "email"},
		{"a line break after it", storage.Profile{Email: "alice@example.com\n"}, "email"},
		{"an address over the length", storage.Profile{Email: strings.Repeat("a", 243) + "@example.com"}, "email: at most"},
		{"verified without an email", storage.Profile{EmailVerified: true}, "email_verified"},
		{"a display name at the length", storage.Profile{DisplayName: strings.Repeat("é", accounts.MaxDisplayNameLength)}, ""},
		{"a display name over the length", storage.Profile{DisplayName: strings.Repeat("é", accounts.MaxDisplayNameLength+1)}, "display_name"},
		{"a display name with a control character", storage.Profile{DisplayName: "Alice\x00"}, "display_name"},
		{"a display name with a line break", storage.Profile{DisplayName: "Alice\nLiddell"}, "display_name"},
		{"a display name not UTF-8", storage.Profile{DisplayName: "Alice\xff"}, "display_name"},
		{"an empty group", storage.Profile{Groups: []string{""}}, "groups"},
		{"a group with a space", storage.Profile{Groups: []string{"a b"}}, "groups"},
		{"a group with a quote", storage.Profile{Groups: []string{`a"b`}}, "groups"},
		{"a group not ASCII", storage.Profile{Groups: []string{"grüppe"}}, "groups"},
		{"a group over the length", storage.Profile{Groups: []string{strings.Repeat("g", accounts.MaxGroupLength+1)}}, "groups"},
		{"too many groups", storage.Profile{Groups: many}, "groups: at most"},
		{"a huge list of one group", storage.Profile{Groups: slices.Repeat([]string{"a"}, 100_000)}, "groups: at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := accounts.CheckProfile(tc.profile)
			if tc.mention == "" {
				if err != nil || got.Email != tc.profile.Email || got.DisplayName != tc.profile.DisplayName || !slices.Equal(got.Groups, tc.profile.Groups) {
					t.Fatalf("got %+v, %v; want it accepted as it is", got, err)
				}
				return
			}
			if chiterr.KindOf(err) != chiterr.InvalidArgument || !strings.Contains(chiterr.PublicMessage(err), tc.mention) {
				t.Fatalf("got %v; want InvalidArgument naming %q", err, tc.mention)
			}
		})
	}
	got, err := accounts.CheckProfile(storage.Profile{Groups: []string{"b", "a", "b"}})
	if err != nil || !slices.Equal(got.Groups, []string{"b", "a"}) {
		t.Fatalf("duplicate groups: %v, %v; want them dropped, the order kept", got.Groups, err)
	}
}

// SetUserProfile changes the fields it is told to and keeps the others; a
// new address is unverified unless the change says otherwise; a refused
// change changes nothing.
func TestSetUserProfile(t *testing.T) {
	ctx := context.Background()
	d := newDirectory(t)
	start := storage.Profile{Email: "alice@example.com", EmailVerified: true, DisplayName: "Alice", Groups: []string{"readers"}}
	if err := d.AddUser(ctx, accounts.NewUser{Name: "alice", Password: "long enough", Role: accounts.RoleUser, Profile: start}); err != nil {
		t.Fatal(err)
	}
	if user, err := d.GetUser(ctx, "alice"); err != nil || user.Email != start.Email || !user.EmailVerified || user.DisplayName != "Alice" {
		t.Fatalf("AddUser stored %+v, %v", user.Profile, err)
	}
	steps := []struct {
		name   string
		change storage.Profile
		fields accounts.ProfileFields
		want   storage.Profile
	}{
		{"the groups alone", storage.Profile{Groups: []string{"writers", "readers"}}, accounts.ProfileFields{Groups: true},
			storage.Profile{Email: "alice@example.com", EmailVerified: true, DisplayName: "Alice", Groups: []string{"writers", "readers"}}},
		{"the same address again stays verified", storage.Profile{Email: "alice@example.com"}, accounts.ProfileFields{Email: true},
			storage.Profile{Email: "alice@example.com", EmailVerified: true, DisplayName: "Alice", Groups: []string{"writers", "readers"}}},
		{"a new address is unverified", storage.Profile{Email: "alice@example.org"}, accounts.ProfileFields{Email: true},
			storage.Profile{Email: "alice@example.org", DisplayName: "Alice", Groups: []string{"writers", "readers"}}},
		{"a new address said to be verified", storage.Profile{Email: "a@example.net", EmailVerified: true}, accounts.ProfileFields{Email: true, EmailVerified: true},
			storage.Profile{Email: "a@example.net", EmailVerified: true, DisplayName: "Alice", Groups: []string{"writers", "readers"}}},
		{"the whole profile cleared", storage.Profile{}, accounts.AllProfileFields, storage.Profile{}},
	}
	for _, step := range steps {
		if err := d.SetUserProfile(ctx, "alice", step.change, step.fields); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		user, err := d.GetUser(ctx, "alice")
		if err != nil || user.Email != step.want.Email || user.EmailVerified != step.want.EmailVerified || user.DisplayName != step.want.DisplayName ||
			!slices.Equal(user.Groups, step.want.Groups) {
			t.Fatalf("%s: the profile is %+v, %v; want %+v", step.name, user.Profile, err, step.want)
		}
	}
	if err := d.SetUserProfile(ctx, "alice", storage.Profile{EmailVerified: true}, accounts.ProfileFields{EmailVerified: true}); chiterr.KindOf(err) != chiterr.InvalidArgument ||
		!strings.Contains(err.Error(), "email_verified") {
		t.Fatalf("verifying no address: %v", err)
	}
	if err := d.SetUserProfile(ctx, "alice", storage.Profile{Email: "Alice <a@example.com>", DisplayName: "kept out"}, accounts.AllProfileFields); chiterr.KindOf(err) != chiterr.InvalidArgument {
		t.Fatalf("a bad address: %v", err)
	}
	if user, _ := d.GetUser(ctx, "alice"); user.DisplayName != "" || user.Email != "" {
		t.Fatalf("a refused change was applied: %+v", user.Profile)
	}
	if err := d.SetUserProfile(ctx, "nobody", storage.Profile{}, accounts.AllProfileFields); chiterr.KindOf(err) != chiterr.NotFound {
		t.Fatalf("the profile of nobody: %v", err)
	}
	if err := d.AddUser(ctx, accounts.NewUser{Name: "bob", Password: "long enough", Role: accounts.RoleUser, Profile: storage.Profile{Email: "bob"}}); chiterr.KindOf(err) != chiterr.InvalidArgument {
		t.Fatalf("AddUser with a bad address: %v", err)
	}
	if _, err := d.GetUser(ctx, "bob"); chiterr.KindOf(err) != chiterr.NotFound {
		t.Fatalf("a refused AddUser left a user: %v", err)
	}
}

func TestParseProfileFields(t *testing.T) {
	if fields, err := accounts.ParseProfileFields(nil); err != nil || fields != accounts.AllProfileFields {
		t.Fatalf("no mask: %+v, %v; want every field", fields, err)
	}
	if fields, err := accounts.ParseProfileFields([]string{"groups", "email_verified"}); err != nil || fields != (accounts.ProfileFields{Groups: true, EmailVerified: true}) {
		t.Fatalf("groups and email_verified: %+v, %v", fields, err)
	}
	for _, bad := range []string{"name", "role", "displayName", ""} {
		if _, err := accounts.ParseProfileFields([]string{bad}); chiterr.KindOf(err) != chiterr.InvalidArgument || !strings.Contains(err.Error(), "update_mask") {
			t.Errorf("path %q: %v; want InvalidArgument naming update_mask", bad, err)
		}
	}
}
