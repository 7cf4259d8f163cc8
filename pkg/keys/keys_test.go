package keys

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/pkg/storage/sqlite"
)

var now = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func TestLoadGeneratesOnceAndPersists(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	first, err := Load(ctx, store, jwa.ES256, now)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Load(ctx, store, jwa.ES256, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if string(first.JWKS()) != string(second.JWKS()) {
		t.Fatal("a second Load generated another key instead of reading the stored one")
	}
	stored, _ := store.ListSigningKeys(ctx)
	if len(stored) != 1 {
		t.Fatalf("%d keys stored, want 1", len(stored))
	}
}

func TestSignAndVerifyEveryAlgorithm(t *testing.T) {
	for _, alg := range []jwa.SignatureAlgorithm{jwa.ES256, jwa.EdDSA, jwa.RS256} {
		t.Run(alg.String(), func(t *testing.T) {
			record, err := Generate(alg, now)
			if err != nil {
				t.Fatal(err)
			}
			set, err := newSet(record)
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
	set, err := newSet(record)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(set.JWKS(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 1 {
		t.Fatalf("JWKS has %d keys, want 1", len(doc.Keys))
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
		if _, ok := doc.Keys[0][private]; ok {
			t.Fatalf("JWKS publishes private member %q", private)
		}
	}
	if doc.Keys[0]["kid"] != record.ID || doc.Keys[0]["alg"] != "ES256" || doc.Keys[0]["use"] != "sig" {
		t.Fatalf("JWKS key %v lacks kid, alg or use", doc.Keys[0])
	}
}

func TestKeyProviderRefusesMismatchedAlgorithmAndUnknownKid(t *testing.T) {
	ours, _ := Generate(jwa.ES256, now)
	set, _ := newSet(ours)
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
