package dpop

import (
	"crypto/elliptic"
	"strings"
	"testing"
)

// A member of the wrong JSON type is refused with a message naming it, as
// every other refusal names what is wrong: "jti is not a string", not "not
// a JSON object of the expected members".
func TestVerifyNamesAMemberOfTheWrongType(t *testing.T) {
	key := newECKey(t, elliptic.P256())
	for _, c := range []struct {
		name   string
		change func(p proofParts)
		want   string
	}{
		{"jti", func(p proofParts) { p.claims["jti"] = 5 }, "jti"},
		{"htm", func(p proofParts) { p.claims["htm"] = []string{"GET"} }, "htm"},
		{"htu", func(p proofParts) { p.claims["htu"] = map[string]any{} }, "htu"},
		{"ath", func(p proofParts) { p.claims["ath"] = true }, "ath"},
		{"nonce", func(p proofParts) { p.claims["nonce"] = 1 }, "nonce"},
		{"typ", func(p proofParts) { p.header["typ"] = 1 }, "typ"},
		{"alg", func(p proofParts) { p.header["alg"] = false }, "alg"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := newTestVerifier(&clock{now: epoch}, nil)
			p := goodParts(t, key, "id-"+c.name)
			c.change(p)
			_, err := v.Verify(p.sign(t, key), Request{Method: "GET", URL: target})
			refusal := refused(t, err, CodeInvalidProof, "")
			if !strings.Contains(refusal.Description, c.want) {
				t.Errorf("refusal %q does not name %s", refusal.Description, c.want)
			}
		})
	}
}
