package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

func signingKey(id, state string, created time.Time) storage.SigningKey {
	return storage.SigningKey{ID: id, Algorithm: "ES256", PrivateKey: []byte("private-" + id), PublicKey: []byte("public-" + id), State: state, CreatedAt: created}
}

func statesOf(t *testing.T, s storage.Store) map[string]string {
	t.Helper()
	keys, err := s.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, key := range keys {
		states[key.ID] = key.State
	}
	return states
}

func testRotateSigningKeys(t *testing.T, s storage.Store) {
	ctx := context.Background()
	active := signingKey("a", storage.KeyActive, base)
	active.ActivatedAt = base
	if err := s.CreateSigningKey(ctx, active); err != nil {
		t.Fatal(err)
	}
	// With no next key yet, rotation only adds one.
	if err := s.RotateSigningKeys(ctx, "", signingKey("b", "", base.Add(time.Minute)), base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := statesOf(t, s); got["a"] != storage.KeyActive || got["b"] != storage.KeyNext {
		t.Fatalf("states %v", got)
	}
	rotatedAt := base.Add(time.Hour)
	if err := s.RotateSigningKeys(ctx, "b", signingKey("c", "", rotatedAt), rotatedAt); err != nil {
		t.Fatal(err)
	}
	if got := statesOf(t, s); got["a"] != storage.KeyRetired || got["b"] != storage.KeyActive || got["c"] != storage.KeyNext {
		t.Fatalf("states after rotation %v", got)
	}
	// A rotation based on a stale view changes nothing.
	if err := s.RotateSigningKeys(ctx, "b", signingKey("d", "", rotatedAt), rotatedAt); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("stale rotation: got %v, want ErrConflict", err)
	}
	keys, _ := s.ListSigningKeys(ctx)
	for _, key := range keys {
		switch key.ID {
		case "a":
			if !sameInstant(key.RetiredAt, rotatedAt) {
				t.Errorf("a retired at %v", key.RetiredAt)
			}
		case "b":
			if !sameInstant(key.ActivatedAt, rotatedAt) {
				t.Errorf("b activated at %v", key.ActivatedAt)
			}
		case "d":
			t.Error("the refused rotation stored its key")
		}
	}
	if n, err := s.DeleteRetiredSigningKeys(ctx, rotatedAt); err != nil || n != 0 {
		t.Fatalf("nothing retired before the rotation: %d, %v", n, err)
	}
	if n, err := s.DeleteRetiredSigningKeys(ctx, rotatedAt.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("DeleteRetiredSigningKeys = %d, %v; want 1", n, err)
	}
	if got := statesOf(t, s); len(got) != 2 || got["b"] != storage.KeyActive {
		t.Fatalf("after deletion %v: the active and next keys must stay", got)
	}
}

func testConcurrentKeyRotation(t *testing.T, s storage.Store) {
	ctx := context.Background()
	active := signingKey("a", storage.KeyActive, base)
	if err := s.CreateSigningKey(ctx, active); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSigningKey(ctx, signingKey("n", storage.KeyNext, base)); err != nil {
		t.Fatal(err)
	}
	const replicas = 8
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.RotateSigningKeys(ctx, "n", signingKey(fmt.Sprintf("new-%d", i), "", base.Add(time.Hour)), base.Add(time.Hour))
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
		} else if !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("unexpected %v", err)
		}
	}
	states := statesOf(t, s)
	if wins != 1 || len(states) != 3 {
		t.Fatalf("%d rotations won and %d keys exist; want 1 and 3", wins, len(states))
	}
}

func testReplacePrivateKeys(t *testing.T, s storage.Store) {
	ctx := context.Background()
	key := signingKey("k", storage.KeyActive, base)
	if err := s.CreateSigningKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	sealed := []byte("sealed-k")
	if err := s.ReplaceSigningPrivateKey(ctx, "k", key.PrivateKey, sealed); err != nil {
		t.Fatal(err)
	}
	// A second replacement from the same stale view loses, as it would to a
	// replica that encrypted the key first.
	if err := s.ReplaceSigningPrivateKey(ctx, "k", key.PrivateKey, []byte("other")); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("stale replacement: got %v, want ErrConflict", err)
	}
	if err := s.ReplaceSigningPrivateKey(ctx, "missing", key.PrivateKey, sealed); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("replacement of a missing key: got %v, want ErrConflict", err)
	}
	keys, err := s.ListSigningKeys(ctx)
	if err != nil || len(keys) != 1 || string(keys[0].PrivateKey) != "sealed-k" || string(keys[0].PublicKey) != "public-k" || keys[0].State != storage.KeyActive {
		t.Fatalf("after replacement: %+v, %v", keys, err)
	}

	if err := s.CreateProviders(ctx, []storage.Provider{newProvider(t, "p")}); err != nil {
		t.Fatal(err)
	}
	credentials := newCredentials(t, "p")
	if err := s.ClaimProviders(ctx, []storage.ProviderCredentials{credentials}, base); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceProviderPrivateKey(ctx, "p", credentials.PrivateKey, []byte("sealed-p")); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceProviderPrivateKey(ctx, "p", credentials.PrivateKey, []byte("other")); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("stale provider replacement: got %v, want ErrConflict", err)
	}
	got, err := s.GetProvider(ctx, "p")
	if err != nil || string(got.Credentials.PrivateKey) != "sealed-p" || got.Credentials.KeyID != credentials.KeyID {
		t.Fatalf("provider after replacement: %+v, %v", got.Credentials, err)
	}

	// Erasing what the replacements left keeps every row as it is, and the
	// store goes on writing.
	if err := s.EraseReplacedValues(ctx); err != nil {
		t.Fatalf("EraseReplacedValues: %v", err)
	}
	keys, err = s.ListSigningKeys(ctx)
	if err != nil || len(keys) != 1 || string(keys[0].PrivateKey) != "sealed-k" || string(keys[0].PublicKey) != "public-k" {
		t.Fatalf("signing keys after erasing: %+v, %v", keys, err)
	}
	if got, err = s.GetProvider(ctx, "p"); err != nil || string(got.Credentials.PrivateKey) != "sealed-p" {
		t.Fatalf("provider after erasing: %+v, %v", got.Credentials, err)
	}
	if err := s.CreateSigningKey(ctx, signingKey("after", storage.KeyNext, base)); err != nil {
		t.Fatalf("a write after erasing: %v", err)
	}
}
