package keys

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/sqlite"
	"github.com/chit-auth/chit/internal/storage/sqlite/sqlitetest"
)

// A store written before a key encryption key was configured: signing keys
// and a claimed provider's key in the clear.
func storeWithClearKeys(t *testing.T) (*sqlite.Store, map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlitetest.Dir(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if _, err := Load(ctx, store, jwa.ES256, &Sealer{}, now); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateProviders(ctx, []storage.Provider{{ID: "p", ClaimTokenHash: []byte("claim"), ClaimExpiresAt: now.Add(24 * time.Hour), CreatedAt: now}}); err != nil {
		t.Fatal(err)
	}
	credentials := storage.ProviderCredentials{ProviderID: "p", KeyID: "kid-p", PublicKey: []byte("public"), PrivateKey: []byte("provider private key"), RefreshTokenHash: []byte("refresh")}
	if err := store.ClaimProviders(ctx, []storage.ProviderCredentials{credentials}, now); err != nil {
		t.Fatal(err)
	}
	clear := map[string][]byte{"provider": credentials.PrivateKey}
	signing, _ := store.ListSigningKeys(ctx)
	for _, key := range signing {
		clear[key.ID] = key.PrivateKey
	}
	return store, clear
}

func TestEncryptClearKeys(t *testing.T) {
	ctx := context.Background()
	store, clear := storeWithClearKeys(t)
	sealer, _ := NewSealer(bytes.Repeat([]byte{5}, 32))

	encrypted, err := EncryptClearKeys(ctx, store, sealer)
	if err != nil || encrypted != 5 {
		t.Fatalf("EncryptClearKeys = %d, %v; want the four signing keys (ES256 and RS256, active and next) and the provider's", encrypted, err)
	}
	signing, _ := store.ListSigningKeys(ctx)
	for _, key := range signing {
		if !IsSealed(key.PrivateKey) {
			t.Fatalf("signing key %s is still in the clear", key.ID)
		}
		if opened, err := sealer.Open(key.PrivateKey); err != nil || !bytes.Equal(opened, clear[key.ID]) {
			t.Fatalf("signing key %s does not open to what it was: %v", key.ID, err)
		}
	}
	provider, _ := store.GetProvider(ctx, "p")
	if opened, err := sealer.Open(provider.Credentials.PrivateKey); !IsSealed(provider.Credentials.PrivateKey) || err != nil || !bytes.Equal(opened, clear["provider"]) {
		t.Fatalf("provider key: sealed %v, %v", IsSealed(provider.Credentials.PrivateKey), err)
	}
	// The same keys still sign: nobody's tokens are invalidated.
	if _, err := Load(ctx, store, jwa.ES256, sealer, now); err != nil {
		t.Fatal(err)
	}
	// A second run finds nothing left to do.
	if encrypted, err := EncryptClearKeys(ctx, store, sealer); err != nil || encrypted != 0 {
		t.Fatalf("second run = %d, %v", encrypted, err)
	}
}

func TestEncryptClearKeysRefusesAnotherKeyEncryptionKey(t *testing.T) {
	ctx := context.Background()
	store, _ := storeWithClearKeys(t)
	first, _ := NewSealer(bytes.Repeat([]byte{5}, 32))
	signing, _ := store.ListSigningKeys(ctx)
	sealed, _ := first.Seal(signing[0].PrivateKey)
	if err := store.ReplaceSigningPrivateKey(ctx, signing[0].ID, signing[0].PrivateKey, sealed); err != nil {
		t.Fatal(err)
	}
	// Under a different key the rest would end up in two encryptions no
	// single key opens: refuse, and write nothing.
	other, _ := NewSealer(bytes.Repeat([]byte{6}, 32))
	if _, err := EncryptClearKeys(ctx, store, other); err == nil || !strings.Contains(err.Error(), "wrong key encryption key") {
		t.Fatalf("another key encryption key: %v", err)
	}
	after, _ := store.ListSigningKeys(ctx)
	if IsSealed(after[1].PrivateKey) {
		t.Fatal("a refused run encrypted a key")
	}
	// Without a key encryption key there is nothing to do.
	if encrypted, err := EncryptClearKeys(ctx, store, &Sealer{}); err != nil || encrypted != 0 {
		t.Fatalf("without a key encryption key: %d, %v", encrypted, err)
	}
}

// listCounter counts how often the refresh token keys are read.
type listCounter struct {
	RefreshTokenKeyStore
	lists int
	empty bool
}

func (c *listCounter) ListRefreshTokenKeys(ctx context.Context) ([]storage.RefreshTokenKey, error) {
	c.lists++
	if c.empty {
		return nil, nil
	}
	return c.RefreshTokenKeyStore.ListRefreshTokenKeys(ctx)
}

func TestRefreshTokenKeys(t *testing.T) {
	ctx := context.Background()
	store, _ := storeWithClearKeys(t)
	counter := &listCounter{RefreshTokenKeyStore: store}
	k, err := LoadRefreshTokenKeys(ctx, counter, &Sealer{}, now)
	if err != nil {
		t.Fatal(err)
	}
	id, tag := k.Tag([]byte("a"), []byte("b"))
	if !k.Verify(ctx, id, tag, []byte("a"), []byte("b")) || k.Verify(ctx, id, tag, []byte("ab")) {
		t.Fatal("the MAC does not tell its parts apart")
	}
	// Ids not known here reload the keys at most once a second.
	before := counter.lists
	for i := range 100 {
		k.Verify(ctx, id+uint32(i)+1, tag, []byte("a"))
	}
	if reloads := counter.lists - before; reloads > 1 {
		t.Fatalf("100 unknown ids read the store %d times", reloads)
	}
	// A store that lost its keys does not take them from this replica.
	counter.empty = true
	if err := k.Reload(ctx); err == nil || !k.Verify(ctx, id, tag, []byte("a"), []byte("b")) {
		t.Fatalf("reload of an empty key table: %v; the loaded keys must stay", err)
	}
	counter.empty = false
	// The MAC key follows the signing key: once a signing key newer than
	// the newest MAC key is active, a new MAC key is added, and MACs of the
	// earlier one still verify.
	if err := k.RotateAfter(ctx, now.Add(-time.Hour), now); err != nil {
		t.Fatal(err)
	}
	if newID, _ := k.Tag([]byte("a")); newID != id {
		t.Fatal("a MAC key was added though the signing key is older")
	}
	if err := k.RotateAfter(ctx, now.Add(time.Hour), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if newID, _ := k.Tag([]byte("a")); newID == id || !k.Verify(ctx, id, tag, []byte("a"), []byte("b")) {
		t.Fatal("no new MAC key after the signing key rotated, or the earlier one stopped verifying")
	}
}

// erasureCounting counts the store's erasures, and fails them with fail.
type erasureCounting struct {
	*sqlite.Store
	erased int
	fail   error
}

func (s *erasureCounting) EraseReplacedValues(ctx context.Context) error {
	s.erased++
	if s.fail != nil {
		return s.fail
	}
	return s.Store.EraseReplacedValues(ctx)
}

// Encrypting keys has the store erase the clear copies their rows left in
// its files; a run with nothing to encrypt rewrites nothing. An erasure that
// fails leaves the keys encrypted and says the copies may remain.
func TestEncryptClearKeysErasesTheClearCopies(t *testing.T) {
	ctx := context.Background()
	sealer, _ := NewSealer(bytes.Repeat([]byte{5}, 32))
	clearStore, _ := storeWithClearKeys(t)
	store := &erasureCounting{Store: clearStore}
	if _, err := EncryptClearKeys(ctx, store, sealer); err != nil || store.erased != 1 {
		t.Fatalf("EncryptClearKeys: %v, %d erasures; want 1", err, store.erased)
	}
	if _, err := EncryptClearKeys(ctx, store, sealer); err != nil || store.erased != 1 {
		t.Fatalf("EncryptClearKeys with nothing to encrypt: %v, %d erasures; want none more", err, store.erased)
	}

	clearStore, _ = storeWithClearKeys(t)
	failing := &erasureCounting{Store: clearStore, fail: errors.New("busy")}
	encrypted, err := EncryptClearKeys(ctx, failing, sealer)
	if encrypted != 5 || !errors.Is(err, ErrClearCopiesRemain) {
		t.Fatalf("EncryptClearKeys whose erasure fails = %d, %v; want 5, ErrClearCopiesRemain", encrypted, err)
	}
	signing, _ := failing.ListSigningKeys(ctx)
	for _, key := range signing {
		if !IsSealed(key.PrivateKey) {
			t.Fatalf("signing key %s is in the clear after an erasure failed", key.ID)
		}
	}
}
