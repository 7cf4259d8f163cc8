package sessions_test

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/secrets"
	"github.com/chit-auth/chit/internal/sessions"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/sqlite/sqlitetest"
)

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fixture struct {
	store     storage.Store
	directory *accounts.Directory
	service   *sessions.Service
	clock     *clock
}

func newFixture(t *testing.T, cfg sessions.Config) fixture {
	t.Helper()
	store := sqlitetest.Open(t)
	c := &clock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	directory := accounts.NewDirectory(accounts.Config{}, accounts.Dependencies{Store: store, Now: c.Now, Random: rand.Reader})
	if err := store.CreateUser(context.Background(), storage.User{Name: "alice", PasswordHash: "x", Role: "USER", CreatedAt: c.Now()}); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)
	return fixture{store: store, directory: directory, clock: c,
		service: sessions.NewService(cfg, sessions.Dependencies{Store: store, Directory: directory, Now: c.Now, Random: rand.Reader})}
}

var defaults = sessions.Config{IdleTimeout: time.Hour, Lifetime: 24 * time.Hour}

// start signs alice in as AuthenticateUser would, reading her now.
func (f fixture) start(t *testing.T) (string, sessions.Session) {
	t.Helper()
	principal, err := f.directory.LookupUser(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	cookie, session, err := f.service.Start(context.Background(), principal, []string{sessions.AMRPassword}, "")
	if err != nil {
		t.Fatal(err)
	}
	return cookie, session
}

func requireNoSession(t *testing.T, f fixture, cookie, why string) {
	t.Helper()
	if session, err := f.service.Resume(context.Background(), cookie); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("%s: Resume = %+v, %v; want Unauthenticated", why, session, err)
	}
}

