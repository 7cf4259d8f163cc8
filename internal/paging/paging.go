// Package paging turns a list request's page_size and page_token (AIP-158)
// into the store's Page, and the last item of a page into the token of the
// next. A token is the list's name and the key to start after, with a MAC
// under the server's refresh-token keys (a label of its own keeps the two
// uses apart), so a token altered by a client, or taken from another list,
// is refused rather than read; every replica reads the others' tokens, and
// tokens outlive a key rotation as refresh tokens do.
package paging

import (
	"context"
	"encoding/base64"
	"encoding/binary"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/storage"
)

const (
	// DefaultSize is a page's size when a request names none.
	DefaultSize = 50
	// MaxSize bounds page_size.
	MaxSize = 1000
)

// label separates page-token MACs from refresh-token MACs under one key.
var label = []byte("chit page token")

// Signer makes and checks MACs; *keys.RefreshTokenKeys is one.
type Signer interface {
	Tag(parts ...[]byte) (uint32, []byte)
	Verify(ctx context.Context, id uint32, tag []byte, parts ...[]byte) bool
}

var _ Signer = (*keys.RefreshTokenKeys)(nil)

// Tokens makes and reads page tokens.
type Tokens struct {
	signer Signer
}

// New returns page tokens signed by signer.
func New(signer Signer) *Tokens {
	return &Tokens{signer: signer}
}

// Request is one page of a list as a caller asks for it.
type Request struct {
	// Size is page_size: zero for DefaultSize.
	Size int32
	// Token is page_token: empty for the first page.
	Token string
}

// Page returns the store page that answers request for list (the name of
// what is listed): one item more than the page shows, so that Next can
// tell whether another page follows.
func (t *Tokens) Page(ctx context.Context, list string, request Request) (storage.Page, error) {
	size := int(request.Size)
	switch {
	case size < 0:
		return storage.Page{}, chiterr.New(chiterr.InvalidArgument, "page_size must not be negative")
	case size == 0:
		size = DefaultSize
	case size > MaxSize:
		return storage.Page{}, chiterr.New(chiterr.InvalidArgument, "page_size must be at most %d", MaxSize)
	}
	page := storage.Page{Limit: size + 1}
	if request.Token == "" {
		return page, nil
	}
	after, ok := t.read(ctx, list, request.Token)
	if !ok {
		return storage.Page{}, chiterr.New(chiterr.InvalidArgument,
			"page_token is not one this server gave for this list; pass the next_page_token of the previous page unchanged")
	}
	page.After = after
	return page, nil
}

// Next trims items, as read for page, to the page's size and returns the
// token of the next page ("" on the last one). key names an item in the
// list's order.
func Next[T any](t *Tokens, list string, page storage.Page, items []T, key func(T) string) ([]T, string) {
	if page.Limit <= 0 || len(items) < page.Limit {
		return items, ""
	}
	items = items[:page.Limit-1]
	return items, t.make(list, key(items[len(items)-1]))
}

// List answers one page of list for request: read gets the store page
// (one item more than it shows), the items are trimmed to the page and each
// becomes what convert makes of it; key names an item in the list's order.
func List[T, M any](ctx context.Context, t *Tokens, list string, request Request, read func(storage.Page) ([]T, error),
	key func(T) string, convert func(T) M) ([]M, string, error) {
	page, err := t.Page(ctx, list, request)
	if err != nil {
		return nil, "", err
	}
	items, err := read(page)
	if err != nil {
		return nil, "", err
	}
	items, next := Next(t, list, page, items, key)
	converted := make([]M, len(items))
	for i, item := range items {
		converted[i] = convert(item)
	}
	return converted, next, nil
}

// A token is the key id (4 bytes), the MAC (keys.RefreshTagBytes) and the
// key to start after, in base64url.
const headerBytes = 4 + keys.RefreshTagBytes

// maxTokenLength is well above a token for the longest name or id (64
// characters) and keeps an oversized one from being decoded.
const maxTokenLength = 256

func (t *Tokens) make(list, after string) string {
	id, tag := t.signer.Tag(label, []byte(list), []byte(after))
	raw := make([]byte, 4, headerBytes+len(after))
	binary.BigEndian.PutUint32(raw, id)
	raw = append(append(raw, tag...), after...)
	return base64.RawURLEncoding.EncodeToString(raw)
}

func (t *Tokens) read(ctx context.Context, list, token string) (string, bool) {
	if len(token) > maxTokenLength {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) <= headerBytes {
		return "", false
	}
	id, tag, after := binary.BigEndian.Uint32(raw), raw[4:headerBytes], raw[headerBytes:]
	if !t.signer.Verify(ctx, id, tag, label, []byte(list), after) {
		return "", false
	}
	return string(after), true
}
