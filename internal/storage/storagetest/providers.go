package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

func newProvider(t *testing.T, id string) storage.Provider {
	t.Helper()
	return storage.Provider{ID: id, ClaimTokenHash: randomHash(t), ClaimExpiresAt: base.Add(24 * time.Hour), RegisteredBy: "ucloud", CreatedAt: base}
}

func newCredentials(t *testing.T, id string) storage.ProviderCredentials {
	t.Helper()
	return storage.ProviderCredentials{
		ProviderID:         id,
		KeyID:              fmt.Sprintf("kid-%x", randomHash(t)[:8]),
		PublicKey:          randomHash(t),
		PrivateKey:         randomHash(t),
		RefreshTokenHash:   randomHash(t),
		SealedRefreshToken: randomHash(t),
	}
}

func wantItemError(t *testing.T, err error, index int, sentinel error) {
	t.Helper()
	var item *storage.ItemError
	if !errors.As(err, &item) || item.Index != index || !errors.Is(err, sentinel) {
		t.Fatalf("got %v, want an ItemError at index %d wrapping %v", err, index, sentinel)
	}
}

func testCreateProviders(t *testing.T, s storage.Store) {
	ctx := context.Background()
	first := newProvider(t, "hippo")
	if err := s.CreateProviders(ctx, []storage.Provider{first}); err != nil {
		t.Fatal(err)
	}
	// A batch with one taken id changes nothing.
	batch := []storage.Provider{newProvider(t, "k8s"), newProvider(t, "hippo"), newProvider(t, "slurm")}
	wantItemError(t, s.CreateProviders(ctx, batch), 1, storage.ErrAlreadyExists)
	for _, id := range []string{"k8s", "slurm"} {
		if _, err := s.GetProvider(ctx, id); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("provider %s of a refused batch was stored: %v", id, err)
		}
	}
	got, err := s.GetProviderByClaimToken(ctx, first.ClaimTokenHash)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "hippo" || got.RegisteredBy != first.RegisteredBy || !got.ClaimedAt.IsZero() || !sameInstant(got.ClaimExpiresAt, first.ClaimExpiresAt) || got.Credentials.KeyID != "" {
		t.Fatalf("GetProviderByClaimToken = %+v", got)
	}
	if _, err := s.GetProviderByClaimToken(ctx, randomHash(t)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown claim token: %v", err)
	}
}

func testClaimAndRenewProviders(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := s.CreateProviders(ctx, []storage.Provider{newProvider(t, "a"), newProvider(t, "b")}); err != nil {
		t.Fatal(err)
	}
	claimA := newCredentials(t, "a")
	// A batch naming an unknown provider changes nothing.
	wantItemError(t, s.ClaimProviders(ctx, []storage.ProviderCredentials{claimA, newCredentials(t, "nobody")}, base), 1, storage.ErrNotFound)
	if p, _ := s.GetProvider(ctx, "a"); !p.ClaimedAt.IsZero() {
		t.Fatal("a refused claim batch claimed provider a")
	}
	claimedAt := base.Add(time.Minute)
	if err := s.ClaimProviders(ctx, []storage.ProviderCredentials{claimA}, claimedAt); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetProviderByRefreshToken(ctx, claimA.RefreshTokenHash)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "a" || !sameInstant(got.ClaimedAt, claimedAt) || got.Credentials.KeyID != claimA.KeyID ||
		!bytes.Equal(got.Credentials.PublicKey, claimA.PublicKey) || !bytes.Equal(got.Credentials.PrivateKey, claimA.PrivateKey) ||
		!bytes.Equal(got.Credentials.SealedRefreshToken, claimA.SealedRefreshToken) {
		t.Fatalf("claimed provider = %+v", got)
	}
	if byKey, err := s.GetProviderByKeyID(ctx, claimA.KeyID); err != nil || byKey.ID != "a" {
		t.Fatalf("GetProviderByKeyID = %+v, %v", byKey, err)
	}
	// A second claim of a claimed provider is a conflict and changes nothing.
	wantItemError(t, s.ClaimProviders(ctx, []storage.ProviderCredentials{newCredentials(t, "a")}, claimedAt), 0, storage.ErrConflict)

	renewed := newCredentials(t, "a")
	renewed.SealedRefreshToken = nil
	wantItemError(t, s.RenewProviders(ctx, []storage.ProviderCredentials{renewed, newCredentials(t, "ghost")}, claimedAt), 1, storage.ErrNotFound)
	if _, err := s.GetProviderByRefreshToken(ctx, claimA.RefreshTokenHash); err != nil {
		t.Fatal("a refused renew batch replaced credentials")
	}
	if err := s.RenewProviders(ctx, []storage.ProviderCredentials{renewed}, claimedAt.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetProviderByRefreshToken(ctx, claimA.RefreshTokenHash); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("old refresh token still finds the provider after renew: %v", err)
	}
	got, err = s.GetProviderByRefreshToken(ctx, renewed.RefreshTokenHash)
	if err != nil || got.Credentials.KeyID != renewed.KeyID || len(got.Credentials.SealedRefreshToken) != 0 || !sameInstant(got.ClaimedAt, claimedAt) {
		t.Fatalf("renewed provider = %+v, %v (renew keeps the first claim time and clears the sealed token)", got, err)
	}
	// Renewing an unclaimed provider marks it claimed.
	if err := s.RenewProviders(ctx, []storage.ProviderCredentials{newCredentials(t, "b")}, claimedAt); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.GetProvider(ctx, "b"); b.ClaimedAt.IsZero() {
		t.Fatal("renew left provider b unclaimed")
	}
}

func testConcurrentClaim(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := s.CreateProviders(ctx, []storage.Provider{newProvider(t, "contested")}); err != nil {
		t.Fatal(err)
	}
	const contenders = 10
	errs := make([]error, contenders)
	creds := make([]storage.ProviderCredentials, contenders)
	for i := range creds {
		creds[i] = newCredentials(t, "contested")
	}
	var wg sync.WaitGroup
	for i := range contenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.ClaimProviders(ctx, creds[i:i+1], base)
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("claims %d and %d both won", winner, i)
			}
			winner = i
		} else if !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("claim %d: %v, want ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no claim won")
	}
	got, _ := s.GetProvider(ctx, "contested")
	if got.Credentials.KeyID != creds[winner].KeyID {
		t.Fatal("stored credentials are not the winner's")
	}
}

func testListAndDeleteProviders(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := s.CreateProviders(ctx, []storage.Provider{newProvider(t, "zeta"), newProvider(t, "alpha")}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListProviders(ctx, storage.Page{})
	if err != nil || len(list) != 2 || list[0].ID != "alpha" || list[1].ID != "zeta" {
		t.Fatalf("ListProviders = %+v, %v", list, err)
	}
	if list, err := s.ListProviders(ctx, storage.Page{After: "alpha", Limit: 1}); err != nil || len(list) != 1 || list[0].ID != "zeta" {
		t.Fatalf("ListProviders after alpha = %+v, %v", list, err)
	}
	if err := s.DeleteProvider(ctx, "alpha", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteProvider(ctx, "alpha", time.Now()); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}
