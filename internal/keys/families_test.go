package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/postgres"
	"github.com/chit-auth/chit/internal/storage/postgres/postgrestest"
	"github.com/chit-auth/chit/internal/storage/sqlite"
	"github.com/chit-auth/chit/internal/storage/sqlite/sqlitetest"
)

// stores runs test on a fresh SQLite store and, when CHIT_TEST_POSTGRES_DSN
// is set, on a fresh PostgreSQL schema.
func stores(t *testing.T, test func(t *testing.T, store SigningKeyStore)) {
	t.Run("SQLite", func(t *testing.T) {
		store, err := sqlite.Open(context.Background(), sqlitetest.Dir(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		test(t, store)
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		store, err := postgres.Open(context.Background(), postgrestest.FreshDSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		test(t, store)
	})
}

// keysByFamily counts the stored keys by "algorithm state".
func keysByFamily(t *testing.T, store SigningKeyStore) map[string]int {
	t.Helper()
	stored, err := store.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, key := range stored {
		counts[key.Algorithm+" "+key.State]++
	}
	return counts
}

func kidsOfState(t *testing.T, store SigningKeyStore, algorithm, state string) []string {
	t.Helper()
	stored, err := store.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, key := range stored {
		if key.Algorithm == algorithm && key.State == state {
			kids = append(kids, key.ID)
		}
	}
	return kids
}

type publishedKey struct {
	Kid         string `json:"kid"`
	Alg         string `json:"alg"`
	IDTokenOnly bool   `json:"chit_id_token_only"`
}

func published(t *testing.T, set *Set) map[string]publishedKey {
	t.Helper()
	var doc struct{ Keys []publishedKey }
	if err := json.Unmarshal(set.JWKS(), &doc); err != nil {
		t.Fatal(err)
	}
	keys := map[string]publishedKey{}
	for _, key := range doc.Keys {
		keys[key.Kid] = key
	}
	return keys
}

func signedKid(t *testing.T, set *Set, alg jwa.SignatureAlgorithm) (string, string) {
	t.Helper()
	token, _ := jwt.NewBuilder().Subject("alice").Build()
	var builtFor jwa.SignatureAlgorithm
	signed, err := set.SignBuilt(alg, func(signer jwa.SignatureAlgorithm) (jwt.Token, error) {
		builtFor = signer
		return token, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	header := decodeHeader(t, signed)
	if header["alg"] != builtFor.String() {
		t.Fatalf("built for %s, signed %v", builtFor, header["alg"])
	}
	return header["kid"].(string), header["alg"].(string)
}

// A server configured with ES256 keeps an RS256 family beside it: both are
// created on first start and published, RS256 signs the ID tokens asked of
// it and nothing verifies an access token under its keys.
func TestRS256FamilyBesideTheConfiguredOne(t *testing.T) {
	stores(t, func(t *testing.T, store SigningKeyStore) {
		ctx := context.Background()
		set, err := Load(ctx, store, jwa.ES256, &Sealer{}, now)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"ES256 active": 1, "ES256 next": 1, "RS256 active": 1, "RS256 next": 1}
		if got := keysByFamily(t, store); !maps.Equal(got, want) {
			t.Fatalf("keys %v, want %v", got, want)
		}
		if got := set.IDTokenAlgorithms(); !slices.Equal(got, []string{"ES256", "RS256"}) {
			t.Fatalf("IDTokenAlgorithms = %v", got)
		}
		if set.Algorithm() != jwa.ES256 {
			t.Fatalf("Algorithm = %s", set.Algorithm())
		}
		keys := published(t, set)
		if len(keys) != 4 {
			t.Fatalf("JWKS %v: want the four keys", keys)
		}
		for kid, key := range keys {
			if key.IDTokenOnly != (key.Alg == "RS256") {
				t.Errorf("key %s (%s) is marked ID-token-only: %v", kid, key.Alg, key.IDTokenOnly)
			}
		}
		rsKid, rsAlg := signedKid(t, set, jwa.RS256)
		if rsAlg != "RS256" || rsKid != kidsOfState(t, store, "RS256", storage.KeyActive)[0] {
			t.Fatalf("an RS256 ID token was signed by %s (%s)", rsKid, rsAlg)
		}
		for _, alg := range []jwa.SignatureAlgorithm{"", jwa.ES256, jwa.EdDSA} {
			if kid, got := signedKid(t, set, alg); got != "ES256" || kid != kidsOfState(t, store, "ES256", storage.KeyActive)[0] {
				t.Fatalf("asked for %q, signed by %s (%s); want the ES256 active key", alg, kid, got)
			}
		}
		// The RS256 keys verify no access token: a token under one is an
		// unknown kid to CheckToken's lookup, even after a reload.
		for _, kid := range append(kidsOfState(t, store, "RS256", storage.KeyActive), kidsOfState(t, store, "RS256", storage.KeyNext)...) {
			if _, ok := set.LookupContext(ctx, kid); ok {
				t.Fatalf("RS256 key %s verifies access tokens", kid)
			}
		}
		private, _ := store.ListSigningKeys(ctx)
		var rsKey jwk.Key
		for _, record := range private {
			if record.ID == rsKid {
				rsKey, _ = jwk.ParseKey(record.PrivateKey)
			}
		}
		token, _ := jwt.NewBuilder().Subject("mallory").Claim("role", "ADMIN").Build()
		forged, err := jwt.Sign(token, jwt.WithKey(jwa.RS256, rsKey))
		if err != nil {
			t.Fatal(err)
		}
		set.lastMissReload = time.Time{}
		if _, err := jwt.Parse(forged, jwt.WithKeyProvider(KeyProvider(set.LookupContext))); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("a token signed by the RS256 key: got %v, want ErrUnknownKey", err)
		}
	})
}

// Configured with RS256, the server has one family, which signs and
// verifies everything.
func TestRS256ConfiguredIsOneFamily(t *testing.T) {
	stores(t, func(t *testing.T, store SigningKeyStore) {
		set, err := Load(context.Background(), store, jwa.RS256, &Sealer{}, now)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"RS256 active": 1, "RS256 next": 1}
		if got := keysByFamily(t, store); !maps.Equal(got, want) {
			t.Fatalf("keys %v, want %v", got, want)
		}
		if got := set.IDTokenAlgorithms(); !slices.Equal(got, []string{"RS256"}) {
			t.Fatalf("IDTokenAlgorithms = %v", got)
		}
		for kid, key := range published(t, set) {
			if key.IDTokenOnly {
				t.Errorf("key %s is marked ID-token-only on an RS256 server", kid)
			}
			if _, ok := set.Lookup(kid); !ok {
				t.Errorf("key %s does not verify access tokens", kid)
			}
		}
	})
}

// Rotate turns both families; RotateFamily one; retired keys of both stay
// published until deleted.
func TestRotationOfBothFamilies(t *testing.T) {
	stores(t, func(t *testing.T, store SigningKeyStore) {
		ctx := context.Background()
		set, err := Load(ctx, store, jwa.ES256, &Sealer{}, now)
		if err != nil {
			t.Fatal(err)
		}
		esNext, rsNext := kidsOfState(t, store, "ES256", storage.KeyNext)[0], kidsOfState(t, store, "RS256", storage.KeyNext)[0]
		esActive, rsActive := kidsOfState(t, store, "ES256", storage.KeyActive)[0], kidsOfState(t, store, "RS256", storage.KeyActive)[0]
		if err := Rotate(ctx, store, jwa.ES256, &Sealer{}, now.Add(time.Minute), 5*time.Minute, false); !errors.Is(err, ErrNextTooYoung) {
			t.Fatalf("rotating onto one-minute-old keys: %v, want ErrNextTooYoung", err)
		}
		if got := keysByFamily(t, store); got["ES256 retired"]+got["RS256 retired"] != 0 {
			t.Fatalf("a refused rotation rotated a family: %v", got)
		}
		rotatedAt := now.Add(time.Hour)
		if err := Rotate(ctx, store, jwa.ES256, &Sealer{}, rotatedAt, 5*time.Minute, false); err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"ES256 active": 1, "ES256 next": 1, "ES256 retired": 1, "RS256 active": 1, "RS256 next": 1, "RS256 retired": 1}
		if got := keysByFamily(t, store); !maps.Equal(got, want) {
			t.Fatalf("after rotation %v, want %v", got, want)
		}
		if err := set.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if kid, _ := signedKid(t, set, jwa.ES256); kid != esNext {
			t.Fatalf("ES256 signer %s, want the former next %s", kid, esNext)
		}
		if kid, _ := signedKid(t, set, jwa.RS256); kid != rsNext {
			t.Fatalf("RS256 signer %s, want the former next %s", kid, rsNext)
		}
		keys := published(t, set)
		if _, ok := keys[esActive]; !ok {
			t.Fatal("the retired ES256 key is not published")
		}
		if _, ok := keys[rsActive]; !ok {
			t.Fatal("the retired RS256 key is not published")
		}
		if !set.FamilyActiveSince(jwa.RS256).Equal(rotatedAt) || !set.ActiveSince().Equal(rotatedAt) {
			t.Fatalf("active since ES256 %v, RS256 %v", set.ActiveSince(), set.FamilyActiveSince(jwa.RS256))
		}

		// One family alone.
		later := rotatedAt.Add(time.Hour)
		if err := RotateFamily(ctx, store, jwa.RS256, &Sealer{}, later, 5*time.Minute, false); err != nil {
			t.Fatal(err)
		}
		want = map[string]int{"ES256 active": 1, "ES256 next": 1, "ES256 retired": 1, "RS256 active": 1, "RS256 next": 1, "RS256 retired": 2}
		if got := keysByFamily(t, store); !maps.Equal(got, want) {
			t.Fatalf("after rotating RS256 alone %v, want %v", got, want)
		}
		if n, err := store.DeleteRetiredSigningKeys(ctx, later.Add(time.Second), later.Add(time.Second)); err != nil || n != 3 {
			t.Fatalf("DeleteRetiredSigningKeys = %d, %v; want the three retired keys", n, err)
		}
	})
}

// A family of an algorithm no longer configured is retired at start: its
// keys stay published (for the tokens they signed) and sign nothing.
func TestAlgorithmChangeRetiresTheOldFamily(t *testing.T) {
	stores(t, func(t *testing.T, store SigningKeyStore) {
		ctx := context.Background()
		if _, err := Load(ctx, store, jwa.ES256, &Sealer{}, now); err != nil {
			t.Fatal(err)
		}
		oldKids := kidsOfState(t, store, "ES256", storage.KeyActive)
		set, err := Load(ctx, store, jwa.EdDSA, &Sealer{}, now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"ES256 retired": 2, "EdDSA active": 1, "EdDSA next": 1, "RS256 active": 1, "RS256 next": 1}
		if got := keysByFamily(t, store); !maps.Equal(got, want) {
			t.Fatalf("keys %v, want %v", got, want)
		}
		if _, ok := set.Lookup(oldKids[0]); !ok {
			t.Fatal("the retired ES256 key no longer verifies the access tokens it signed")
		}
		if got := set.IDTokenAlgorithms(); !slices.Equal(got, []string{"EdDSA", "RS256"}) {
			t.Fatalf("IDTokenAlgorithms = %v", got)
		}
	})
}

// Replicas starting at once on an empty store end with one family of each
// algorithm, and all sign with its active keys.
func TestReplicasStartingAtOnceMakeOneFamilyEach(t *testing.T) {
	stores(t, func(t *testing.T, store SigningKeyStore) {
		ctx := context.Background()
		const replicas = 6
		sets := make([]*Set, replicas)
		errs := make([]error, replicas)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range replicas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				sets[i], errs[i] = Load(ctx, store, jwa.ES256, &Sealer{}, now)
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("replica %d: %v", i, err)
			}
		}
		want := map[string]int{"ES256 active": 1, "ES256 next": 1, "RS256 active": 1, "RS256 next": 1}
		if got := keysByFamily(t, store); !maps.Equal(got, want) {
			t.Fatalf("keys %v, want %v: one family of each algorithm", got, want)
		}
		for i, set := range sets {
			for _, alg := range []jwa.SignatureAlgorithm{jwa.ES256, jwa.RS256} {
				if kid, _ := signedKid(t, set, alg); kid != kidsOfState(t, store, alg.String(), storage.KeyActive)[0] {
					t.Fatalf("replica %d signs %s with %s, not the family's active key", i, alg, kid)
				}
			}
			if got, first := fmt.Sprint(published(t, set)), fmt.Sprint(published(t, sets[0])); got != first {
				t.Fatalf("replica %d publishes %s, replica 0 %s", i, got, first)
			}
		}
	})
}

