package keys

import (
	"context"
	"errors"
	"fmt"

	"github.com/chit-auth/chit/internal/storage"
)

// ClearKeyStore is what EncryptClearKeys needs of the store: every kind of
// private key it holds, and the erasure of the clear copies.
type ClearKeyStore interface {
	storage.SigningKeys
	storage.RefreshTokenKeys
	storage.Providers
	storage.Maintenance
}

// ErrClearCopiesRemain is EncryptClearKeys' error when it encrypted the keys
// but the store could not erase the clear copies its files may still hold.
var ErrClearCopiesRemain = errors.New("the keys are encrypted, but copies in the clear may remain in the database's files")

// EncryptClearKeys encrypts under sealer every private key the store holds
// in the clear, the server's signing keys, providers' keys and the refresh
// token MAC keys alike, and returns how many it encrypted. Once a key
// encryption key is configured no private key may stay readable in the
// store, so the server runs this at start; when it encrypted any, it has the
// store erase the clear copies the replaced rows left in its files (old
// pages, the WAL), or reports ErrClearCopiesRemain. Several replicas may run
// it at once: a key another one encrypted (or a provider renewed) in between
// is left to them.
func EncryptClearKeys(ctx context.Context, store ClearKeyStore, sealer *Sealer) (int, error) {
	if !sealer.Encrypts() {
		return 0, nil
	}
	signingKeys, err := store.ListSigningKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("list signing keys: %w", err)
	}
	providers, err := store.ListProviders(ctx, storage.Page{})
	if err != nil {
		return 0, fmt.Errorf("list providers: %w", err)
	}
	// Keys already encrypted under another key encryption key mean this one
	// is the wrong one: encrypting the rest under it would leave a store no
	// single key opens.
	refreshKeys, err := store.ListRefreshTokenKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("list refresh token keys: %w", err)
	}
	for _, key := range signingKeys {
		if IsSealed(key.PrivateKey) {
			if _, err := sealer.Open(key.PrivateKey); err != nil {
				return 0, fmt.Errorf("signing key %s: %w", key.ID, err)
			}
		}
	}
	for _, key := range refreshKeys {
		if IsSealed(key.Secret) {
			if _, err := sealer.Open(key.Secret); err != nil {
				return 0, fmt.Errorf("refresh token key %d: %w", key.ID, err)
			}
		}
	}
	encrypted := 0
	for _, key := range signingKeys {
		if IsSealed(key.PrivateKey) {
			continue
		}
		sealed, err := sealer.Seal(key.PrivateKey)
		if err != nil {
			return encrypted, err
		}
		switch err := store.ReplaceSigningPrivateKey(ctx, key.ID, key.PrivateKey, sealed); {
		case err == nil:
			encrypted++
		case !errors.Is(err, storage.ErrConflict):
			return encrypted, fmt.Errorf("encrypt signing key %s: %w", key.ID, err)
		}
	}
	for _, key := range refreshKeys {
		if IsSealed(key.Secret) {
			continue
		}
		sealed, err := sealer.Seal(key.Secret)
		if err != nil {
			return encrypted, err
		}
		switch err := store.ReplaceRefreshTokenKeySecret(ctx, key.ID, key.Secret, sealed); {
		case err == nil:
			encrypted++
		case !errors.Is(err, storage.ErrConflict):
			return encrypted, fmt.Errorf("encrypt refresh token key %d: %w", key.ID, err)
		}
	}
	for _, provider := range providers {
		private := provider.Credentials.PrivateKey
		if len(private) == 0 || IsSealed(private) {
			continue
		}
		sealed, err := sealer.Seal(private)
		if err != nil {
			return encrypted, err
		}
		switch err := store.ReplaceProviderPrivateKey(ctx, provider.ID, private, sealed); {
		case err == nil:
			encrypted++
		case !errors.Is(err, storage.ErrConflict):
			return encrypted, fmt.Errorf("encrypt the key of provider %s: %w", provider.ID, err)
		}
	}
	if encrypted > 0 {
		if err := store.EraseReplacedValues(ctx); err != nil {
			return encrypted, fmt.Errorf("%w: %w", ErrClearCopiesRemain, err)
		}
	}
	return encrypted, nil
}
