package keys

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

// RefreshTokenKeyStore is what RefreshTokenKeys needs of the store.
type RefreshTokenKeyStore interface {
	storage.RefreshTokenKeys
}

// refreshKeyBytes is the size of a MAC key.
const refreshKeyBytes = 32

// RefreshTagBytes is the size of the MAC a refresh token carries.
const RefreshTagBytes = 16

// RefreshTokenKeys are the keys of the MACs refresh tokens carry, by which
// the earlier tokens of a login, no longer in the store, are recognised when
// they are presented again. The newest key makes new MACs; every key ever
// made keeps verifying, so adding one (Rotate) signs nobody out and loses no
// reuse detection. Keys are stored sealed like the private keys.
type RefreshTokenKeys struct {
	store  RefreshTokenKeyStore
	sealer *Sealer

	mu     sync.RWMutex
	keys   map[uint32][]byte
	newest uint32
	// newestSince is when the newest key was made.
	newestSince time.Time

	// missMu makes one reload at a time for ids not known here, at most
	// one a second: a caller naming made-up ids cannot make every request
	// read the store.
	missMu       sync.Mutex
	lastMissLoad time.Time
}

// LoadRefreshTokenKeys reads the MAC keys, first making one if there is none.
func LoadRefreshTokenKeys(ctx context.Context, store RefreshTokenKeyStore, sealer *Sealer, now time.Time) (*RefreshTokenKeys, error) {
	stored, err := store.ListRefreshTokenKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list refresh token keys: %w", err)
	}
	if len(stored) == 0 {
		// Replicas starting on an empty store may each make one: all are
		// kept, and the newest makes the MACs everywhere.
		if err := AddRefreshTokenKey(ctx, store, sealer, now); err != nil {
			return nil, err
		}
	}
	k := &RefreshTokenKeys{store: store, sealer: sealer}
	if err := k.Reload(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

// AddRefreshTokenKey makes a new MAC key, which becomes the newest.
func AddRefreshTokenKey(ctx context.Context, store RefreshTokenKeyStore, sealer *Sealer, now time.Time) error {
	for {
		var raw [4 + refreshKeyBytes]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return err
		}
		sealed, err := sealer.Seal(raw[4:])
		if err != nil {
			return fmt.Errorf("encrypt refresh token key: %w", err)
		}
		err = store.CreateRefreshTokenKey(ctx, storage.RefreshTokenKey{ID: binary.BigEndian.Uint32(raw[:4]), Secret: sealed, CreatedAt: now})
		if !errors.Is(err, storage.ErrAlreadyExists) {
			return err
		}
	}
}

// Reload re-reads the keys, picking up keys added by another replica.
func (k *RefreshTokenKeys) Reload(ctx context.Context) error {
	stored, err := k.store.ListRefreshTokenKeys(ctx)
	if err != nil {
		return fmt.Errorf("list refresh token keys: %w", err)
	}
	if len(stored) == 0 {
		// Keys are never deleted: an empty table is a store restored or
		// rebuilt wrongly, and the keys known here stay in use.
		return errors.New("the store has no refresh token keys any more; keeping the ones loaded")
	}
	keys := make(map[uint32][]byte, len(stored))
	for _, key := range stored {
		secret, err := k.sealer.Open(key.Secret)
		if err != nil {
			return fmt.Errorf("refresh token key %d: %w", key.ID, err)
		}
		keys[key.ID] = secret
	}
	newest := stored[len(stored)-1] // oldest first
	k.mu.Lock()
	k.keys, k.newest, k.newestSince = keys, newest.ID, newest.CreatedAt
	k.mu.Unlock()
	return nil
}

// RotateAfter adds a MAC key when the newest is older than since (the
// active signing key's activation): the MAC key rotates with the signing
// key, on whichever replica notices first.
func (k *RefreshTokenKeys) RotateAfter(ctx context.Context, since, now time.Time) error {
	k.mu.RLock()
	current := !k.newestSince.Before(since)
	k.mu.RUnlock()
	if current {
		return nil
	}
	if err := AddRefreshTokenKey(ctx, k.store, k.sealer, now); err != nil {
		return err
	}
	return k.Reload(ctx)
}

// Tag returns the newest key's id and its MAC over parts.
func (k *RefreshTokenKeys) Tag(parts ...[]byte) (uint32, []byte) {
	k.mu.RLock()
	id, key := k.newest, k.keys[k.newest]
	k.mu.RUnlock()
	return id, refreshMAC(key, parts)
}

// Verify reports whether tag is key id's MAC over parts. An id this replica
// does not know yet (added elsewhere moments ago) is looked for once more
// in the store.
func (k *RefreshTokenKeys) Verify(ctx context.Context, id uint32, tag []byte, parts ...[]byte) bool {
	k.mu.RLock()
	key, ok := k.keys[id]
	k.mu.RUnlock()
	if !ok {
		if key, ok = k.lookAgain(ctx, id); !ok {
			return false
		}
	}
	return hmac.Equal(tag, refreshMAC(key, parts))
}

// lookAgain reloads the keys for an id not known here, at most once a
// second.
func (k *RefreshTokenKeys) lookAgain(ctx context.Context, id uint32) ([]byte, bool) {
	k.missMu.Lock()
	defer k.missMu.Unlock()
	if time.Since(k.lastMissLoad) >= time.Second {
		k.lastMissLoad = time.Now()
		if k.Reload(ctx) != nil {
			return nil, false
		}
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	key, ok := k.keys[id]
	return key, ok
}

func refreshMAC(key []byte, parts [][]byte) []byte {
	mac := hmac.New(sha256.New, key)
	for _, part := range parts {
		// Each part's length first, so no two lists of parts run together
		// into the same input.
		var length [4]byte
		binary.BigEndian.PutUint32(length[:], uint32(len(part)))
		mac.Write(length[:])
		mac.Write(part)
	}
	return mac.Sum(nil)[:RefreshTagBytes]
}
