package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/postgres/postgrestest"
)

func refreshToken(t *testing.T) storage.RefreshToken {
	t.Helper()
	hash := make([]byte, 32)
	if _, err := rand.Read(hash); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	return storage.RefreshToken{Hash: hash, FamilyID: hex.EncodeToString(hash[:8]), Subject: "alice", Role: "USER",
		IssuedAt: now, ExpiresAt: now.Add(time.Hour), FamilyExpiresAt: now.Add(2 * time.Hour), Generation: 1}
}

func successor(t *testing.T, old storage.RefreshToken) storage.RefreshToken {
	t.Helper()
	next := refreshToken(t)
	next.FamilyID, next.Generation = old.FamilyID, old.Generation+1
	return next
}

// One group answers each rotation in it with its own outcome: rotations of
// different logins in one statement, a second rotation of a login and a
// token from before one record per login one at a time.
func TestGroupAnswersEachRotation(t *testing.T) {
	ctx := context.Background()
	store, err := Open(ctx, postgrestest.FreshDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	a, b, unknown, old := refreshToken(t), refreshToken(t), refreshToken(t), refreshToken(t)
	old.Generation = 0
	for _, token := range []storage.RefreshToken{a, b, old} {
		if err := store.CreateRefreshToken(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	aNext, aRival, bNext, oldNext := successor(t, a), successor(t, a), successor(t, b), successor(t, old)
	batch := []*rotation{
		{oldHash: a.Hash, successor: aNext},
		{oldHash: a.Hash, successor: aRival},
		{oldHash: refreshToken(t).Hash, successor: successor(t, a)},
		{oldHash: b.Hash, successor: bNext},
		{oldHash: unknown.Hash, successor: successor(t, unknown)},
		{oldHash: old.Hash, successor: oldNext},
	}
	want := []error{nil, storage.ErrConflict, storage.ErrNotFound, nil, storage.ErrNotFound, nil}
	for _, r := range batch {
		r.result = make(chan error, 1)
	}
	store.commitBatch(batch)
	for i, r := range batch {
		if got := <-r.result; !errors.Is(got, want[i]) {
			t.Fatalf("rotation %d: got %v, want %v", i, got, want[i])
		}
	}
	for _, next := range []storage.RefreshToken{aNext, bNext, oldNext} {
		if current, err := store.GetRefreshToken(ctx, next.FamilyID, next.Hash); err != nil || current.Generation != next.Generation {
			t.Fatalf("the winning rotation was not stored: %+v, %v", current, err)
		}
	}
	if _, err := store.GetRefreshToken(ctx, aRival.FamilyID, aRival.Hash); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a losing rotation was stored: %v", err)
	}
}
