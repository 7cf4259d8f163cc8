package servertest

import (
	"context"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/storage"
)

// ForeignToken is an ADMIN token for alice from the test server's issuer,
// signed by a key the server does not hold.
func ForeignToken(t *testing.T) string {
	t.Helper()
	record, err := keys.Generate(jwa.ES256, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.ParseKey(record.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	token, _ := jwt.NewBuilder().Issuer(Issuer).Subject("alice").Audience([]string{"chit"}).
		IssuedAt(time.Now()).Expiration(time.Now().Add(time.Minute)).Claim("role", "ADMIN").Build()
	signed, err := jwt.Sign(token, jwt.WithKey(jwa.ES256, key))
	if err != nil {
		t.Fatal(err)
	}
	// The form Chit signs: any other encoding is refused first.
	if signed, err = keys.NormalizeLowS(signed, jwa.ES256); err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// SignWithServerKey signs token, typed typ, with the active key of the test
// server's algorithm family, read from its store: how a token made with
// one of the server's own keys (its RS256 ID token family, say) is forged.
func SignWithServerKey(t *testing.T, e *Env, algorithm jwa.SignatureAlgorithm, token jwt.Token, typ string) string {
	t.Helper()
	stored, err := e.Store.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := keys.NewSealer(KeyEncryptionKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, record := range stored {
		if record.Algorithm != algorithm.String() || record.State != storage.KeyActive {
			continue
		}
		private, err := sealer.Open(record.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		key, err := jwk.ParseKey(private)
		if err != nil {
			t.Fatal(err)
		}
		headers := jws.NewHeaders()
		if err := headers.Set(jws.TypeKey, typ); err != nil {
			t.Fatal(err)
		}
		signed, err := jwt.Sign(token, jwt.WithKey(algorithm, key, jws.WithProtectedHeaders(headers)))
		if err != nil {
			t.Fatal(err)
		}
		if signed, err = keys.NormalizeLowS(signed, algorithm); err != nil {
			t.Fatal(err)
		}
		return string(signed)
	}
	t.Fatalf("the test server has no active %s key", algorithm)
	return ""
}

// ServerAccessToken is an ADMIN access token for alice as the test server
// would issue one, at+jwt with every claim CheckToken requires.
func ServerAccessToken(t *testing.T, e *Env) jwt.Token {
	t.Helper()
	now := e.Clock.Now()
	token, err := jwt.NewBuilder().Issuer(Issuer).Subject("alice").Audience([]string{Audience}).
		IssuedAt(now).Expiration(now.Add(time.Minute)).Claim("role", "ADMIN").Build()
	if err != nil {
		t.Fatal(err)
	}
	return token
}
