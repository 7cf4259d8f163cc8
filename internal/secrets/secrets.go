// Package secrets makes and digests the high-entropy secrets Chit hands out
// (refresh tokens, claim tokens, client secrets, authorization codes). Because
// each carries at least 256 random bits, a fast SHA-256 digest is enough to
// make a stolen database useless; a slow password hash would only add latency.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
)

// MaxTokenLength bounds every opaque token or code a caller presents
// (refresh, claim and provider refresh tokens, authorization codes); Chit's
// own are far shorter.
const MaxTokenLength = 8 << 10

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

// Seal encrypts plaintext with AES-256-GCM under a key derived from secret
// and purpose. Only a holder of secret can open it: Chit uses it to keep a
// token's answer (a provider's refresh token, a rotated token's successor)
// for whoever presents that same token again.
func Seal(purpose, secret, plaintext string, random io.Reader) ([]byte, error) {
	aead, err := sealCipher(purpose, secret)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(random, nonce); err != nil {
		return nil, fmt.Errorf("read nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, []byte(plaintext), []byte(purpose)), nil
}

// Open decrypts what Seal made with the same purpose and secret.
func Open(purpose, secret string, sealed []byte) (string, error) {
	aead, err := sealCipher(purpose, secret)
	if err != nil {
		return "", err
	}
	if len(sealed) < aead.NonceSize() {
		return "", errors.New("sealed value too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(purpose))
	if err != nil {
		return "", fmt.Errorf("open sealed value: %w", err)
	}
	return string(plain), nil
}

func sealCipher(purpose, secret string) (cipher.AEAD, error) {
	key := sha256.Sum256([]byte("chit seal v1\x00" + purpose + "\x00" + secret))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
