package dpop

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// FuzzVerify feeds the verifier what anyone may send in a DPoP header,
// before any credential is checked: whatever the input, Verify returns (no
// panic), every refusal is an *Error, and it accepts only proofs of the two
// signers' keys (a signature cannot be guessed). Its seeds, run by make
// test, include the malformed keys that once panicked the verifier.
func FuzzVerify(f *testing.F) {
	// Fixed keys: the fuzzing engine runs this function again in each of
	// its workers, which must know the keys the seeds were signed with.
	scalar := sha256.Sum256([]byte("FuzzVerify's P-256 key"))
	ecKey, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), scalar[:])
	if err != nil {
		f.Fatal(err)
	}
	signer, err := NewSigner(ecKey)
	if err != nil {
		f.Fatal(err)
	}
	const token = "an-access-token"
	good, err := signer.Proof(http.MethodGet, target, token, "")
	if err != nil {
		f.Fatal(err)
	}
	edSigner, err := NewSigner(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)))
	if err != nil {
		f.Fatal(err)
	}
	edProof, err := edSigner.Proof(http.MethodGet, target, token, "")
	if err != nil {
		f.Fatal(err)
	}
	encode := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	claims := encode(`{"jti":"x","htm":"GET","htu":"` + target + `","iat":1800000000}`)
	signature := encode(strings.Repeat("\x00", 64))
	for _, seed := range []string{
		good, edProof, "", ".", "..", "a.b.c", good + ".", strings.Replace(good, ".", "..", 1),
		encode(`{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":"`+encode(strings.Repeat("\xff", 33))+`","y":"AA"}}`) + "." + claims + "." + signature,
		encode(`{"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":"`+encode("short")+`"}}`) + "." + claims + "." + signature,
		encode(`{"typ":"dpop+jwt","alg":"none","jwk":{"kty":"oct","k":"AAAA"}}`) + "." + claims + ".",
		encode(`{"typ":"dpop+jwt","typ":"dpop+jwt","alg":"ES256"}`) + "." + claims + "." + signature,
		encode(`{"typ":"dpop+jwt","alg":"ES256","jwk":[[[[[[[[[[]]]]]]]]]]}`) + "." + encode(`{"jti":{"a":{"a":1,"a":2}}}`) + "." + signature,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, proof string) {
		v := NewVerifier(Config{})
		accepted, err := v.Verify(proof, Request{Method: http.MethodGet, URL: target, AccessToken: token})
		if err != nil {
			var refused *Error
			if !errors.As(err, &refused) {
				t.Fatalf("a refusal that is not an *Error: %T %v", err, err)
			}
			return
		}
		if accepted.JKT != signer.Thumbprint() && accepted.JKT != edSigner.Thumbprint() {
			t.Fatalf("accepted a proof of a key no signer holds: %q (%+v)", proof, accepted)
		}
	})
}
