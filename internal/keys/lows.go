package keys

import (
	"crypto/elliptic"
	"encoding/base64"
	"errors"
	"math/big"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// An ECDSA signature (r, s) and (r, n−s) both verify, so every ES256 token
// has a second encoding anyone can derive. Chit signs with the low s only
// (NormalizeLowS) and refuses a high one (HasLowS): one token, one encoding.

var (
	p256Order     = elliptic.P256().Params().N
	p256HalfOrder = new(big.Int).Rsh(p256Order, 1)
)

// NormalizeLowS rewrites a compact ES256 token's signature to its low-s form;
// other algorithms are returned as they are.
func NormalizeLowS(token []byte, alg jwa.SignatureAlgorithm) ([]byte, error) {
	if alg != jwa.ES256 {
		return token, nil
	}
	dot := strings.LastIndexByte(string(token), '.')
	if dot < 0 {
		return nil, errors.New("not a compact token")
	}
	signature, err := base64.RawURLEncoding.DecodeString(string(token[dot+1:]))
	if err != nil || len(signature) != 64 {
		return nil, errors.New("not an ES256 signature")
	}
	s := new(big.Int).SetBytes(signature[32:])
	if s.Cmp(p256HalfOrder) <= 0 {
		return token, nil
	}
	s.Sub(p256Order, s)
	s.FillBytes(signature[32:])
	return append(token[:dot+1:dot+1], base64.RawURLEncoding.EncodeToString(signature)...), nil
}

// HasLowS reports whether a compact token signed with alg carries its one
// accepted signature: for ES256 the low-s form; other algorithms have one.
func HasLowS(token string, alg jwa.SignatureAlgorithm) bool {
	if alg != jwa.ES256 {
		return true
	}
	dot := strings.LastIndexByte(token, '.')
	signature, err := base64.RawURLEncoding.DecodeString(token[dot+1:])
	if dot < 0 || err != nil || len(signature) != 64 {
		return false
	}
	return new(big.Int).SetBytes(signature[32:]).Cmp(p256HalfOrder) <= 0
}
