package providers

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// A claim may be retried (its first answer can be lost), and the retry must
// return the same refresh token, which is otherwise kept only as a hash. The
// token is therefore also kept sealed with AES-256-GCM under a key derived
// from the claim token: only whoever presents the claim token can open it,
// and a copy of the database alone cannot.

func sealKey(claimToken string) []byte {
	sum := sha256.Sum256([]byte("chit provider claim v1\x00" + claimToken))
	return sum[:]
}

func seal(claimToken, refreshToken string, random io.Reader) ([]byte, error) {
	aead, err := newAEAD(claimToken)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(random, nonce); err != nil {
		return nil, fmt.Errorf("read nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, []byte(refreshToken), nil), nil
}

func unseal(claimToken string, sealed []byte) (string, error) {
	aead, err := newAEAD(claimToken)
	if err != nil {
		return "", err
	}
	if len(sealed) < aead.NonceSize() {
		return "", errors.New("sealed refresh token too short")
	}
	nonce, ciphertext := sealed[:aead.NonceSize()], sealed[aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, ciphertext, nil)
	if err != nil {
		return "", fmt.Errorf("open sealed refresh token: %w", err)
	}
	return string(plain), nil
}

func newAEAD(claimToken string) (cipher.AEAD, error) {
	block, err := aes.NewCipher(sealKey(claimToken))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
