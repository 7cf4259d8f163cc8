package dpopinterop_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/chit-auth/chit/pkg/dpop"
)

const (
	method = "POST"
	target = "https://chit.example.com/oauth2/token"
)

// TestGoJoseProofVerifies: a proof go-jose signs, with the jwk embedded as
// go-jose does it, passes pkg/dpop, and the thumbprints agree.
func TestGoJoseProofVerifies(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		alg jose.SignatureAlgorithm
		key crypto.Signer
	}{{jose.ES256, ecKey}, {jose.EdDSA, edKey}} {
		t.Run(string(tt.alg), func(t *testing.T) {
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: tt.alg, Key: tt.key},
				(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
			if err != nil {
				t.Fatal(err)
			}
			claims, _ := json.Marshal(map[string]any{"jti": "go-jose-1", "htm": method, "htu": target, "iat": time.Now().Unix(),
				"ath": dpop.AccessTokenHash("token")})
			signed, err := signer.Sign(claims)
			if err != nil {
				t.Fatal(err)
			}
			proof, err := signed.CompactSerialize()
			if err != nil {
				t.Fatal(err)
			}
			got, err := dpop.NewVerifier(dpop.Config{}).Verify(proof, dpop.Request{Method: method, URL: target, AccessToken: "token"})
			if err != nil {
				t.Fatal(err)
			}
			thumbprint, err := (&jose.JSONWebKey{Key: tt.key.Public()}).Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if want := base64.RawURLEncoding.EncodeToString(thumbprint); got.JKT != want {
				t.Fatalf("jkt %s, go-jose's thumbprint %s", got.JKT, want)
			}
		})
	}
}

// TestSignerProofVerifiesWithGoJose: go-jose reads a pkg/dpop proof, checks
// its signature with the jwk it carries, and agrees on the thumbprint.
func TestSignerProofVerifiesWithGoJose(t *testing.T) {
	signer, err := dpop.GenerateSigner()
	if err != nil {
		t.Fatal(err)
	}
	proof, err := signer.Proof(method, target, "token", "nonce-1")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	header := parsed.Signatures[0].Protected
	if header.ExtraHeaders["typ"] != "dpop+jwt" || header.JSONWebKey == nil || !header.JSONWebKey.IsPublic() {
		t.Fatalf("header %+v", header)
	}
	payload, err := parsed.Verify(header.JSONWebKey)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if claims["htm"] != method || claims["htu"] != target || claims["ath"] != dpop.AccessTokenHash("token") || claims["nonce"] != "nonce-1" || claims["jti"] == "" {
		t.Fatalf("claims %v", claims)
	}
	thumbprint, err := header.JSONWebKey.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.RawURLEncoding.EncodeToString(thumbprint); got != signer.Thumbprint() {
		t.Fatalf("go-jose's thumbprint %s, the signer's %s", got, signer.Thumbprint())
	}
}
