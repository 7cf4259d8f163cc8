package keys

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/sqlite"
	"github.com/chit-auth/chit/internal/storage/sqlite/sqlitetest"
)

var now = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func TestLoadGeneratesOnceAndPersists(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlitetest.Dir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	first, err := Load(ctx, store, jwa.ES256, &Sealer{}, now)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Load(ctx, store, jwa.ES256, &Sealer{}, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if string(first.JWKS()) != string(second.JWKS()) {
		t.Fatal("a second Load generated another key instead of reading the stored one")
	}
	stored, _ := store.ListSigningKeys(ctx)
	states := map[string]int{}
	for _, key := range stored {
		states[key.Algorithm+" "+key.State]++
	}
	want := map[string]int{"ES256 active": 1, "ES256 next": 1, "RS256 active": 1, "RS256 next": 1}
	if !maps.Equal(states, want) {
		t.Fatalf("stored key states %v, want %v: one active and one next per family", states, want)
	}
}

func TestSignAndVerifyEveryAlgorithm(t *testing.T) {
	for _, alg := range []jwa.SignatureAlgorithm{jwa.ES256, jwa.EdDSA, jwa.RS256} {
		t.Run(alg.String(), func(t *testing.T) {
			record, err := Generate(alg, now)
			if err != nil {
				t.Fatal(err)
			}
			set, err := setWith(t, record)
			if err != nil {
				t.Fatal(err)
			}
			token, _ := jwt.NewBuilder().Subject("alice").Build()
			signed, err := set.Sign(token)
			if err != nil {
				t.Fatal(err)
			}
			header := decodeHeader(t, signed)
			if header["alg"] != alg.String() || header["kid"] != record.ID {
				t.Fatalf("header %v, want alg %s and kid %s", header, alg, record.ID)
			}
			parsed, err := jwt.Parse([]byte(signed), jwt.WithKeyProvider(KeyProvider(set.LookupContext)))
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if parsed.Subject() != "alice" {
				t.Fatalf("subject %q", parsed.Subject())
			}
		})
	}
}

func TestJWKSHasNoPrivateParts(t *testing.T) {
	record, err := Generate(jwa.ES256, now)
	if err != nil {
		t.Fatal(err)
	}
	set, err := setWith(t, record)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(set.JWKS(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 4 {
		t.Fatalf("JWKS has %d keys, want 4 (active and next, ES256 and RS256)", len(doc.Keys))
	}
	for _, key := range doc.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := key[private]; ok {
				t.Fatalf("JWKS publishes private member %q", private)
			}
		}
	}
	found := false
	for _, key := range doc.Keys {
		if key["kid"] == record.ID {
			found = key["alg"] == "ES256" && key["use"] == "sig"
		}
	}
	if !found {
		t.Fatalf("JWKS %v lacks key %s with alg and use", doc.Keys, record.ID)
	}
}

func TestKeyProviderRefusesMismatchedAlgorithmAndUnknownKid(t *testing.T) {
	ours, _ := Generate(jwa.ES256, now)
	set, _ := setWith(t, ours)
	// A token signed with another ES256 key but claiming our kid.
	foreign, _ := Generate(jwa.ES256, now)
	foreignKey, _ := jwk.ParseKey(foreign.PrivateKey)
	_ = foreignKey.Set(jwk.KeyIDKey, ours.ID)
	token, _ := jwt.NewBuilder().Subject("mallory").Build()
	forged, _ := jwt.Sign(token, jwt.WithKey(jwa.ES256, foreignKey))
	if _, err := jwt.Parse(forged, jwt.WithKeyProvider(KeyProvider(set.LookupContext))); err == nil {
		t.Fatal("token signed by a foreign key under our kid was accepted")
	}
	// HS256 "signed" with our public key's bytes: the alg-confusion attack.
	publicJSON := ours.PublicKey
	hmacKey, _ := jwk.FromRaw(publicJSON)
	_ = hmacKey.Set(jwk.KeyIDKey, ours.ID)
	confused, _ := jwt.Sign(token, jwt.WithKey(jwa.HS256, hmacKey))
	_, err := jwt.Parse(confused, jwt.WithKeyProvider(KeyProvider(set.LookupContext)))
	if !errors.Is(err, ErrAlgorithmMismatch) {
		t.Fatalf("HS256 token under an ES256 kid: got %v, want ErrAlgorithmMismatch", err)
	}
	// Unknown kid.
	_ = foreignKey.Set(jwk.KeyIDKey, "no-such-key")
	unknown, _ := jwt.Sign(token, jwt.WithKey(jwa.ES256, foreignKey))
	if _, err := jwt.Parse(unknown, jwt.WithKeyProvider(KeyProvider(set.LookupContext))); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown kid: got %v, want ErrUnknownKey", err)
	}
}

