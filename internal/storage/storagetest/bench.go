package storagetest

import (
	"context"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

// Bench measures the store operations on the hot paths of the core: the
// reads behind client credentials and password sign-ins, and the durable
// writes of a sign-in and of a refresh rotation (alone and with concurrent
// callers, where a backend's write queueing shows). Every backend runs it
// through its own Benchmark function.
func Bench(b *testing.B, newStore Factory) {
	ctx := context.Background()
	b.Run("GetServiceAccount", func(b *testing.B) {
		s := newStore(b)
		if err := s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: "billing", SecretHash: randomHash(b), CreatedAt: base}); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := s.GetServiceAccount(ctx, "billing"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GetUser", func(b *testing.B) {
		s := newStore(b)
		if err := s.CreateUser(ctx, storage.User{Name: "alice", PasswordHash: "$argon2id$stand-in", Role: "USER", CreatedAt: base}); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := s.GetUser(ctx, "alice"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CreateRefreshToken", func(b *testing.B) {
		s := newStore(b)
		for b.Loop() {
			if err := s.CreateRefreshToken(ctx, newRefreshToken(b, "alice")); err != nil {
				b.Fatal(err)
			}
		}
	})
	rotate := func(b *testing.B, s storage.Store, chain *storage.RefreshToken) {
		next := successorOf(b, *chain, base.Add(time.Minute))
		if err := s.RotateRefreshToken(ctx, chain.Hash, next, []byte("sealed successor")); err != nil {
			b.Fatal(err)
		}
		*chain = next
	}
	startChain := func(b *testing.B, s storage.Store) storage.RefreshToken {
		chain := newRefreshToken(b, "alice")
		if err := s.CreateRefreshToken(ctx, chain); err != nil {
			b.Fatal(err)
		}
		return chain
	}
	b.Run("RotateRefreshToken", func(b *testing.B) {
		s := newStore(b)
		chain := startChain(b, s)
		for b.Loop() {
			rotate(b, s, &chain)
		}
	})
	b.Run("RotateRefreshTokenParallel", func(b *testing.B) {
		s := newStore(b)
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			chain := startChain(b, s)
			for pb.Next() {
				rotate(b, s, &chain)
			}
		})
	})
}
