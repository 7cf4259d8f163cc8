package dpop

import (
	"crypto/elliptic"
	"encoding/base64"
	"strings"
	"testing"
)

// A jwk whose coordinates are not a point of its curve, or whose Ed25519
// key has the wrong length, is refused as a malformed key, never a panic:
// jwx parses such keys, and computing their thumbprint (an EC coordinate
// longer than the curve's size) or verifying with them (an Ed25519 key
// that is not 32 bytes) panicked, which net/http survives by dropping the
// connection but a gRPC server without a recovery interceptor (a service
// using pkg/verifier) does not survive at all. Found by fuzzing the
// proofs sent to /oauth2/token.
func TestVerifyRefusesMalformedKeysWithoutPanicking(t *testing.T) {
	key := newECKey(t, elliptic.P256())
	good := publicJWK(t, key.Public())
	long := base64.RawURLEncoding.EncodeToString(append([]byte{0xff}, make([]byte, 32)...))
	zeros := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	for name, jwk := range map[string]map[string]any{
		"EC x of 33 bytes":        {"kty": "EC", "crv": "P-256", "x": long, "y": good["y"]},
		"EC y of 33 bytes":        {"kty": "EC", "crv": "P-256", "x": good["x"], "y": long},
		"EC point not on curve":   {"kty": "EC", "crv": "P-256", "x": zeros, "y": good["y"]},
		"EC x of 2 bytes":         {"kty": "EC", "crv": "P-256", "x": "AAE", "y": good["y"]},
		"Ed25519 key of 31 bytes": {"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(make([]byte, 31))},
		"Ed25519 key of 33 bytes": {"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(make([]byte, 33))},
	} {
		t.Run(name, func(t *testing.T) {
			alg := "ES256"
			if jwk["kty"] == "OKP" {
				alg = "EdDSA"
			}
			header := mustJSON(t, map[string]any{"typ": "dpop+jwt", "alg": alg, "jwk": jwk})
			claims := mustJSON(t, map[string]any{"jti": "id", "htm": "GET", "htu": target, "iat": epoch.Unix()})
			proof := b64([]byte(header)) + "." + b64([]byte(claims)) + "." + b64(make([]byte, 64))
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Verify panicked: %v", r)
					}
				}()
				_, err = newTestVerifier(&clock{now: epoch}, nil).Verify(proof, Request{Method: "GET", URL: target})
			}()
			refusal := refused(t, err, CodeInvalidProof, "")
			if !strings.Contains(refusal.Description, "jwk") {
				t.Errorf("refusal %q does not name the jwk", refusal.Description)
			}
		})
	}
}
