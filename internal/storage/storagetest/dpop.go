package storagetest

import (
	"context"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

// testClientRequireDPoP: a client's DPoP requirement round-trips through
// every read, an update sets and clears it, and other updates keep it.
func testClientRequireDPoP(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := s.CreateClient(ctx, storage.Client{ID: "plain", CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, storage.Client{ID: "spa", RequireDPoP: true, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetClient(ctx, "plain"); err != nil || got.RequireDPoP {
		t.Fatalf("a client created without the requirement: %+v, %v", got, err)
	}
	if got, err := s.GetClient(ctx, "spa"); err != nil || !got.RequireDPoP {
		t.Fatalf("GetClient = %+v, %v; want RequireDPoP", got, err)
	}
	listed, err := s.ListClients(ctx, storage.Page{})
	if err != nil || len(listed) != 2 || listed[0].RequireDPoP || !listed[1].RequireDPoP {
		t.Fatalf("ListClients = %+v, %v", listed, err)
	}
	setRequirement := func(required bool) {
		t.Helper()
		if err := s.UpdateClient(ctx, "plain", func(c *storage.Client) (*storage.SubjectRevocation, error) {
			c.RequireDPoP = required
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetClient(ctx, "plain"); err != nil || got.RequireDPoP != required {
			t.Fatalf("after setting it to %v: %+v, %v", required, got, err)
		}
	}
	setRequirement(true)
	if err := s.UpdateClient(ctx, "plain", func(c *storage.Client) (*storage.SubjectRevocation, error) {
		c.AllowedScopes = []string{"read"}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetClient(ctx, "plain"); !got.RequireDPoP {
		t.Fatalf("a grants update lost the requirement: %+v", got)
	}
	setRequirement(false)
}

// testServiceAccountRequireDPoP is testClientRequireDPoP for service
// accounts.
func testServiceAccountRequireDPoP(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: "plain", SecretHash: randomHash(t), CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: "worker", SecretHash: randomHash(t), RequireDPoP: true, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetServiceAccount(ctx, "plain"); err != nil || got.RequireDPoP {
		t.Fatalf("an account created without the requirement: %+v, %v", got, err)
	}
	if got, err := s.GetServiceAccount(ctx, "worker"); err != nil || !got.RequireDPoP {
		t.Fatalf("GetServiceAccount = %+v, %v; want RequireDPoP", got, err)
	}
	listed, err := s.ListServiceAccounts(ctx, storage.Page{})
	if err != nil || len(listed) != 2 || listed[0].RequireDPoP || !listed[1].RequireDPoP {
		t.Fatalf("ListServiceAccounts = %+v, %v", listed, err)
	}
	setRequirement := func(required bool) {
		t.Helper()
		if err := s.UpdateServiceAccount(ctx, "plain", func(a *storage.ServiceAccount) (*storage.SubjectRevocation, error) {
			a.RequireDPoP = required
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetServiceAccount(ctx, "plain"); err != nil || got.RequireDPoP != required {
			t.Fatalf("after setting it to %v: %+v, %v", required, got, err)
		}
	}
	setRequirement(true)
	if err := s.UpdateServiceAccount(ctx, "plain", func(a *storage.ServiceAccount) (*storage.SubjectRevocation, error) {
		a.SecretHash, a.AllowedScopes = randomHash(t), []string{"read"}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetServiceAccount(ctx, "plain"); !got.RequireDPoP {
		t.Fatalf("a secret and grants update lost the requirement: %+v", got)
	}
	setRequirement(false)
}

// testRefreshTokenKeyBinding: the DPoP key a login is bound to is read back
// by every read of its record, for its current token and the one before,
// and kept by its rotations; a login bound to none reads "".
func testRefreshTokenKeyBinding(t *testing.T, s storage.Store) {
	ctx := context.Background()
	const thumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	if err := s.CreateUser(ctx, storage.User{Name: "alice", PasswordHash: "h", Role: "USER", CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	unbound := newRefreshToken(t, "alice")
	bound := newRefreshToken(t, "alice")
	bound.DPoPKeyThumbprint = thumbprint
	for _, token := range []storage.RefreshToken{unbound, bound} {
		if err := s.CreateRefreshToken(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	// reads are every read of a token of the login's record.
	reads := func(token storage.RefreshToken) map[string]func() (storage.RefreshToken, error) {
		return map[string]func() (storage.RefreshToken, error){
			"GetRefreshToken": func() (storage.RefreshToken, error) { return s.GetRefreshToken(ctx, loginOf(token), token.Hash) },
			"GetRefreshTokenWithUser": func() (storage.RefreshToken, error) {
				got, _, err := s.GetRefreshTokenWithUser(ctx, loginOf(token), token.Hash)
				return got, err
			},
			"GetRefreshLogin": func() (storage.RefreshToken, error) { return s.GetRefreshLogin(ctx, token.FamilyID) },
		}
	}
	expect := func(what string, token storage.RefreshToken, want string) {
		t.Helper()
		for name, read := range reads(token) {
			if name == "GetRefreshLogin" && token.Generation == 0 {
				continue // a record of one token is no login's record
			}
			got, err := read()
			if err != nil || got.DPoPKeyThumbprint != want {
				t.Fatalf("%s: %s = %q, %v; want %q", what, name, got.DPoPKeyThumbprint, err, want)
			}
		}
	}
	expect("an unbound login", unbound, "")
	expect("a bound login", bound, thumbprint)

	// Rotation replaces the current token in place: the binding stays, for
	// the successor and for the token it replaced (answered within the
	// grace period).
	second := successorOf(t, bound, base.Add(time.Minute))
	if err := s.RotateRefreshToken(ctx, bound.Hash, second, []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	third := successorOf(t, second, base.Add(2*time.Minute))
	if err := s.RotateRefreshToken(ctx, second.Hash, third, []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	expect("the current token after two rotations", third, thumbprint)
	if previous, err := s.GetRefreshToken(ctx, loginOf(second), second.Hash); err != nil || previous.RotatedAt.IsZero() || previous.DPoPKeyThumbprint != thumbprint {
		t.Fatalf("the token before the current one = %+v, %v; want it rotated and bound to %q", previous, err, thumbprint)
	}
	if err := s.RotateRefreshToken(ctx, unbound.Hash, successorOf(t, unbound, base.Add(time.Minute)), nil); err != nil {
		t.Fatal(err)
	}
	if login, err := s.GetRefreshLogin(ctx, unbound.FamilyID); err != nil || login.DPoPKeyThumbprint != "" {
		t.Fatalf("an unbound login after a rotation = %q, %v", login.DPoPKeyThumbprint, err)
	}

	// A record of one token (from before logins kept one record, and before
	// DPoP) has no binding; the login's record its rotation starts has the
	// successor's.
	legacy := newRefreshToken(t, "alice")
	legacy.Generation, legacy.LoginSalt = 0, nil
	if err := s.CreateRefreshToken(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	expect("a record of one token", legacy, "")
	successor := successorOf(t, legacy, base.Add(time.Minute))
	successor.LoginSalt, successor.DPoPKeyThumbprint = []byte("salt"), thumbprint
	if err := s.RotateRefreshToken(ctx, legacy.Hash, successor, []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	expect("the login's record a record of one token's rotation started", successor, thumbprint)
	if old, err := s.GetRefreshToken(ctx, loginOf(legacy), legacy.Hash); err != nil || old.RotatedAt.IsZero() || old.DPoPKeyThumbprint != "" {
		t.Fatalf("the rotated record of one token = %+v, %v", old, err)
	}
}