// Both families' private keys are sealed at rest under the key encryption
// key, as created and as rotated, and open again to sign.
func TestBothFamiliesSealedAtRest(t *testing.T) {
	stores(t, func(t *testing.T, store SigningKeyStore) {
		ctx := context.Background()
		sealer, err := NewSealer(bytesOf(7))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Load(ctx, store, jwa.ES256, sealer, now); err != nil {
			t.Fatal(err)
		}
		if err := Rotate(ctx, store, jwa.ES256, sealer, now.Add(time.Hour), time.Minute, false); err != nil {
			t.Fatal(err)
		}
		stored, err := store.ListSigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		algorithms := map[string]int{}
		for _, key := range stored {
			algorithms[key.Algorithm]++
			if !IsSealed(key.PrivateKey) {
				t.Fatalf("%s key %s (%s) is stored in the clear", key.Algorithm, key.ID, key.State)
			}
		}
		if algorithms["ES256"] != 3 || algorithms["RS256"] != 3 {
			t.Fatalf("keys by algorithm %v, want three of each", algorithms)
		}
		set, err := Load(ctx, store, jwa.ES256, sealer, now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if _, alg := signedKid(t, set, jwa.RS256); alg != "RS256" {
			t.Fatalf("the sealed RS256 key signs %s", alg)
		}
		if _, err := Load(ctx, store, jwa.ES256, &Sealer{}, now); !errors.Is(err, ErrNoEncryptionKey) {
			t.Fatalf("loading sealed keys without the key encryption key: %v", err)
		}
	})
}

func bytesOf(b byte) []byte {
	key := make([]byte, 32)
	for i := range key {
		key[i] = b
	}
	return key
}

// A store from before the RS256 family (an ES256 family only) gets one at
// the first start, the ES256 keys kept as they are; a start without the key
// encryption key stores no clear RS256 key beside the sealed ones.
func TestUpgradeAddsTheRS256Family(t *testing.T) {
	stores(t, func(t *testing.T, store SigningKeyStore) {
		ctx := context.Background()
		sealer, err := NewSealer(bytesOf(9))
		if err != nil {
			t.Fatal(err)
		}
		active, err := newSealedKey(jwa.ES256, sealer, now)
		if err != nil {
			t.Fatal(err)
		}
		active.State, active.ActivatedAt = storage.KeyActive, now
		if err := store.CreateSigningKey(ctx, active); err != nil {
			t.Fatal(err)
		}
		next, err := newSealedKey(jwa.ES256, sealer, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.RotateSigningKeys(ctx, "", next, now); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(ctx, store, jwa.ES256, &Sealer{}, now); !errors.Is(err, ErrNoEncryptionKey) {
			t.Fatalf("a start without the key encryption key: %v, want ErrNoEncryptionKey", err)
		}
		if got := keysByFamily(t, store); got["RS256 active"]+got["RS256 next"] != 0 {
			t.Fatalf("a start that could not encrypt stored RS256 keys: %v", got)
		}
		set, err := Load(ctx, store, jwa.ES256, sealer, now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"ES256 active": 1, "ES256 next": 1, "RS256 active": 1, "RS256 next": 1}
		if got := keysByFamily(t, store); !maps.Equal(got, want) {
			t.Fatalf("after the upgrade %v, want %v", got, want)
		}
		if kid, _ := signedKid(t, set, jwa.ES256); kid != active.ID {
			t.Fatalf("ES256 signs with %s, want the key from before %s", kid, active.ID)
		}
		if !set.FamilyActiveSince(jwa.RS256).Equal(now.Add(time.Hour)) || !set.ActiveSince().Equal(now) {
			t.Fatalf("active since: ES256 %v, RS256 %v", set.ActiveSince(), set.FamilyActiveSince(jwa.RS256))
		}
	})
}
