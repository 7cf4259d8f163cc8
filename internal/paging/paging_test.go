package paging

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/chit-auth/chit/internal/chiterr"
)

// signer is keys.RefreshTokenKeys in small: HMAC under numbered keys, the
// newest signing.
type signer struct {
	keys   map[uint32][]byte
	newest uint32
}

func (s *signer) Tag(parts ...[]byte) (uint32, []byte) {
	return s.newest, s.mac(s.keys[s.newest], parts)
}

func (s *signer) Verify(_ context.Context, id uint32, tag []byte, parts ...[]byte) bool {
	key, ok := s.keys[id]
	return ok && hmac.Equal(tag, s.mac(key, parts))
}

func (s *signer) mac(key []byte, parts [][]byte) []byte {
	mac := hmac.New(sha256.New, key)
	for _, part := range parts {
		mac.Write([]byte{byte(len(part))})
		mac.Write(part)
	}
	return mac.Sum(nil)[:16]
}

func newTokens() (*Tokens, *signer) {
	s := &signer{keys: map[uint32][]byte{1: []byte("first key")}, newest: 1}
	return New(s), s
}

func TestPageSizes(t *testing.T) {
	tokens, _ := newTokens()
	for _, tc := range []struct {
		name      string
		size      int32
		wantLimit int
		wantErr   string
	}{
		{"unset is the default", 0, DefaultSize + 1, ""},
		{"one", 1, 2, ""},
		{"the maximum", MaxSize, MaxSize + 1, ""},
		{"past the maximum", MaxSize + 1, 0, "page_size"},
		{"negative", -1, 0, "page_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			page, err := tokens.Page(context.Background(), "users", Request{Size: tc.size})
			if tc.wantErr != "" {
				if chiterr.KindOf(err) != chiterr.InvalidArgument || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("size %d: got %v, want InvalidArgument naming %s", tc.size, err, tc.wantErr)
				}
				return
			}
			if err != nil || page.Limit != tc.wantLimit || page.After != "" {
				t.Errorf("size %d: got %+v, %v; want limit %d", tc.size, page, err, tc.wantLimit)
			}
		})
	}
}

func TestNextTrimsAndTokenRoundTrips(t *testing.T) {
	tokens, s := newTokens()
	ctx := context.Background()
	page, _ := tokens.Page(ctx, "users", Request{Size: 2})
	name := func(v string) string { return v }

	items, next := Next(tokens, "users", page, []string{"a", "b"}, name)
	if len(items) != 2 || next != "" {
		t.Fatalf("a short last page: %v, next %q", items, next)
	}
	items, next = Next(tokens, "users", page, []string{"a", "b", "c"}, name)
	if len(items) != 2 || next == "" {
		t.Fatalf("a full page: %v, next %q", items, next)
	}
	following, err := tokens.Page(ctx, "users", Request{Size: 2, Token: next})
	if err != nil || following.After != "b" {
		t.Fatalf("next page: %+v, %v; want after b", following, err)
	}

	// A key rotation does not invalidate tokens made before it.
	s.keys[2], s.newest = []byte("second key"), 2
	if following, err := tokens.Page(ctx, "users", Request{Token: next}); err != nil || following.After != "b" {
		t.Fatalf("after a key rotation: %+v, %v", following, err)
	}
}

func TestAlteredTokensAreRefused(t *testing.T) {
	tokens, _ := newTokens()
	ctx := context.Background()
	page, _ := tokens.Page(ctx, "users", Request{Size: 1})
	_, next := Next(tokens, "users", page, []string{"alice", "bob"}, func(v string) string { return v })
	raw, _ := base64.RawURLEncoding.DecodeString(next)

	otherAfter := append(append([]byte{}, raw[:headerBytes]...), "zed"...)
	otherKeyID := append([]byte{0, 0, 0, 9}, raw[4:]...)
	flippedTag := append([]byte{}, raw...)
	flippedTag[5] ^= 1
	for name, token := range map[string]string{
		"another start":     base64.RawURLEncoding.EncodeToString(otherAfter),
		"an unknown key id": base64.RawURLEncoding.EncodeToString(otherKeyID),
		"a flipped MAC bit": base64.RawURLEncoding.EncodeToString(flippedTag),
		"not base64":        "!!!",
		"too short":         base64.RawURLEncoding.EncodeToString(raw[:headerBytes]),
		"too long":          strings.Repeat("A", maxTokenLength+4),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := tokens.Page(ctx, "users", Request{Token: token}); chiterr.KindOf(err) != chiterr.InvalidArgument ||
				!strings.Contains(err.Error(), "page_token") {
				t.Errorf("got %v, want InvalidArgument naming page_token", err)
			}
		})
	}
	// A token of one list is refused by another.
	if _, err := tokens.Page(ctx, "clients", Request{Token: next}); chiterr.KindOf(err) != chiterr.InvalidArgument {
		t.Errorf("a users token for clients: got %v", err)
	}
}
