package storagetest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/chit-auth/chit/internal/storage"
)

// A client's origins are replaced as a whole, listed once each across
// clients, and go with the client.
func testClientOrigins(t *testing.T, s storage.Store) {
	ctx := context.Background()
	for _, id := range []string{"spa", "admin-ui"} {
		if err := s.CreateClient(ctx, storage.Client{ID: id, RedirectURIs: []string{"https://" + id + ".example/cb"}, CreatedAt: base}); err != nil {
			t.Fatal(err)
		}
	}
	if origins, err := s.GetClientOrigins(ctx, "spa"); err != nil || len(origins) != 0 {
		t.Fatalf("a new client's origins = %v, %v; want none", origins, err)
	}
	if err := s.SetClientOrigins(ctx, "nobody", []string{"https://x.example"}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("origins of an unknown client: %v, want ErrNotFound", err)
	}
	if err := s.SetClientOrigins(ctx, "spa", []string{"https://spa.example", "http://localhost:3000", "https://spa.example"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetClientOrigins(ctx, "admin-ui", []string{"https://spa.example", "https://admin.example"}); err != nil {
		t.Fatal(err)
	}
	if origins, err := s.GetClientOrigins(ctx, "spa"); err != nil || !slices.Equal(origins, []string{"http://localhost:3000", "https://spa.example"}) {
		t.Fatalf("GetClientOrigins = %v, %v", origins, err)
	}
	all, err := s.ListClientOrigins(ctx)
	if want := []string{"http://localhost:3000", "https://admin.example", "https://spa.example"}; err != nil || !slices.Equal(all, want) {
		t.Fatalf("ListClientOrigins = %v, %v; want %v", all, err, want)
	}
	// Replacing drops what is not given again.
	if err := s.SetClientOrigins(ctx, "spa", []string{"https://spa.example"}); err != nil {
		t.Fatal(err)
	}
	if origins, _ := s.GetClientOrigins(ctx, "spa"); !slices.Equal(origins, []string{"https://spa.example"}) {
		t.Fatalf("after replacing: %v", origins)
	}
	if err := s.SetClientOrigins(ctx, "admin-ui", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteClient(ctx, "spa", storage.SubjectRevocation{Subject: "client:spa", At: base}); err != nil {
		t.Fatal(err)
	}
	if all, err := s.ListClientOrigins(ctx); err != nil || len(all) != 0 {
		t.Fatalf("origins after the client is deleted and the other cleared: %v, %v", all, err)
	}
	// A client made again under the same id starts without origins.
	if err := s.CreateClient(ctx, storage.Client{ID: "spa", RedirectURIs: []string{"https://spa.example/cb"}, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if origins, err := s.GetClientOrigins(ctx, "spa"); err != nil || len(origins) != 0 {
		t.Fatalf("a recreated client's origins = %v, %v", origins, err)
	}
}