func TestParseAlgorithm(t *testing.T) {
	for _, name := range []string{"ES256", "EdDSA", "RS256"} {
		if _, err := ParseAlgorithm(name); err != nil {
			t.Errorf("ParseAlgorithm(%q): %v", name, err)
		}
	}
	for _, name := range []string{"HS256", "none", "", "es256"} {
		if _, err := ParseAlgorithm(name); err == nil {
			t.Errorf("ParseAlgorithm(%q) accepted", name)
		}
	}
}

func decodeHeader(t *testing.T, compact string) map[string]any {
	t.Helper()
	part, _, _ := strings.Cut(compact, ".")
	raw, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		t.Fatal(err)
	}
	var header map[string]any
	if err := json.Unmarshal(raw, &header); err != nil {
		t.Fatal(err)
	}
	return header
}

// setWith returns a Set whose active key is record, with a next key beside it.
func setWith(t *testing.T, record storage.SigningKey) (*Set, error) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), sqlitetest.Dir(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	record.State, record.ActivatedAt = storage.KeyActive, record.CreatedAt
	if err := store.CreateSigningKey(context.Background(), record); err != nil {
		t.Fatal(err)
	}
	return Load(context.Background(), store, jwa.SignatureAlgorithm(record.Algorithm), &Sealer{}, record.CreatedAt)
}

func TestRotationLifecycle(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlitetest.Dir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sealer, _ := NewSealer(bytes.Repeat([]byte{3}, 32))
	set, err := Load(ctx, store, jwa.ES256, sealer, now)
	if err != nil {
		t.Fatal(err)
	}
	token, _ := jwt.NewBuilder().Subject("alice").Build()
	before, _ := set.Sign(token)
	stored, _ := store.ListSigningKeys(ctx)
	for _, key := range stored {
		if !bytes.HasPrefix(key.PrivateKey, []byte("chit-sealed-v1:")) || bytes.Contains(key.PrivateKey, []byte(`"d"`)) {
			t.Fatalf("key %s is stored unencrypted", key.ID)
		}
	}
	var nextID string
	for _, key := range stored {
		if key.State == storage.KeyNext && key.Algorithm == "ES256" {
			nextID = key.ID
		}
	}
	// The next key is published before it signs.
	if _, ok := set.Lookup(nextID); !ok {
		t.Fatal("the next key is not published")
	}
	if err := Rotate(ctx, store, jwa.ES256, sealer, now.Add(time.Minute), 5*time.Minute, false); !errors.Is(err, ErrNextTooYoung) {
		t.Fatalf("rotating onto a one-minute-old key: %v, want ErrNextTooYoung", err)
	}
	if err := Rotate(ctx, store, jwa.ES256, sealer, now.Add(time.Hour), 5*time.Minute, false); err != nil {
		t.Fatal(err)
	}
	if err := set.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	after, _ := set.Sign(token)
	if decodeHeader(t, after)["kid"] != nextID {
		t.Fatalf("after rotation the signer is %v, want the former next key %s", decodeHeader(t, after)["kid"], nextID)
	}
	// Tokens of the retired key still verify.
	for _, signed := range []string{before, after} {
		if _, err := jwt.Parse([]byte(signed), jwt.WithKeyProvider(KeyProvider(set.LookupContext))); err != nil {
			t.Fatalf("verify after rotation: %v", err)
		}
	}
	if !set.ActiveSince().Equal(now.Add(time.Hour)) {
		t.Fatalf("ActiveSince = %v", set.ActiveSince())
	}
	// A server without the key encryption key cannot sign with them.
	if _, err := Load(ctx, store, jwa.ES256, &Sealer{}, now); !errors.Is(err, ErrNoEncryptionKey) {
		t.Fatalf("loading encrypted keys without the key: %v", err)
	}
}

// A replica meeting a kid another replica activated moments ago reads the
// keys again instead of refusing the token until its next periodic reload
// (an attack run: two forced rotations made replica B refuse replica A's
// tokens for 22 seconds). The reload is rate-limited.
func TestUnknownKidReloadsOnce(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlitetest.Dir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := time.Now()
	a, err := Load(ctx, store, jwa.ES256, &Sealer{}, now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(ctx, store, jwa.ES256, &Sealer{}, now)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := Rotate(ctx, store, jwa.ES256, &Sealer{}, now, time.Minute, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	token, err := jwt.NewBuilder().Subject("alice").Build()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := a.Sign(token)
	if err != nil {
		t.Fatal(err)
	}
	kid := kidOf(t, signed)
	if _, ok := b.Lookup(kid); ok {
		t.Fatal("replica B knew the new key without reloading; the test proves nothing")
	}
	if _, ok := b.LookupContext(ctx, kid); !ok {
		t.Fatal("replica B refused a key replica A activated")
	}
	// A made-up kid reloads at most once a second.
	b.lastMissReload = time.Now()
	if _, ok := b.LookupContext(ctx, "made-up"); ok {
		t.Fatal("a made-up kid was found")
	}
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	header, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(header)
	if err != nil {
		t.Fatal(err)
	}
	var fields struct{ Kid string }
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	return fields.Kid
}
