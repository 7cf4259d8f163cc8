package dpop

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// algorithms are the proof algorithms accepted: asymmetric only (RFC 9449
// §4.2: none and MACs are never allowed, a MAC would need a shared secret).
var algorithms = []jwa.SignatureAlgorithm{
	jwa.ES256, jwa.ES384, jwa.ES512,
	jwa.PS256, jwa.PS384, jwa.PS512,
	jwa.RS256, jwa.RS384, jwa.RS512,
	jwa.EdDSA,
}

// Algorithms are the names of the accepted proof algorithms, for
// discovery's dpop_signing_alg_values_supported and the algs of a DPoP
// challenge (RFC 9449 §5.1, §7.1).
func Algorithms() []string {
	names := make([]string, len(algorithms))
	for i, alg := range algorithms {
		names[i] = alg.String()
	}
	return names
}

// algorithm is name's accepted algorithm.
func algorithm(name string) (jwa.SignatureAlgorithm, bool) {
	for _, alg := range algorithms {
		if alg.String() == name {
			return alg, true
		}
	}
	return "", false
}

// MinRSABits is the smallest RSA modulus accepted, in proofs and signers.
const MinRSABits = 2048

// MaxRSABits is the largest RSA modulus accepted, in proofs and signers. A
// proof's key is the sender's choice and is used before anything else is
// known about the request; the cost of checking its signature grows with
// the square of the modulus, so an unbounded one lets junk proofs cost
// the server many times what they cost their sender.
const MaxRSABits = 4096

// checkPublicKey refuses a proof key that is not a public key fit for alg:
// a private key in a header is a client's blunder that would leak it, a
// symmetric one a shared secret; the curve or key type must be alg's, so a
// proof cannot choose a weaker reading of its key.
func checkPublicKey(key jwk.Key, alg jwa.SignatureAlgorithm) error {
	if key.KeyType() == "oct" {
		return errors.New("jwk is a symmetric key")
	}
	private, err := jwk.IsPrivateKey(key)
	if err != nil {
		return fmt.Errorf("jwk is not an asymmetric key")
	}
	if private {
		return errors.New("jwk holds a private key")
	}
	var raw any
	if err := key.Raw(&raw); err != nil {
		return errors.New("jwk is not a usable key")
	}
	if err := matches(raw, alg); err != nil {
		return err
	}
	return nil
}

// matches checks that public, a raw public key, is of alg's type.
func matches(public any, alg jwa.SignatureAlgorithm) error {
	switch key := public.(type) {
	case *ecdsa.PublicKey:
		want := map[jwa.SignatureAlgorithm]elliptic.Curve{jwa.ES256: elliptic.P256(), jwa.ES384: elliptic.P384(), jwa.ES512: elliptic.P521()}[alg]
		if want == nil || key.Curve != want {
			return fmt.Errorf("alg %s does not fit an EC key on %s", alg, key.Curve.Params().Name)
		}
		// jwx takes coordinates of any length: one longer than the curve's
		// size panicked when the thumbprint was computed, and a point off
		// the curve verifies nothing.
		if _, err := key.ECDH(); err != nil {
			return errors.New("jwk is not a point of its curve")
		}
	case *rsa.PublicKey:
		switch alg {
		case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512:
		default:
			return fmt.Errorf("alg %s does not fit an RSA key", alg)
		}
		if key.N.BitLen() < MinRSABits {
			return fmt.Errorf("RSA key is shorter than %d bits", MinRSABits)
		}
		if key.N.BitLen() > MaxRSABits {
			return fmt.Errorf("RSA key is longer than %d bits", MaxRSABits)
		}
	case ed25519.PublicKey:
		if alg != jwa.EdDSA {
			return fmt.Errorf("alg %s does not fit an Ed25519 key", alg)
		}
		// ed25519.Verify panics on a key of another length, which jwx
		// parses.
		if len(key) != ed25519.PublicKeySize {
			return fmt.Errorf("jwk is not an Ed25519 key of %d bytes", ed25519.PublicKeySize)
		}
	default:
		return fmt.Errorf("alg %s does not fit a %T key", alg, public)
	}
	return nil
}
