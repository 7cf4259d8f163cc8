package dpop

import (
	"crypto"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestSignerProof(t *testing.T) {
	signer, err := GenerateSigner()
	if err != nil {
		t.Fatal(err)
	}
	signer.now = func() time.Time { return epoch }
	if signer.Algorithm() != "ES256" {
		t.Fatalf("alg %s", signer.Algorithm())
	}
	if got, _ := Thumbprint(signer.PublicKey()); got != signer.Thumbprint() {
		t.Fatalf("thumbprint %s, public key's %s", signer.Thumbprint(), got)
	}
	first, err := signer.Proof("POST", "https://chit.example.com/oauth2/token?q=1#frag", "token", "n-1")
	if err != nil {
		t.Fatal(err)
	}
	second, _ := signer.Proof("POST", "https://chit.example.com/oauth2/token", "", "")
	var header map[string]any
	var claims, secondClaims map[string]any
	decodePartJSON(t, first, 0, &header)
	decodePartJSON(t, first, 1, &claims)
	decodePartJSON(t, second, 1, &secondClaims)
	if header["typ"] != "dpop+jwt" || header["alg"] != "ES256" || header["jwk"] == nil {
		t.Fatalf("header %v", header)
	}
	if jwkMembers, _ := header["jwk"].(map[string]any); jwkMembers["d"] != nil {
		t.Fatal("the proof carries the private key")
	}
	want := map[string]any{"htm": "POST", "htu": "https://chit.example.com/oauth2/token", "iat": float64(epoch.Unix()),
		"ath": AccessTokenHash("token"), "nonce": "n-1"}
	for name, value := range want {
		if claims[name] != value {
			t.Errorf("%s = %v, want %v", name, claims[name], value)
		}
	}
	if id, _ := claims["jti"].(string); len(id) < 22 || id == secondClaims["jti"] {
		t.Errorf("jti %v then %v: want fresh 128-bit ids", claims["jti"], secondClaims["jti"])
	}
	if _, ok := secondClaims["ath"]; ok {
		t.Error("ath without an access token")
	}
	if _, ok := secondClaims["nonce"]; ok {
		t.Error("nonce without a nonce")
	}
	if _, err := signer.Proof("GET", "/relative", "", ""); err == nil {
		t.Error("a proof for a relative URL")
	}
}

func decodePartJSON(t *testing.T, proof string, part int, dst any) {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(proof, ".")[part])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		t.Fatal(err)
	}
}

func TestNewSigner(t *testing.T) {
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for name, tt := range map[string]struct {
		key  crypto.Signer
		want string
	}{
		"P-256": {newECKey(t, elliptic.P256()), "ES256"}, "P-384": {newECKey(t, elliptic.P384()), "ES384"},
		"P-521": {newECKey(t, elliptic.P521()), "ES512"}, "Ed25519": {edKey, "EdDSA"}, "RSA": {rsa2048(t), "PS256"},
	} {
		signer, err := NewSigner(tt.key)
		if err != nil || signer.Algorithm() != tt.want {
			t.Errorf("%s: %v, %v; want %s", name, signer, err, tt.want)
		}
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224 := newECKey(t, elliptic.P224())
	for name, key := range map[string]crypto.Signer{"RSA-1024": small, "P-224": p224, "nil": nil} {
		if _, err := NewSigner(key); err == nil {
			t.Errorf("%s: a signer", name)
		}
	}
}

func TestLoadSigner(t *testing.T) {
	dir := t.TempDir()
	ec := newECKey(t, elliptic.P384())
	pkcs8, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, blockType string, der []byte, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	public, _ := NewSigner(ec)
	for name, path := range map[string]string{
		"PKCS#8": write("pkcs8.pem", "PRIVATE KEY", pkcs8, 0o600),
		"SEC 1":  write("sec1.pem", "EC PRIVATE KEY", sec1, 0o400),
	} {
		signer, err := LoadSigner(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if signer.Thumbprint() != public.Thumbprint() || signer.Algorithm() != "ES384" {
			t.Errorf("%s: loaded another key", name)
		}
	}
	rsaSigner, err := LoadSigner(write("pkcs1.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa2048(t)), 0o600))
	if err != nil || rsaSigner.Algorithm() != "PS256" {
		t.Fatalf("PKCS#1: %v", err)
	}

	refusals := map[string]string{
		"missing":     filepath.Join(dir, "missing.pem"),
		"not PEM":     filepath.Join(dir, "not.pem"),
		"public key":  write("public.pem", "PUBLIC KEY", pkcs8, 0o600),
		"certificate": write("cert.pem", "CERTIFICATE", pkcs8, 0o600),
		"garbage DER": write("garbage.pem", "PRIVATE KEY", []byte("garbage"), 0o600),
	}
	if err := os.WriteFile(refusals["not PEM"], []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	encrypted := filepath.Join(dir, "encrypted.pem")
	if err := os.WriteFile(encrypted, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00"}, Bytes: sec1}), 0o600); err != nil {
		t.Fatal(err)
	}
	refusals["encrypted"] = encrypted
	if runtime.GOOS != "windows" {
		refusals["group-readable"] = write("group.pem", "PRIVATE KEY", pkcs8, 0o640)
		refusals["world-readable"] = write("world.pem", "PRIVATE KEY", pkcs8, 0o604)
		refusals["group-writable"] = write("gw.pem", "PRIVATE KEY", pkcs8, 0o620)
	}
	for name, path := range refusals {
		if _, err := LoadSigner(path); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}
