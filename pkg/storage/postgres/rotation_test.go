package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/chit-auth/chit/pkg/storage"
	"github.com/chit-auth/chit/pkg/storage/postgres/postgrestest"
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

// One group answers each rotation in it with its own outcome, in one
// statement, or one at a time when the statement fails as a whole (here: a
// successor hash already taken).
func TestGroupAnswersEachRotation(t *testing.T) {
	ctx := context.Background()
	store, err := Open(ctx, postgrestest.FreshDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, withTakenSuccessor := range []bool{false, true} {
		a, b := refreshToken(t), refreshToken(t)
		for _, token := range []storage.RefreshToken{a, b} {
			if err := store.CreateRefreshToken(ctx, token); err != nil {
				t.Fatal(err)
			}
		}
		aNext, aRival, bNext := successor(t, a), successor(t, a), successor(t, b)
		want := []error{nil, storage.ErrConflict, storage.ErrNotFound, nil}
		if withTakenSuccessor {
			bNext.Hash = aNext.Hash
			want[3] = storage.ErrAlreadyExists
		}
		batch := []*rotation{
			{oldHash: a.Hash, successor: aNext},
			{oldHash: a.Hash, successor: aRival},
			{oldHash: refreshToken(t).Hash, successor: successor(t, a)},
			{oldHash: b.Hash, successor: bNext},
		}
		for _, r := range batch {
			r.result = make(chan error, 1)
		}
		store.commitBatch(batch)
		for i, r := range batch {
			if got := <-r.result; !errors.Is(got, want[i]) {
				t.Fatalf("taken successor %v, rotation %d: got %v, want %v", withTakenSuccessor, i, got, want[i])
			}
		}
		if current, err := store.GetRefreshToken(ctx, aNext.Hash); err != nil || current.Generation != 2 {
			t.Fatalf("the winning rotation was not stored: %+v, %v", current, err)
		}
	}
}
