package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Signer makes DPoP proofs with one private key. It is safe for concurrent
// use.
type Signer struct {
	key        crypto.Signer
	alg        jwa.SignatureAlgorithm
	public     jwk.Key
	thumbprint string
	now        func() time.Time
}

// GenerateSigner makes a signer with a fresh P-256 key held in memory only
// (ES256): tokens bound to it die with the process, which suits most
// clients.
func GenerateSigner() (*Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return NewSigner(key)
}

// NewSigner makes a signer with key: ECDSA on P-256, P-384 or P-521 signs
// with ES256, ES384 or ES512, Ed25519 with EdDSA, RSA of at least 2048
// bits with PS256. key may be a hardware or KMS key that implements
// crypto.Signer for those algorithms.
func NewSigner(key crypto.Signer) (*Signer, error) {
	if key == nil {
		return nil, errors.New("dpop: no key")
	}
	var alg jwa.SignatureAlgorithm
	switch public := key.Public().(type) {
	case *ecdsa.PublicKey:
		switch public.Curve {
		case elliptic.P256():
			alg = jwa.ES256
		case elliptic.P384():
			alg = jwa.ES384
		case elliptic.P521():
			alg = jwa.ES512
		default:
			return nil, fmt.Errorf("dpop: the curve %s is not P-256, P-384 or P-521", public.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		alg = jwa.EdDSA
	case *rsa.PublicKey:
		if public.N.BitLen() < MinRSABits {
			return nil, fmt.Errorf("dpop: the RSA key is shorter than %d bits", MinRSABits)
		}
		if public.N.BitLen() > MaxRSABits {
			// Verifiers refuse its proofs (checkPublicKey).
			return nil, fmt.Errorf("dpop: the RSA key is longer than %d bits", MaxRSABits)
		}
		alg = jwa.PS256
	default:
		return nil, fmt.Errorf("dpop: a %T key cannot sign proofs", public)
	}
	public, err := jwk.FromRaw(key.Public())
	if err != nil {
		return nil, fmt.Errorf("dpop: public key: %w", err)
	}
	thumbprint, err := Thumbprint(public)
	if err != nil {
		return nil, err
	}
	return &Signer{key: key, alg: alg, public: public, thumbprint: thumbprint, now: time.Now}, nil
}

// maxKeyFile bounds a key file read: an RSA-8192 PKCS#8 PEM is under 7 KiB.
const maxKeyFile = 64 << 10

// LoadSigner makes a signer with the private key in the PEM file at path:
// PKCS#8 ("PRIVATE KEY"), SEC 1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE
// KEY"), unencrypted. As ssh does for its keys, it refuses a file that its
// group or others may read or write (on systems with Unix permissions): a
// key others can read binds tokens to whoever reads it, and one they can
// write lets them choose the key.
func LoadSigner(path string) (*Signer, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dpop: %w", err)
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("dpop: %w", err)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("dpop: key file %s is accessible to others (mode %#o); chmod 600 it", path, info.Mode().Perm())
	}
	raw, err := io.ReadAll(io.LimitReader(file, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("dpop: %w", err)
	}
	if len(raw) > maxKeyFile {
		return nil, fmt.Errorf("dpop: key file %s is larger than %d KiB", path, maxKeyFile>>10)
	}
	key, err := parsePrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("dpop: key file %s: %w", path, err)
	}
	return NewSigner(key)
}

func parsePrivateKey(raw []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if _, encrypted := block.Headers["Proc-Type"]; encrypted {
		return nil, errors.New("encrypted PEM keys are not supported")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("a %q PEM block is not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T cannot sign", key)
	}
	return signer, nil
}

// Thumbprint is the key's RFC 7638 thumbprint, the cnf.jkt of tokens bound
// to it.
func (s *Signer) Thumbprint() string { return s.thumbprint }

// PublicKey is the key's public JWK, as proofs carry it.
func (s *Signer) PublicKey() jwk.Key { return s.public }

// Algorithm is the proofs' alg.
func (s *Signer) Algorithm() string { return s.alg.String() }

// Proof makes a proof for a request of method to url (its query and
// fragment left out of htu, RFC 9449 §4.2) with a fresh random jti and
// the current time; with ath when accessToken is not empty and nonce when
// nonce is not.
func (s *Signer) Proof(method, url, accessToken, nonce string) (string, error) {
	target, err := proofURL(url)
	if err != nil {
		return "", err
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", err
	}
	claims := map[string]any{
		"jti": base64.RawURLEncoding.EncodeToString(id),
		"htm": method,
		"htu": target,
		"iat": s.now().Unix(),
	}
	if accessToken != "" {
		claims["ath"] = AccessTokenHash(accessToken)
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	headers := jws.NewHeaders()
	for name, value := range map[string]any{jws.TypeKey: ProofType, jws.JWKKey: s.public} {
		if err := headers.Set(name, value); err != nil {
			return "", err
		}
	}
	signed, err := jws.Sign(payload, jws.WithKey(s.alg, s.key, jws.WithProtectedHeaders(headers)))
	if err != nil {
		return "", fmt.Errorf("dpop: sign proof: %w", err)
	}
	return string(signed), nil
}

// proofURL is raw without query and fragment.
func proofURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("dpop: %q is not an absolute URL", raw)
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	return u.String(), nil
}
