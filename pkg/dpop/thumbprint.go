package dpop

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Thumbprint is the RFC 7638 SHA-256 JWK thumbprint, base64url without
// padding: the value of a bound token's cnf.jkt (RFC 9449 §6.1).
func Thumbprint(key jwk.Key) (string, error) {
	if key == nil {
		return "", fmt.Errorf("dpop: no key to take the thumbprint of")
	}
	sum, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("dpop: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// AccessTokenHash is the ath value for an access token (RFC 9449 §4.2):
// the base64url SHA-256 of its ASCII text.
func AccessTokenHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
