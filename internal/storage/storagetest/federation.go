package storagetest

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

func sameFederationRule(a, b storage.FederationRule) bool {
	return a.Name == b.Name && a.Issuer == b.Issuer && a.Audience == b.Audience && a.ServiceAccount == b.ServiceAccount &&
		maps.Equal(a.Claims, b.Claims) && a.JWKS == b.JWKS && a.JWKSURI == b.JWKSURI && a.SingleUse == b.SingleUse &&
		a.MaxAssertionLifetime == b.MaxAssertionLifetime && sameInstant(a.CreatedAt, b.CreatedAt)
}

// Federation rules round-trip, are unique by name, are listed by name, and go with their service account.
func testFederationRules(t *testing.T, s storage.Store) {
	ctx := context.Background()
	for _, id := range []string{"deployer", "builder"} {
		if err := s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: id, SecretHash: randomHash(t), CreatedAt: base}); err != nil {
			t.Fatal(err)
		}
	}
	k8s := storage.FederationRule{Name: "k8s-deployer", Issuer: "https://kubernetes.default.svc", Audience: "chit", ServiceAccount: "deployer",
		Claims: map[string]string{"sub": "system:serviceaccount:prod:deployer"}, JWKS: `{"keys":[]}`, MaxAssertionLifetime: 2 * time.Hour, CreatedAt: base}
	gha := storage.FederationRule{Name: "gha-builder", Issuer: "https://token.actions.githubusercontent.com", Audience: "https://chit.example", ServiceAccount: "builder",
		Claims: map[string]string{"repository_id": "42", "ref": "refs/heads/*"}, JWKSURI: "https://token.actions.githubusercontent.com/.well-known/jwks", SingleUse: true, CreatedAt: base}
	gha2 := gha
	gha2.Name, gha2.ServiceAccount, gha2.Claims = "gha-deployer", "deployer", map[string]string{"repository_id": "43"}
	for _, rule := range []storage.FederationRule{k8s, gha, gha2} {
		if err := s.CreateFederationRule(ctx, rule); err != nil {
			t.Fatalf("create %s: %v", rule.Name, err)
		}
	}
	if err := s.CreateFederationRule(ctx, k8s); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("a taken name: %v, want ErrAlreadyExists", err)
	}
	if got, err := s.GetFederationRule(ctx, "gha-builder"); err != nil || !sameFederationRule(got, gha) {
		t.Fatalf("GetFederationRule = %+v, %v; want %+v", got, err, gha)
	}
	if _, err := s.GetFederationRule(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an unknown rule: %v, want ErrNotFound", err)
	}
	all, err := s.ListFederationRules(ctx, storage.Page{})
	if err != nil || len(all) != 3 || all[0].Name != "gha-builder" || all[1].Name != "gha-deployer" || all[2].Name != "k8s-deployer" {
		t.Fatalf("ListFederationRules = %+v, %v", all, err)
	}
	if page, err := s.ListFederationRules(ctx, storage.Page{After: "gha-builder", Limit: 1}); err != nil || len(page) != 1 || page[0].Name != "gha-deployer" {
		t.Fatalf("a page of rules = %+v, %v", page, err)
	}
	if err := s.DeleteFederationRule(ctx, "gha-builder"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteFederationRule(ctx, "gha-builder"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleting twice: %v, want ErrNotFound", err)
	}
	// Deleting the service account deletes its rules: an account made
	// again under its name is not trusted by them.
	if err := s.DeleteServiceAccount(ctx, "deployer", storage.SubjectRevocation{Subject: "service:deployer", At: base}); err != nil {
		t.Fatal(err)
	}
	if rest, err := s.ListFederationRules(ctx, storage.Page{}); err != nil || len(rest) != 0 {
		t.Fatalf("rules after their service accounts went: %+v, %v", rest, err)
	}
}

// An assertion is recorded once per issuer; a second record is a
// conflict; expired ones are forgotten and can be recorded again.
func testAssertionReplays(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := s.RecordAssertion(ctx, "https://a.example", "jti-1", base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAssertion(ctx, "https://a.example", "jti-1", base.Add(time.Minute)); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("a replay: %v, want ErrConflict", err)
	}
	// jti is unique per issuer only (RFC 7519 §4.1.7).
	if err := s.RecordAssertion(ctx, "https://b.example", "jti-1", base.Add(time.Hour)); err != nil {
		t.Fatalf("the same jti from another issuer: %v", err)
	}
	if n, err := s.DeleteExpiredAssertions(ctx, base.Add(30*time.Minute)); err != nil || n != 1 {
		t.Fatalf("DeleteExpiredAssertions = %d, %v; want 1", n, err)
	}
	if err := s.RecordAssertion(ctx, "https://b.example", "jti-1", base.Add(time.Hour)); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("an unexpired record was forgotten: %v", err)
	}
	if err := s.RecordAssertion(ctx, "https://a.example", "jti-1", base.Add(time.Hour)); err != nil {
		t.Fatalf("after its record expired: %v", err)
	}
}

// Of N concurrent records of one jti, exactly one wins: two replicas
// never both exchange a single-use assertion.
func testConcurrentAssertionRecordHasOneWinner(t *testing.T, s storage.Store) {
	ctx := context.Background()
	const n = 16
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			switch err := s.RecordAssertion(ctx, "https://a.example", "once", base.Add(time.Hour)); {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, storage.ErrConflict):
				conflicts.Add(1)
			default:
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if wins.Load() != 1 || conflicts.Load() != n-1 {
		t.Fatalf("%d wins and %d conflicts of %d records; want exactly one win", wins.Load(), conflicts.Load(), n)
	}
}
