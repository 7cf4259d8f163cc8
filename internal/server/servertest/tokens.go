package servertest

import (
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/keys"
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