func TestStartAndResume(t *testing.T) {
	f := newFixture(t, defaults)
	ctx := context.Background()
	cookie, started := f.start(t)
	if started.Subject != "alice" || !slices.Equal(started.AMR, []string{"pwd"}) || started.AuthTime.IsZero() || !sessions.ValidID(started.ID) {
		t.Fatalf("started %+v", started)
	}
	id, secret, ok := strings.Cut(cookie, ".")
	if !ok || id != started.ID || len(cookie) > sessions.MaxCookieLength {
		t.Fatalf("cookie %q does not name session %s", cookie, started.ID)
	}
	// Only the secret's digest is stored.
	stored, err := f.store.GetSession(ctx, started.ID)
	if err != nil || strings.Contains(string(stored.SecretHash), secret) || len(stored.SecretHash) != 32 {
		t.Fatalf("stored %+v, %v", stored, err)
	}
	f.clock.Advance(30 * time.Minute)
	resumed, err := f.service.Resume(ctx, cookie)
	if err != nil || resumed.ID != started.ID || !resumed.AuthTime.Equal(started.AuthTime) {
		t.Fatalf("Resume = %+v, %v", resumed, err)
	}
	// Signing a client in records it and starts the idle time again.
	session := resumed
	for _, client := range []string{"app-a", "app-b", "app-a"} {
		if session, err = f.service.SignedIn(ctx, session, client); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.Advance(45 * time.Minute)
	resumed, err = f.service.Resume(ctx, cookie)
	if err != nil || !slices.Equal(resumed.ClientIDs, []string{"app-a", "app-b"}) {
		t.Fatalf("after two clients, 75 minutes in: %+v, %v", resumed, err)
	}
	// Its last use was 45 minutes ago: this one is written, app-a last.
	touched, err := f.service.SignedIn(ctx, resumed, "app-a")
	if err != nil || !touched.IdleExpiresAt.Equal(f.clock.Now().Add(time.Hour)) || !slices.Equal(touched.ClientIDs, []string{"app-b", "app-a"}) {
		t.Fatalf("SignedIn 45 minutes after the last use = %+v, %v", touched, err)
	}
	// A client already listed on a session used within the minute writes
	// nothing.
	if again, err := f.service.SignedIn(ctx, touched, "app-b"); err != nil || !slices.Equal(again.ClientIDs, touched.ClientIDs) {
		t.Fatalf("SignedIn again at once = %+v, %v", again, err)
	}
	if stored, _ := f.store.GetSession(ctx, started.ID); !slices.Equal(stored.ClientIDs, []string{"app-b", "app-a"}) {
		t.Fatalf("a use within the minute was written: %+v", stored)
	}
	f.clock.Advance(2 * time.Minute)
	if moved, err := f.service.SignedIn(ctx, touched, "app-b"); err != nil || !slices.Equal(moved.ClientIDs, []string{"app-a", "app-b"}) ||
		!moved.IdleExpiresAt.Equal(f.clock.Now().Add(time.Hour)) {
		t.Fatalf("SignedIn two minutes later = %+v, %v", moved, err)
	}
	listed, err := f.service.List(ctx, "alice", storage.Page{})
	if err != nil || len(listed) != 1 || listed[0].ID != started.ID {
		t.Fatalf("List = %+v, %v", listed, err)
	}
}

// Every cookie that is not exactly a live session's is refused, and none
// of them fails otherwise than Unauthenticated.
func TestResumeRefusesTamperedCookies(t *testing.T) {
	f := newFixture(t, defaults)
	cookie, started := f.start(t)
	id, secret, _ := strings.Cut(cookie, ".")
	otherSecret := "A" + secret[1:]
	if otherSecret == secret {
		otherSecret = "B" + secret[1:]
	}
	for name, value := range map[string]string{
		"empty":                        "",
		"garbage":                      "garbage",
		"the id alone":                 id,
		"the secret alone":             secret,
		"a wrong secret":               id + "." + otherSecret,
		"an unknown id":                "AAAAAAAAAAAAAAAAAAAAAA." + secret,
		"oversize":                     cookie + strings.Repeat("A", 10_000),
		"a second dot":                 cookie + ".x",
		"not base64url":                id + "." + strings.Repeat("+", 43),
		"NUL bytes":                    id + "\x00." + secret,
		"the digest in place of it":    id + "." + strings.Repeat("0", 64),
		"the id with the wrong length": id[:21] + "." + secret,
	} {
		t.Run(name, func(t *testing.T) { requireNoSession(t, f, value, name) })
	}
	if resumed, err := f.service.Resume(context.Background(), cookie); err != nil || resumed.ID != started.ID {
		t.Fatalf("the real cookie after the attempts: %+v, %v", resumed, err)
	}
}

func TestSessionsExpire(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		f := newFixture(t, defaults)
		cookie, _ := f.start(t)
		f.clock.Advance(time.Hour)
		requireNoSession(t, f, cookie, "unused for the idle timeout")
	})
	t.Run("absolute", func(t *testing.T) {
		f := newFixture(t, defaults)
		cookie, started := f.start(t)
		for range 25 {
			f.clock.Advance(59 * time.Minute)
			if started, err := f.service.SignedIn(context.Background(), started, "app"); err != nil {
				break
			} else if started.ExpiresAt.IsZero() {
				t.Fatal("SignedIn returned no session")
			}
		}
		requireNoSession(t, f, cookie, "past its lifetime, though used")
	})
}

func TestEndedSessionsCannotBeReplayed(t *testing.T) {
	f := newFixture(t, defaults)
	ctx := context.Background()
	cookie, started := f.start(t)
	if _, err := f.service.SignedIn(ctx, started, "app-a"); err != nil {
		t.Fatal(err)
	}
	ended, err := f.service.End(ctx, started.ID)
	if err != nil || ended.ID != started.ID || !ended.EndedAt.IsZero() || !slices.Equal(ended.ClientIDs, []string{"app-a"}) {
		t.Fatalf("End = %+v, %v; want the session as it was", ended, err)
	}
	requireNoSession(t, f, cookie, "replayed after it ended")
	if _, err := f.service.SignedIn(ctx, started, "app-b"); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("SignedIn on an ended session: %v", err)
	}
	if _, err := f.service.End(ctx, "AAAAAAAAAAAAAAAAAAAAAA"); chiterr.KindOf(err) != chiterr.NotFound || !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("End of nothing: %v; want NotFound", err)
	}
	// EndAll ends what is live.
	second, _ := f.start(t)
	third, _ := f.start(t)
	if n, err := f.service.EndAll(ctx, "alice"); err != nil || n != 2 {
		t.Fatalf("EndAll = %d, %v", n, err)
	}
	requireNoSession(t, f, second, "after EndAll")
	requireNoSession(t, f, third, "after EndAll")
}

