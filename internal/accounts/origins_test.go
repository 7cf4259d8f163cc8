package accounts_test

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/storage"
)

// failingOrigins is a store whose origin reads fail while down, counting
// them.
type failingOrigins struct {
	storage.Store
	mu    sync.Mutex
	down  bool
	reads int
}

func (f *failingOrigins) ListClientOrigins(ctx context.Context) ([]string, error) {
	f.mu.Lock()
	f.reads++
	down := f.down
	f.mu.Unlock()
	if down {
		return nil, errors.New("store is down")
	}
	return f.Store.ListClientOrigins(ctx)
}

func (f *failingOrigins) setDown(down bool) (reads int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
	return f.reads
}

// A store that cannot be read costs one read per OriginsRefresh, not one per
// request: before any set was read (the answer is the error), and after a
// change through this replica (the last set keeps answering). A registered
// origin is honoured once the store is back.
func TestOriginRegisteredReadsAFailingStoreOncePerRefresh(t *testing.T) {
	ctx := context.Background()
	base, hasher := newStoreAndHasher(t)
	store := &failingOrigins{Store: base}
	now := time.Unix(1_800_000_000, 0)
	var clockMu sync.Mutex
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	advance := func(d time.Duration) { clockMu.Lock(); now = now.Add(d); clockMu.Unlock() }
	d := accounts.NewDirectory(accounts.Config{}, accounts.Dependencies{Store: store, Hasher: hasher, Now: clock, Random: rand.Reader})
	if _, err := d.CreateClient(ctx, "spa", []string{"https://spa.example/cb"}, false, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	const spa, other = "https://spa.example", "https://other.example"

	store.setDown(true)
	for range 100 {
		if _, err := d.OriginRegistered(ctx, spa); err == nil {
			t.Fatal("OriginRegistered answered without an error while the store was down and no set was read")
		}
	}
	if reads := store.setDown(true); reads != 1 {
		t.Fatalf("100 requests while the store was down read it %d times; want 1", reads)
	}

	store.setDown(false)
	advance(accounts.OriginsRefresh)
	if err := d.SetClientOrigins(ctx, "spa", []string{spa}); err != nil {
		t.Fatal(err)
	}
	if ok, err := d.OriginRegistered(ctx, spa); !ok || err != nil {
		t.Fatalf("registered origin: %v, %v", ok, err)
	}
	readsBefore := store.setDown(true)
	// A change through this replica (the fake fails reads only) makes the
	// next request reread; the read fails, the last set answers, and the
	// store is left alone until the next refresh.
	if err := d.SetClientOrigins(ctx, "spa", []string{spa, other}); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if ok, err := d.OriginRegistered(ctx, spa); !ok || err != nil {
			t.Fatalf("with the store down, the last set should answer: %v, %v", ok, err)
		}
	}
	if reads := store.setDown(true) - readsBefore; reads != 1 {
		t.Fatalf("100 requests after a change while the store was down read it %d times; want 1", reads)
	}
	store.setDown(false)
	advance(accounts.OriginsRefresh)
	if ok, err := d.OriginRegistered(ctx, other); !ok || err != nil {
		t.Fatalf("an origin registered while reads failed, once the store is back: %v, %v", ok, err)
	}
}
