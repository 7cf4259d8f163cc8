package sqlite

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

func refreshToken(t *testing.T) storage.RefreshToken {
	t.Helper()
	hash := make([]byte, 32)
	if _, err := rand.Read(hash); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	return storage.RefreshToken{Hash: hash, FamilyID: string(hash[:8]), Subject: "alice", Role: "USER",
		IssuedAt: now, ExpiresAt: now.Add(time.Hour), FamilyExpiresAt: now.Add(2 * time.Hour), Generation: 1}
}

func successor(t *testing.T, old storage.RefreshToken) storage.RefreshToken {
	t.Helper()
	next := refreshToken(t)
	next.FamilyID, next.Generation = old.FamilyID, old.Generation+1
	return next
}

func openTestStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	store, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store, dir
}

// Rotations that wait while the writer is busy are committed together, and
// every one of them is stored.
func TestWaitingRotationsShareOneCommit(t *testing.T) {
	ctx := context.Background()
	store, dir := openTestStore(t)
	const callers = 32
	olds, nexts := make([]storage.RefreshToken, callers), make([]storage.RefreshToken, callers)
	for i := range olds {
		olds[i] = refreshToken(t)
		nexts[i] = successor(t, olds[i])
		if err := store.CreateRefreshToken(ctx, olds[i]); err != nil {
			t.Fatal(err)
		}
	}
	// Hold the one writer connection, so the rotations queue behind it.
	held, err := store.writer.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := store.groupCommits.Load()
	var queued sync.WaitGroup
	queued.Add(callers)
	store.onRotationQueued = queued.Done
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = store.RotateRefreshToken(ctx, olds[i].Hash, nexts[i], []byte("sealed"))
		}()
	}
	// Every caller has reached the queue (the committer holds the first,
	// the others wait to hand theirs over) before the writer is released.
	queued.Wait()
	if err := held.Rollback(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
	}
	if commits := store.groupCommits.Load() - before; commits > callers/4 {
		t.Fatalf("%d rotations took %d commits; waiting rotations must share commits", callers, commits)
	}
	store.Close()
	reopened, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	for i := range olds {
		old, err := reopened.GetRefreshToken(ctx, olds[i].FamilyID, olds[i].Hash)
		if err != nil || !bytes.Equal(old.ReplacedBy, nexts[i].Hash) {
			t.Fatalf("rotation %d not stored: %+v, %v", i, old, err)
		}
		if _, err := reopened.GetRefreshToken(ctx, nexts[i].FamilyID, nexts[i].Hash); err != nil {
			t.Fatalf("successor %d not stored: %v", i, err)
		}
	}
}

// In one group, each rotation gets its own outcome: a refused one is rolled
// back alone and the others are stored.
func TestGroupAnswersEachRotation(t *testing.T) {
	ctx := context.Background()
	store, _ := openTestStore(t)
	// b is a token from before one record per login whose login somehow
	// has a record already: its rotation cannot store its successor.
	a, b := refreshToken(t), refreshToken(t)
	b.Generation = 0
	bLogin := refreshToken(t)
	bLogin.FamilyID = b.FamilyID
	for _, token := range []storage.RefreshToken{a, b, bLogin} {
		if err := store.CreateRefreshToken(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	aNext, aRival := successor(t, a), successor(t, a)
	batch := []*rotation{
		{oldHash: a.Hash, successor: aNext},
		{oldHash: a.Hash, successor: aRival},
		{oldHash: refreshToken(t).Hash, successor: successor(t, a)},
		{oldHash: b.Hash, successor: successor(t, b)},
	}
	for _, r := range batch {
		r.result = make(chan error, 1)
	}
	store.commitBatch(batch)
	want := []error{nil, storage.ErrConflict, storage.ErrNotFound, storage.ErrAlreadyExists}
	for i, r := range batch {
		if got := <-r.result; !errors.Is(got, want[i]) {
			t.Fatalf("rotation %d: got %v, want %v", i, got, want[i])
		}
	}
	if stored, err := store.GetRefreshToken(ctx, a.FamilyID, a.Hash); err != nil || !bytes.Equal(stored.ReplacedBy, aNext.Hash) {
		t.Fatalf("the winning rotation was not stored: %+v, %v", stored, err)
	}
	if _, err := store.GetRefreshToken(ctx, aRival.FamilyID, aRival.Hash); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the losing rotation stored its successor: %v", err)
	}
	if stored, err := store.GetRefreshToken(ctx, "", b.Hash); err != nil || !stored.RotatedAt.IsZero() {
		t.Fatalf("a refused rotation changed its token: %+v, %v", stored, err)
	}
}

// A rotation asked of a closed store is refused, not left waiting.
func TestRotateAfterCloseFails(t *testing.T) {
	store, _ := openTestStore(t)
	token := refreshToken(t)
	if err := store.CreateRefreshToken(context.Background(), token); err != nil {
		t.Fatal(err)
	}
	store.Close()
	done := make(chan error, 1)
	go func() { done <- store.RotateRefreshToken(context.Background(), token.Hash, successor(t, token), nil) }()
	select {
	case err := <-done:
		if !errors.Is(err, errStoreClosed) {
			t.Fatalf("got %v, want errStoreClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a rotation on a closed store never returned")
	}
}

// The writer keeps a large page cache and checkpoints every 10,000 pages
// (see OpenPath); readers keep SQLite's defaults.
func TestWriterCacheAndCheckpointInterval(t *testing.T) {
	store, _ := openTestStore(t)
	for pragma, want := range map[string]int{"cache_size": -65536, "wal_autocheckpoint": 10000} {
		var got int
		if err := store.writer.QueryRow(`PRAGMA ` + pragma).Scan(&got); err != nil || got != want {
			t.Errorf("writer's %s = %d, %v; want %d", pragma, got, err, want)
		}
	}
	var readerCache int
	if err := store.db.QueryRow(`PRAGMA cache_size`).Scan(&readerCache); err != nil || readerCache == -65536 {
		t.Errorf("a reader's cache_size = %d, %v; want SQLite's default", readerCache, err)
	}
}
