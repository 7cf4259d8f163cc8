package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"
)

func TestRandom(t *testing.T) {
	a, err := Random(rand.Reader, 32)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Random(rand.Reader, 32)
	raw, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil || len(raw) != 32 || a == b {
		t.Fatalf("Random = %q (%d bytes), %q", a, len(raw), b)
	}
	if _, err := Random(failingReader{}, 8); err == nil {
		t.Fatal("a failing random source must be an error, never a weak secret")
	}
}

func TestDigest(t *testing.T) {
	if !bytes.Equal(Digest("x"), Digest("x")) || bytes.Equal(Digest("x"), Digest("y")) || len(Digest("x")) != 32 {
		t.Fatal("Digest is not a SHA-256")
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestSealOpensOnlyWithTheSameSecretAndPurpose(t *testing.T) {
	sealed, err := Seal("claim", "secret-a", "refresh-token", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("refresh-token")) {
		t.Fatal("sealed value contains the plaintext")
	}
	if got, err := Open("claim", "secret-a", sealed); err != nil || got != "refresh-token" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	for name, open := range map[string]func() (string, error){
		"other secret":  func() (string, error) { return Open("claim", "secret-b", sealed) },
		"other purpose": func() (string, error) { return Open("rotation", "secret-a", sealed) },
		"truncated":     func() (string, error) { return Open("claim", "secret-a", sealed[:5]) },
		"tampered": func() (string, error) {
			tampered := bytes.Clone(sealed)
			tampered[len(tampered)-1] ^= 1
			return Open("claim", "secret-a", tampered)
		},
	} {
		if _, err := open(); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
}
