package dpop

import (
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"strings"
	"testing"
)

// An RSA proof key longer than MaxRSABits is refused before its signature
// is checked: the check's cost grows with the square of the modulus, the
// header is the client's choice, and neither the modulus nor the signature
// need be real, so without a bound a proof with a random 16384-bit
// "modulus" and random signature bytes cost the server 28 times an
// RSA-2048 one (373 refusals a second instead of 10 500 here), for nothing.
func TestVerifyRefusesOversizedRSAKeys(t *testing.T) {
	for _, c := range []struct {
		bits   int
		refuse bool
	}{{MaxRSABits, false}, {MaxRSABits + 8, true}, {16384, true}} {
		modulus, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), uint(c.bits)))
		if err != nil {
			t.Fatal(err)
		}
		modulus.SetBit(modulus, c.bits-1, 1).SetBit(modulus, 0, 1)
		jwk := publicJWK(t, &rsa.PublicKey{N: modulus, E: 65537})
		header := mustJSON(t, map[string]any{"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk})
		proof := b64([]byte(header)) + ".e30." + b64(make([]byte, c.bits/8))
		_, err = newTestVerifier(&clock{now: epoch}, nil).Verify(proof, Request{Method: "GET", URL: target})
		refusal := refused(t, err, CodeInvalidProof, "")
		if got := strings.Contains(refusal.Description, "longer than"); got != c.refuse {
			t.Errorf("a %d-bit RSA key: %q", c.bits, refusal.Description)
		}
	}
}