func TestUserChangesEndSessions(t *testing.T) {
	ctx := context.Background()
	t.Run("deleted", func(t *testing.T) {
		f := newFixture(t, defaults)
		cookie, _ := f.start(t)
		if err := f.directory.DeleteUser(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		requireNoSession(t, f, cookie, "of a deleted user")
	})
	t.Run("recreated", func(t *testing.T) {
		f := newFixture(t, defaults)
		// A session row of an earlier alice (signed in before this alice
		// was created), as a replica's raced sign-in could leave one.
		id, secret := strings.Repeat("A", 22), strings.Repeat("B", 43)
		now := f.clock.Now()
		if err := f.store.CreateSession(ctx, storage.Session{ID: id, SecretHash: secrets.Digest(secret), Subject: "alice",
			AuthTime: now.Add(-time.Hour), CreatedAt: now, LastUsedAt: now, IdleExpiresAt: now.Add(time.Hour), ExpiresAt: now.Add(time.Hour)}, 32); err != nil {
			t.Fatal(err)
		}
		requireNoSession(t, f, id+"."+secret, "of a user created after the sign-in")
	})
	t.Run("subject revoked (password change, logins ended)", func(t *testing.T) {
		f := newFixture(t, defaults)
		cookie, _ := f.start(t)
		f.clock.Advance(time.Minute)
		// What a password change and RevokeLogins record: on every replica,
		// the session is cut off by the time.
		if _, err := f.store.RevokeSubject(ctx, "alice", f.clock.Now()); err != nil {
			t.Fatal(err)
		}
		requireNoSession(t, f, cookie, "after the subject was revoked")
		// A sign-in after the revocation starts a session that works.
		f.clock.Advance(time.Second)
		fresh, _ := f.start(t)
		if _, err := f.service.Resume(ctx, fresh); err != nil {
			t.Fatalf("a session started after the revocation: %v", err)
		}
	})
	t.Run("narrowed grants", func(t *testing.T) {
		f := newFixture(t, defaults)
		cookie, _ := f.start(t)
		f.clock.Advance(time.Minute)
		if err := f.directory.SetUserRole(ctx, "alice", accounts.RoleAdmin); err != nil {
			t.Fatal(err)
		}
		requireNoSession(t, f, cookie, "after the role changed")
	})
}

func TestSessionsAreBoundedPerUser(t *testing.T) {
	f := newFixture(t, sessions.Config{IdleTimeout: time.Hour, Lifetime: 24 * time.Hour, MaxPerUser: 2})
	first, _ := f.start(t)
	f.clock.Advance(time.Second)
	second, _ := f.start(t)
	f.clock.Advance(time.Second)
	third, _ := f.start(t)
	requireNoSession(t, f, first, "the oldest beyond the bound")
	for _, cookie := range []string{second, third} {
		if _, err := f.service.Resume(context.Background(), cookie); err != nil {
			t.Fatalf("a newer session: %v", err)
		}
	}
}

func TestDisabledSessionsStoreNothing(t *testing.T) {
	f := newFixture(t, sessions.Config{Lifetime: 0})
	if f.service.Enabled() {
		t.Fatal("Enabled with a zero lifetime")
	}
	principal, _ := f.directory.LookupUser(context.Background(), "alice")
	if _, _, err := f.service.Start(context.Background(), principal, nil, "app"); chiterr.KindOf(err) != chiterr.FailedPrecondition {
		t.Fatalf("Start when disabled: %v", err)
	}
	if listed, _ := f.store.ListSessions(context.Background(), "alice", f.clock.Now(), storage.Page{}); len(listed) != 0 {
		t.Fatalf("stored %+v", listed)
	}
	requireNoSession(t, f, "AAAAAAAAAAAAAAAAAAAAAA."+strings.Repeat("A", 43), "when disabled")
}

func TestServicesHaveNoSessions(t *testing.T) {
	f := newFixture(t, defaults)
	if _, _, err := f.service.Start(context.Background(), accounts.Principal{Subject: "service:x", Role: accounts.RoleService}, nil, ""); err == nil {
		t.Fatal("a service account got a session")
	}
}
