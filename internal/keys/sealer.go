package keys

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
)

// sealedPrefix marks private keys encrypted at rest.
var sealedPrefix = []byte("chit-sealed-v1:")

// ErrNoEncryptionKey is returned for an encrypted private key when the server
// has no key encryption key.
var ErrNoEncryptionKey = errors.New("private keys in the store are encrypted, but no key encryption key is configured (CHIT_KEY_ENCRYPTION_KEY or --key-encryption-key-file)")

// Sealer encrypts private keys at rest with AES-256-GCM under the key
// encryption key from configuration. A Sealer without a key stores them in
// the clear (and the server says so at start).
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a Sealer for a 32-byte key, or a pass-through Sealer for
// an empty one.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) == 0 {
		return &Sealer{}, nil
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("the key encryption key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// ParseEncryptionKey reads a key encryption key written as base64 (standard
// or URL alphabet, padded or not) of 32 random bytes.
func ParseEncryptionKey(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	for _, encoding := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := encoding.DecodeString(text); err == nil {
			if len(key) != 32 {
				return nil, fmt.Errorf("the key encryption key must decode to 32 bytes, got %d", len(key))
			}
			return key, nil
		}
	}
	return nil, errors.New("the key encryption key is not base64 (make one with: head -c 32 /dev/urandom | base64)")
}

// Encrypts reports whether private keys are encrypted at rest.
func (s *Sealer) Encrypts() bool { return s != nil && s.aead != nil }

// Seal protects a private key for the store.
func (s *Sealer) Seal(plaintext []byte) ([]byte, error) {
	if !s.Encrypts() {
		return plaintext, nil
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return nil, err
	}
	sealed := append(bytes.Clone(sealedPrefix), nonce...)
	return s.aead.Seal(sealed, nonce, plaintext, sealedPrefix), nil
}

// Open returns a stored private key in the clear. Keys stored before
// encryption was configured are read as they are.
func (s *Sealer) Open(stored []byte) ([]byte, error) {
	if !bytes.HasPrefix(stored, sealedPrefix) {
		return stored, nil
	}
	if !s.Encrypts() {
		return nil, ErrNoEncryptionKey
	}
	body := stored[len(sealedPrefix):]
	if len(body) < s.aead.NonceSize() {
		return nil, errors.New("sealed private key is truncated")
	}
	plain, err := s.aead.Open(nil, body[:s.aead.NonceSize()], body[s.aead.NonceSize():], sealedPrefix)
	if err != nil {
		return nil, errors.New("cannot decrypt a private key: wrong key encryption key?")
	}
	return plain, nil
}

// IsSealed reports whether a stored private key is encrypted.
func IsSealed(stored []byte) bool { return bytes.HasPrefix(stored, sealedPrefix) }
