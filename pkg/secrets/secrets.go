// Package secrets makes and digests the high-entropy secrets Chit hands out
// (refresh tokens, claim tokens, client secrets, authorization codes). Because
// each carries at least 256 random bits, a fast SHA-256 digest is enough to
// make a stolen database useless; a slow password hash would only add latency.
package secrets

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
)

// Random returns n bytes from random, base64url-encoded without padding.
func Random(random io.Reader, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(random, b); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Digest is the SHA-256 of a secret, the form in which secrets are stored.
func Digest(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}
