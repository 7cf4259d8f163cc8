package storagetest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/chit-auth/chit/internal/storage"
)

// A client's logout settings start empty, are replaced as a whole, are the
// client's own, and go with the client.
func testClientLogout(t *testing.T, s storage.Store) {
	ctx := context.Background()
	for _, id := range []string{"web", "other"} {
		if err := s.CreateClient(ctx, storage.Client{ID: id, RedirectURIs: []string{"https://" + id + ".example/cb"}, CreatedAt: base}); err != nil {
			t.Fatal(err)
		}
	}
	if settings, err := s.GetClientLogout(ctx, "web"); err != nil || !logoutEqual(settings, storage.ClientLogout{}) {
		t.Fatalf("a new client's logout settings = %+v, %v; want none", settings, err)
	}
	if settings, err := s.GetClientLogout(ctx, "nobody"); err != nil || !logoutEqual(settings, storage.ClientLogout{}) {
		t.Fatalf("an unknown client's logout settings = %+v, %v; want none", settings, err)
	}
	if err := s.SetClientLogout(ctx, "nobody", storage.ClientLogout{BackchannelLogoutURI: "https://x.example/bc"}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("logout settings of an unknown client: %v, want ErrNotFound", err)
	}
	want := storage.ClientLogout{
		PostLogoutRedirectURIs: []string{"http://127.0.0.1:8080/bye", "https://web.example/signed-out"},
		BackchannelLogoutURI:   "https://web.example/backchannel?tenant=1",
		RevokesRefreshTokens:   true,
	}
	if err := s.SetClientLogout(ctx, "web", want); err != nil {
		t.Fatal(err)
	}
	if settings, err := s.GetClientLogout(ctx, "web"); err != nil || !logoutEqual(settings, want) {
		t.Fatalf("GetClientLogout = %+v, %v; want %+v", settings, err, want)
	}
	if settings, _ := s.GetClientLogout(ctx, "other"); !logoutEqual(settings, storage.ClientLogout{}) {
		t.Fatalf("another client's settings changed: %+v", settings)
	}
	// Replacing drops what is not given again.
	replaced := storage.ClientLogout{PostLogoutRedirectURIs: []string{"https://web.example/bye"}}
	if err := s.SetClientLogout(ctx, "web", replaced); err != nil {
		t.Fatal(err)
	}
	if settings, _ := s.GetClientLogout(ctx, "web"); !logoutEqual(settings, replaced) {
		t.Fatalf("after replacing: %+v, want %+v", settings, replaced)
	}
	if err := s.DeleteClient(ctx, "web", storage.SubjectRevocation{Subject: "client:web", At: base}); err != nil {
		t.Fatal(err)
	}
	// A client made again under the same id starts without settings.
	if err := s.CreateClient(ctx, storage.Client{ID: "web", RedirectURIs: []string{"https://web.example/cb"}, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if settings, err := s.GetClientLogout(ctx, "web"); err != nil || !logoutEqual(settings, storage.ClientLogout{}) {
		t.Fatalf("a recreated client's logout settings = %+v, %v", settings, err)
	}
}

func logoutEqual(a, b storage.ClientLogout) bool {
	return slices.Equal(a.PostLogoutRedirectURIs, b.PostLogoutRedirectURIs) && a.BackchannelLogoutURI == b.BackchannelLogoutURI &&
		a.RevokesRefreshTokens == b.RevokesRefreshTokens
}
