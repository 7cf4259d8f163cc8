package providers

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// KeyBits is the size of provider RSA keys.
const KeyBits = 2048

// KeyPair is an RSA key pair in the encodings of the UCloud contract.
type KeyPair struct {
	// PublicDER is X.509 SubjectPublicKeyInfo DER.
	PublicDER []byte
	// PrivateDER is PKCS#8 DER.
	PrivateDER []byte
	// KeyID is the base64url SHA-256 of PublicDER: the `kid` of tokens
	// signed with the pair.
	KeyID string
}

// PublicBase64 is the public key as the API carries it.
func (k KeyPair) PublicBase64() string { return base64.StdEncoding.EncodeToString(k.PublicDER) }

// GenerateKeyPair makes a fresh RSA 2048 key pair.
func GenerateKeyPair() (KeyPair, error) {
	private, err := rsa.GenerateKey(rand.Reader, KeyBits)
	if err != nil {
		return KeyPair{}, fmt.Errorf("generate RSA key: %w", err)
	}
	privateDER, err := x509.MarshalPKCS8PrivateKey(private)
	if err != nil {
		return KeyPair{}, err
	}
	publicDER, err := x509.MarshalPKIXPublicKey(&private.PublicKey)
	if err != nil {
		return KeyPair{}, err
	}
	return KeyPair{PublicDER: publicDER, PrivateDER: privateDER, KeyID: keyID(publicDER)}, nil
}

func keyID(publicDER []byte) string {
	sum := sha256.Sum256(publicDER)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// signingKey turns stored PKCS#8 DER into a JWK that signs RS256 under kid.
func signingKey(privateDER []byte, kid string) (jwk.Key, error) {
	parsed, err := x509.ParsePKCS8PrivateKey(privateDER)
	if err != nil {
		return nil, fmt.Errorf("parse provider private key: %w", err)
	}
	return annotated(parsed, kid)
}

// verifyingKey turns stored SPKI DER into a JWK that verifies RS256 only.
func verifyingKey(publicDER []byte, kid string) (jwk.Key, error) {
	parsed, err := x509.ParsePKIXPublicKey(publicDER)
	if err != nil {
		return nil, fmt.Errorf("parse provider public key: %w", err)
	}
	return annotated(parsed, kid)
}

func annotated(raw any, kid string) (jwk.Key, error) {
	key, err := jwk.FromRaw(raw)
	if err != nil {
		return nil, err
	}
	if err := key.Set(jwk.KeyIDKey, kid); err != nil {
		return nil, err
	}
	if err := key.Set(jwk.AlgorithmKey, jwa.RS256); err != nil {
		return nil, err
	}
	return key, nil
}

// PrivateBase64 is the private key as generateKeyPair answers it.
func (k KeyPair) PrivateBase64() string { return base64.StdEncoding.EncodeToString(k.PrivateDER) }
