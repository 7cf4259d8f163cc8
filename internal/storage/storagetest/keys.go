package storagetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
	if n, err := s.DeleteRetiredSigningKeys(ctx, rotatedAt, rotatedAt); err != nil || n != 0 {
		t.Fatalf("nothing retired before the rotation: %d, %v", n, err)
	}
	if n, err := s.DeleteRetiredSigningKeys(ctx, rotatedAt.Add(time.Second), rotatedAt.Add(time.Second)); err != nil || n != 1 {
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

func familyKey(id, algorithm, state string, created time.Time) storage.SigningKey {
	key := signingKey(id, state, created)
	key.Algorithm = algorithm
	return key
}

// Each algorithm's keys are a family of their own: a rotation of one
// leaves the others as they are, and a stale view of one family (its next
// key's id given for another's) changes nothing.
func testSigningKeyFamilies(t *testing.T, s storage.Store) {
	ctx := context.Background()
	for _, key := range []storage.SigningKey{
		familyKey("es-active", "ES256", storage.KeyActive, base),
		familyKey("es-next", "ES256", storage.KeyNext, base),
		familyKey("rs-active", "RS256", storage.KeyActive, base),
	} {
		if err := s.CreateSigningKey(ctx, key); err != nil {
			t.Fatalf("CreateSigningKey %s: %v", key.ID, err)
		}
	}
	at := base.Add(time.Minute)
	// The RS256 family has no next key yet: naming ES256's is a stale view.
	if err := s.RotateSigningKeys(ctx, "es-next", familyKey("rs-stale", "RS256", "", at), at); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("rotating RS256 onto ES256's next key: got %v, want ErrConflict", err)
	}
	if err := s.RotateSigningKeys(ctx, "", familyKey("rs-next", "RS256", "", at), at); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"es-active": storage.KeyActive, "es-next": storage.KeyNext, "rs-active": storage.KeyActive, "rs-next": storage.KeyNext}
	if got := statesOf(t, s); !maps.Equal(got, want) {
		t.Fatalf("after adding RS256's next key: %v, want %v", got, want)
	}
	rotatedAt := base.Add(time.Hour)
	if err := s.RotateSigningKeys(ctx, "rs-next", familyKey("rs-new", "RS256", "", rotatedAt), rotatedAt); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"es-active": storage.KeyActive, "es-next": storage.KeyNext, "rs-active": storage.KeyRetired, "rs-next": storage.KeyActive, "rs-new": storage.KeyNext}
	if got := statesOf(t, s); !maps.Equal(got, want) {
		t.Fatalf("after rotating RS256: %v, want %v (ES256 untouched)", got, want)
	}
	if err := s.RotateSigningKeys(ctx, "es-next", familyKey("es-new", "ES256", "", rotatedAt), rotatedAt); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"es-active": storage.KeyRetired, "es-next": storage.KeyActive, "es-new": storage.KeyNext, "rs-active": storage.KeyRetired, "rs-next": storage.KeyActive, "rs-new": storage.KeyNext}
	if got := statesOf(t, s); !maps.Equal(got, want) {
		t.Fatalf("after rotating ES256: %v, want %v", got, want)
	}

	// A family the configuration no longer wants is retired as a whole.
	retiredAt := base.Add(2 * time.Hour)
	if n, err := s.RetireSigningKeyFamily(ctx, "RS256", retiredAt); err != nil || n != 2 {
		t.Fatalf("RetireSigningKeyFamily = %d, %v; want 2", n, err)
	}
	keys, err := s.ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range keys {
		wantState := want[key.ID]
		if key.Algorithm == "RS256" {
			wantState = storage.KeyRetired
		}
		if key.State != wantState {
			t.Errorf("after retiring RS256, %s is %s, want %s", key.ID, key.State, wantState)
		}
		if (key.ID == "rs-next" || key.ID == "rs-new") && !sameInstant(key.RetiredAt, retiredAt) {
			t.Errorf("%s retired at %v, want %v", key.ID, key.RetiredAt, retiredAt)
		}
	}
	if n, err := s.RetireSigningKeyFamily(ctx, "EdDSA", retiredAt); err != nil || n != 0 {
		t.Fatalf("retiring a family that does not exist = %d, %v; want 0", n, err)
	}
}

// The store itself holds "at most one active and one next key per
// algorithm": replicas that start at once on an empty store, each storing
// the keys it found missing, end with one family of each algorithm.
func testOneActiveAndNextPerAlgorithm(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := s.CreateSigningKey(ctx, familyKey("es", "ES256", storage.KeyActive, base)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSigningKey(ctx, familyKey("es-2", "ES256", storage.KeyActive, base)); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("a second active ES256 key: got %v, want ErrAlreadyExists", err)
	}
	if err := s.CreateSigningKey(ctx, familyKey("es-next", "ES256", storage.KeyNext, base)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSigningKey(ctx, familyKey("es-next-2", "ES256", storage.KeyNext, base)); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("a second next ES256 key: got %v, want ErrAlreadyExists", err)
	}
	// Retired keys are not limited.
	for _, id := range []string{"es-old-1", "es-old-2"} {
		if err := s.CreateSigningKey(ctx, familyKey(id, "ES256", storage.KeyRetired, base)); err != nil {
			t.Fatalf("retired key %s: %v", id, err)
		}
	}

	const replicas = 8
	created, rotated := make([]error, replicas), make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			created[i] = s.CreateSigningKey(ctx, familyKey(fmt.Sprintf("rs-active-%d", i), "RS256", storage.KeyActive, base))
			rotated[i] = s.RotateSigningKeys(ctx, "", familyKey(fmt.Sprintf("rs-next-%d", i), "RS256", "", base), base)
		}()
	}
	wg.Wait()
	for what, errs := range map[string][]error{"creations of the active RS256 key": created, "first next RS256 keys": rotated} {
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, storage.ErrAlreadyExists) && !errors.Is(err, storage.ErrConflict):
				t.Fatalf("%s: unexpected %v", what, err)
			}
		}
		if wins != 1 {
			t.Errorf("%d %s won; want 1", wins, what)
		}
	}
	counts := map[string]int{}
	for _, key := range mustListSigningKeys(t, s) {
		counts[key.Algorithm+" "+key.State]++
	}
	want := map[string]int{"ES256 active": 1, "ES256 next": 1, "ES256 retired": 2, "RS256 active": 1, "RS256 next": 1}
	if !maps.Equal(counts, want) {
		t.Fatalf("keys by algorithm and state %v, want %v", counts, want)
	}
}

func mustListSigningKeys(t *testing.T, s storage.Store) []storage.SigningKey {
	t.Helper()
	keys, err := s.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
