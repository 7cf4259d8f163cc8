package servertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/storage"
)

// The RS256 family every server keeps beside its configured algorithm costs
// two RSA-2048 keys at each first start, about a fifth of a second each
// under the race detector: more than the rest of a test server's start. The
// test servers of one test binary share one pair instead, made once. Each
// server's store still holds its own sealed copy, and rotations still make
// fresh keys, so what a test checks of keys is unchanged; only two servers
// of one binary publish the same RS256 kids, which no test relies on the
// opposite of.
var (
	sharedRSAOnce sync.Once
	sharedRSA     [2]storage.SigningKey // active, next; PrivateKey unsealed
	sharedRSAErr  error
)

// seedRSAKeys stores the shared RS256 pair on store, sealed with sealer,
// when the server's families include RS256 and the store has no RS256 key
// yet; the server then finds the family complete and generates none.
func seedRSAKeys(ctx context.Context, store storage.Store, primary jwa.SignatureAlgorithm, sealer *keys.Sealer, now time.Time) error {
	if !slices.Contains(keys.Families(primary), jwa.RS256) {
		return nil
	}
	stored, err := store.ListSigningKeys(ctx)
	if err != nil {
		return err
	}
	for _, key := range stored {
		if key.Algorithm == jwa.RS256.String() {
			return nil
		}
	}
	sharedRSAOnce.Do(func() {
		for i := range sharedRSA {
			if sharedRSA[i], sharedRSAErr = keys.Generate(jwa.RS256, now); sharedRSAErr != nil {
				return
			}
		}
	})
	if sharedRSAErr != nil {
		return sharedRSAErr
	}
	active, next := sharedRSA[0], sharedRSA[1]
	for _, key := range []*storage.SigningKey{&active, &next} {
		if key.PrivateKey, err = sealer.Seal(key.PrivateKey); err != nil {
			return err
		}
		key.CreatedAt = now
	}
	active.State, active.ActivatedAt = storage.KeyActive, now
	if err := store.CreateSigningKey(ctx, active); err != nil && !errors.Is(err, storage.ErrAlreadyExists) {
		return fmt.Errorf("seed the RS256 active key: %w", err)
	}
	if err := store.RotateSigningKeys(ctx, "", next, now); err != nil && !errors.Is(err, storage.ErrConflict) {
		return fmt.Errorf("seed the RS256 next key: %w", err)
	}
	return nil
}
