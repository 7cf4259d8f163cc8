package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/postgres/postgrestest"
)

// Concurrent reads share queries, and each gets its own row: the same key
// twice, unknown keys, and keys PostgreSQL cannot hold as text (which must
// not fail the reads batched with them).
func TestBatchedReadsAnswerEachCaller(t *testing.T) {
	ctx := context.Background()
	store, err := Open(ctx, postgrestest.FreshDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const users = 20
	for i := range users {
		if err := store.CreateUser(ctx, storage.User{Name: fmt.Sprintf("user-%d", i), PasswordHash: fmt.Sprintf("hash-%d", i), Role: "USER", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for round := range 10 {
		for i := range users + 3 {
			wg.Go(func() {
				switch {
				case i < users:
					user, err := store.GetUser(ctx, fmt.Sprintf("user-%d", (i+round)%users))
					if want := fmt.Sprintf("hash-%d", (i+round)%users); err != nil || user.PasswordHash != want {
						errs <- fmt.Errorf("user %d: %+v, %v", (i+round)%users, user, err)
					}
				case i == users:
					if _, err := store.GetUser(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
						errs <- fmt.Errorf("unknown user: %v", err)
					}
				default:
					if _, err := store.GetUser(ctx, []string{"nul\x00byte", "bad\xffutf8"}[i-users-1]); !errors.Is(err, storage.ErrNotFound) {
						errs <- fmt.Errorf("a key PostgreSQL cannot hold: %v", err)
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A read sees what was committed before it was asked.
	if err := store.CreateUser(ctx, storage.User{Name: "late", PasswordHash: "x", Role: "USER", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.GetUser(ctx, "late"); err != nil {
		t.Fatalf("a read after a write: %v", err)
	}
}

// A caller that leaves stops waiting; a closed store refuses reads.
func TestBatchedReadsLeaveAndClose(t *testing.T) {
	ctx := context.Background()
	store, err := Open(ctx, postgrestest.FreshDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := store.GetUser(cancelled, "alice"); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled read: %v", err)
	}
	store.Close()
	if _, err := store.GetUser(ctx, "alice"); !errors.Is(err, errStoreClosed) {
		t.Fatalf("a read of a closed store: %v", err)
	}
}

// API keys are read with the batched reads: concurrent exchanges of
// different keys, sent with reads of other kinds, each get their own key.
func TestBatchedReadsOfAPIKeys(t *testing.T) {
	ctx := context.Background()
	store, err := Open(ctx, postgrestest.FreshDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const keys = 16
	now := time.Now().Truncate(time.Second)
	for i := range keys {
		name := fmt.Sprintf("owner-%d", i)
		if err := store.CreateUser(ctx, storage.User{Name: name, PasswordHash: "x", Role: "USER", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		key := storage.APIKey{ID: fmt.Sprintf("key-%d", i), Subject: name, Name: "ci", Scopes: []string{fmt.Sprintf("scope-%d", i)},
			Hash: []byte(fmt.Sprintf("hash-%d", i)), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := store.CreateAPIKey(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 10*keys*3)
	for round := range 10 {
		for i := range keys {
			wg.Go(func() {
				id := fmt.Sprintf("key-%d", (i+round)%keys)
				key, err := store.GetAPIKey(ctx, id)
				if want := fmt.Sprintf("hash-%d", (i+round)%keys); err != nil || key.ID != id || string(key.Hash) != want || len(key.Scopes) != 1 {
					errs <- fmt.Errorf("key %s: %+v, %v", id, key, err)
				}
			})
			wg.Go(func() {
				if _, err := store.GetUser(ctx, fmt.Sprintf("owner-%d", i)); err != nil {
					errs <- fmt.Errorf("owner %d: %v", i, err)
				}
			})
			wg.Go(func() {
				if _, err := store.GetAPIKey(ctx, "no-such-key"); !errors.Is(err, storage.ErrNotFound) {
					errs <- fmt.Errorf("unknown key: %v", err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
