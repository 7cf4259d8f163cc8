package storagetest

import (
	"context"
	"slices"
	"testing"

	"github.com/chit-auth/chit/internal/storage"
)

func sameProfile(a, b storage.Profile) bool {
	return a.Email == b.Email && a.EmailVerified == b.EmailVerified && a.DisplayName == b.DisplayName && slices.Equal(a.Groups, b.Groups)
}

// A person's profile (the email, profile and groups claims) is stored with
// them, read back by every read of a user (including a refresh's), changed
// by UpdateUser and cleared by it.
func testProfileRoundTrip(t *testing.T, s storage.Store) {
	ctx := context.Background()
	profile := storage.Profile{Email: "dana+chit@example.com", EmailVerified: true, DisplayName: "Dana Ødegård-Ng 田中", Groups: []string{"ops", "team:payments", "/org/devs"}}
	grants := storage.Grants{AllowedScopes: []string{"reports:read"}}
	if err := s.CreateUser(ctx, storage.User{Name: "dana", PasswordHash: "h", Role: "USER", Grants: grants, Profile: profile, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, storage.User{Name: "eve", PasswordHash: "h", Role: "USER", CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	user, err := s.GetUser(ctx, "dana")
	if err != nil || !sameProfile(user.Profile, profile) || !sameGrants(user.Grants, grants) {
		t.Fatalf("GetUser = %+v, %v; want profile %+v", user, err, profile)
	}
	users, err := s.ListUsers(ctx, storage.Page{})
	if err != nil || len(users) != 2 || !sameProfile(users[0].Profile, profile) || !sameProfile(users[1].Profile, storage.Profile{}) {
		t.Fatalf("ListUsers = %+v, %v; want dana's profile and eve's empty one", users, err)
	}
	if len(users[1].Groups) != 0 || users[1].Email != "" || users[1].EmailVerified || users[1].DisplayName != "" {
		t.Fatalf("a user created without a profile reads %+v", users[1].Profile)
	}
	token := newRefreshToken(t, "dana")
	if err := s.CreateRefreshToken(ctx, token); err != nil {
		t.Fatal(err)
	}
	if _, withUser, err := s.GetRefreshTokenWithUser(ctx, loginOf(token), token.Hash); err != nil || withUser == nil || !sameProfile(withUser.Profile, profile) {
		t.Fatalf("GetRefreshTokenWithUser's user = %+v, %v; want profile %+v", withUser, err, profile)
	}

	changed := storage.Profile{Email: "dana@example.org", DisplayName: "Dana", Groups: []string{"ops"}}
	err = s.UpdateUser(ctx, "dana", func(user *storage.User) (*storage.SubjectRevocation, error) {
		if !sameProfile(user.Profile, profile) {
			t.Errorf("UpdateUser handed over profile %+v, want %+v", user.Profile, profile)
		}
		user.Profile = changed
		return nil, nil
	})
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if user, err := s.GetUser(ctx, "dana"); err != nil || !sameProfile(user.Profile, changed) || user.Role != "USER" || !sameGrants(user.Grants, grants) {
		t.Fatalf("after UpdateUser = %+v, %v; want profile %+v and the role and grants kept", user, err, changed)
	}
	err = s.UpdateUser(ctx, "dana", func(user *storage.User) (*storage.SubjectRevocation, error) {
		user.Role = "ADMIN"
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if user, _ := s.GetUser(ctx, "dana"); !sameProfile(user.Profile, changed) {
		t.Fatalf("an update of the role changed the profile: %+v", user.Profile)
	}
	err = s.UpdateUser(ctx, "dana", func(user *storage.User) (*storage.SubjectRevocation, error) {
		user.Profile = storage.Profile{}
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if user, _ := s.GetUser(ctx, "dana"); !sameProfile(user.Profile, storage.Profile{}) {
		t.Fatalf("a cleared profile reads %+v", user.Profile)
	}
}
