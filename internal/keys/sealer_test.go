package keys

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"
)

func TestSealer(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	sealer, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte(`{"kty":"EC","d":"private"}`)
	sealed, err := sealer.Seal(secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("private")) {
		t.Fatal("sealed key contains the plaintext")
	}
	if opened, err := sealer.Open(sealed); err != nil || !bytes.Equal(opened, secret) {
		t.Fatalf("Open = %q, %v", opened, err)
	}
	other, _ := NewSealer(bytes.Repeat([]byte{8}, 32))
	if _, err := other.Open(sealed); err == nil {
		t.Fatal("a wrong key encryption key opened the key")
	}
	plain, _ := NewSealer(nil)
	if _, err := plain.Open(sealed); !errors.Is(err, ErrNoEncryptionKey) {
		t.Fatalf("no key encryption key: got %v", err)
	}
	if opened, err := sealer.Open(secret); err != nil || !bytes.Equal(opened, secret) {
		t.Fatal("a key stored before encryption was configured must still load")
	}
	if _, err := NewSealer([]byte("short")); err == nil {
		t.Fatal("a short key encryption key was accepted")
	}
}

func TestParseEncryptionKey(t *testing.T) {
	raw := bytes.Repeat([]byte{1}, 32)
	for _, text := range []string{base64.StdEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw) + "\n"} {
		if key, err := ParseEncryptionKey(text); err != nil || !bytes.Equal(key, raw) {
			t.Errorf("ParseEncryptionKey(%q) = %v, %v", text, key, err)
		}
	}
	for _, text := range []string{"not base64!", base64.StdEncoding.EncodeToString(raw[:16])} {
		if _, err := ParseEncryptionKey(text); err == nil {
			t.Errorf("ParseEncryptionKey(%q) accepted", text)
		}
	}
}
