package tokens_test

import (
	"context"
	"testing"

	"github.com/chit-auth/chit/internal/tokens"
)

// BenchmarkCheckSameToken is the hot-token case: after the first check, no
// signature verification runs (compare with BenchmarkCheckDistinctTokens).
func BenchmarkCheckSameToken(b *testing.B) {
	f := newFixture(b)
	grant, err := issueForClient(context.Background(), f.service, "billing", f.secret, "")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.service.Check(context.Background(), grant.AccessToken); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckDistinctTokens(b *testing.B) {
	f := newFixture(b)
	pool := make([]string, 1024)
	for i := range pool {
		grant, err := issueForClient(context.Background(), f.service, "billing", f.secret, "")
		if err != nil {
			b.Fatal(err)
		}
		pool[i] = grant.AccessToken
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// A fresh service each pool round would defeat the cache; instead
		// measure the first check of each token.
		if i == len(pool) {
			b.StopTimer()
			f = newFixture(b)
			for j := range pool {
				grant, _ := issueForClient(context.Background(), f.service, "billing", f.secret, "")
				pool[j] = grant.AccessToken
			}
			i = 0
			b.StartTimer()
		}
		if _, err := f.service.Check(context.Background(), pool[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkIssueForClient signs an ES256 token after a SHA-256 secret check,
// with no write.
func BenchmarkIssueForClient(b *testing.B) {
	f := newFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := issueForClient(context.Background(), f.service, "billing", f.secret, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefresh rotates one chain on SQLite, each rotation durable.
func BenchmarkRefresh(b *testing.B) {
	f := newFixture(b)
	grant, err := f.service.IssueForPassword(context.Background(), tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if grant, err = f.service.Refresh(context.Background(), tokens.RefreshRequest{Client: apiClient, RefreshToken: grant.RefreshToken}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticate checks a person's token for a call to Chit, from the
// caches (compare with BenchmarkAuthenticateCurrent).
func BenchmarkAuthenticate(b *testing.B) {
	benchmarkAuthenticate(b, (*tokens.Service).Authenticate)
}

// BenchmarkAuthenticateCurrent is the check of every Admin API call: the
// same token, its revocations and its subject read from the store (here
// SQLite in memory; the store benchmarks give a read's cost on disk and on
// PostgreSQL).
func BenchmarkAuthenticateCurrent(b *testing.B) {
	benchmarkAuthenticate(b, (*tokens.Service).AuthenticateCurrent)
}

func benchmarkAuthenticate(b *testing.B, authenticate func(*tokens.Service, context.Context, string) (tokens.Claims, error)) {
	f := newFixture(b)
	grant, err := f.service.IssueForPassword(context.Background(), tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := authenticate(f.service, context.Background(), grant.AccessToken); err != nil {
			b.Fatal(err)
		}
	}
}
