package tokens_test

import (
	"context"
	"testing"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/tokens"
)

// FuzzCheck feeds arbitrary bearer tokens to Check: nothing may panic, and
// every refusal is Unauthenticated. The seed corpus (testdata/fuzz/FuzzCheck)
// holds a valid token and the shapes of the classic attacks.
func FuzzCheck(f *testing.F) {
	fx := newFixture(f)
	grant, err := fx.service.IssueForPassword(context.Background(), tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland", Scope: "read"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(grant.AccessToken)
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := fx.service.Check(context.Background(), token)
		if err != nil {
			if chiterr.KindOf(err) != chiterr.Unauthenticated {
				t.Fatalf("Check(%q) failed with %v, want Unauthenticated", token, err)
			}
			return
		}
		if token != grant.AccessToken && claims.Subject == "" {
			t.Fatalf("Check accepted %q without a subject", token)
		}
	})
}

// FuzzRefresh feeds arbitrary refresh tokens to Refresh.
func FuzzRefresh(f *testing.F) {
	fx := newFixture(f)
	f.Add("chit_rt_AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		_, err := fx.service.Refresh(context.Background(), tokens.RefreshRequest{Client: apiClient, RefreshToken: token})
		if kind := chiterr.KindOf(err); err == nil || (kind != chiterr.Unauthenticated && kind != chiterr.InvalidArgument) {
			t.Fatalf("Refresh(%q) = %v", token, err)
		}
	})
}
