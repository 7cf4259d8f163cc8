package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

func newSession(t *testing.T, id, subject string, createdAt time.Time) storage.Session {
	t.Helper()
	return storage.Session{
		ID: id, SecretHash: randomHash(t), Subject: subject, AuthTime: createdAt, AMR: []string{"pwd"},
		CreatedAt: createdAt, LastUsedAt: createdAt, IdleExpiresAt: createdAt.Add(time.Hour), ExpiresAt: createdAt.Add(24 * time.Hour),
	}
}

func sessionIDs(sessions []storage.Session) []string {
	var ids []string
	for _, session := range sessions {
		ids = append(ids, session.ID)
	}
	return ids
}

// A session round-trips, changes only through UpdateSession (never its id,
// secret digest or subject), and is listed while live.
func testSessions(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if _, err := s.GetSession(ctx, "nothing"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetSession of nothing: %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateSession(ctx, "nothing", func(*storage.Session) error { return nil }); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("UpdateSession of nothing: %v, want ErrNotFound", err)
	}
	first := newSession(t, "s-1", "alice", base)
	first.ClientIDs = []string{"app-a"}
	if err := s.CreateSession(ctx, first, 32); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, first, 32); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("CreateSession of a taken id: %v, want ErrAlreadyExists", err)
	}
	got, err := s.GetSession(ctx, "s-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "s-1" || string(got.SecretHash) != string(first.SecretHash) || got.Subject != "alice" || !sameInstant(got.AuthTime, base) ||
		!slices.Equal(got.AMR, []string{"pwd"}) || !slices.Equal(got.ClientIDs, []string{"app-a"}) || !sameInstant(got.CreatedAt, base) ||
		!sameInstant(got.LastUsedAt, base) || !sameInstant(got.IdleExpiresAt, base.Add(time.Hour)) ||
		!sameInstant(got.ExpiresAt, base.Add(24*time.Hour)) || !got.EndedAt.IsZero() {
		t.Fatalf("GetSession = %+v; want %+v", got, first)
	}
	// A refused update saves nothing.
	refused := errors.New("refused")
	if _, err := s.UpdateSession(ctx, "s-1", func(session *storage.Session) error {
		session.ClientIDs = append(session.ClientIDs, "app-x")
		return refused
	}); !errors.Is(err, refused) {
		t.Fatalf("a refused update: %v", err)
	}
	later := base.Add(10 * time.Minute)
	updated, err := s.UpdateSession(ctx, "s-1", func(session *storage.Session) error {
		session.ClientIDs = append(session.ClientIDs, "app-b")
		session.LastUsedAt, session.IdleExpiresAt = later, later.Add(time.Hour)
		session.ID, session.Subject, session.SecretHash = "other", "mallory", nil
		return nil
	})
	if err != nil || updated.ID != "s-1" || updated.Subject != "alice" || !slices.Equal(updated.ClientIDs, []string{"app-a", "app-b"}) {
		t.Fatalf("UpdateSession = %+v, %v", updated, err)
	}
	got, _ = s.GetSession(ctx, "s-1")
	if got.Subject != "alice" || string(got.SecretHash) != string(first.SecretHash) || !slices.Equal(got.ClientIDs, []string{"app-a", "app-b"}) ||
		!sameInstant(got.LastUsedAt, later) || !sameInstant(got.IdleExpiresAt, later.Add(time.Hour)) {
		t.Fatalf("after UpdateSession: %+v", got)
	}
	if _, err := s.GetSession(ctx, "other"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the id changed: %v", err)
	}

	if err := s.CreateSession(ctx, newSession(t, "s-2", "alice", base.Add(time.Minute)), 32); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, newSession(t, "s-3", "bob", base), 32); err != nil {
		t.Fatal(err)
	}
	listed, err := s.ListSessions(ctx, "alice", base.Add(2*time.Minute), storage.Page{})
	if err != nil || !slices.Equal(sessionIDs(listed), []string{"s-1", "s-2"}) {
		t.Fatalf("ListSessions = %v, %v", sessionIDs(listed), err)
	}
	page, err := s.ListSessions(ctx, "alice", base.Add(2*time.Minute), storage.Page{After: "s-1", Limit: 1})
	if err != nil || !slices.Equal(sessionIDs(page), []string{"s-2"}) {
		t.Fatalf("ListSessions after s-1 = %v, %v", sessionIDs(page), err)
	}
	// s-2 is idle-expired an hour after its start; s-1 was used since.
	if listed, _ := s.ListSessions(ctx, "alice", base.Add(61*time.Minute+30*time.Second), storage.Page{}); !slices.Equal(sessionIDs(listed), []string{"s-1"}) {
		t.Fatalf("ListSessions past s-2's idle expiry = %v", sessionIDs(listed))
	}
	// Ending one by update hides it from the list.
	if _, err := s.UpdateSession(ctx, "s-1", func(session *storage.Session) error {
		session.EndedAt, session.IdleExpiresAt = later, later
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if listed, _ := s.ListSessions(ctx, "alice", base.Add(2*time.Minute), storage.Page{}); !slices.Equal(sessionIDs(listed), []string{"s-2"}) {
		t.Fatalf("ListSessions after ending s-1 = %v", sessionIDs(listed))
	}
	if got, _ := s.GetSession(ctx, "s-1"); !sameInstant(got.EndedAt, later) {
		t.Fatalf("an ended session reads %+v", got)
	}
}

// EndSessions ends every live session of one subject, no one else's.
func testEndSessions(t *testing.T, s storage.Store) {
	ctx := context.Background()
	for _, session := range []storage.Session{newSession(t, "a-1", "alice", base), newSession(t, "a-2", "alice", base), newSession(t, "b-1", "bob", base)} {
		if err := s.CreateSession(ctx, session, 32); err != nil {
			t.Fatal(err)
		}
	}
	end := base.Add(time.Minute)
	if n, err := s.EndSessions(ctx, "alice", end); err != nil || n != 2 {
		t.Fatalf("EndSessions = %d, %v; want 2", n, err)
	}
	if n, err := s.EndSessions(ctx, "alice", end.Add(time.Second)); err != nil || n != 0 {
		t.Fatalf("EndSessions again = %d, %v; want 0", n, err)
	}
	for _, id := range []string{"a-1", "a-2"} {
		got, err := s.GetSession(ctx, id)
		if err != nil || !sameInstant(got.EndedAt, end) || got.Live(end) {
			t.Fatalf("%s after EndSessions: %+v, %v", id, got, err)
		}
	}
	if got, _ := s.GetSession(ctx, "b-1"); !got.EndedAt.IsZero() {
		t.Fatalf("bob's session was ended: %+v", got)
	}
	// The sweep deletes ended sessions at once and expired ones after
	// their expiry, and nothing live.
	if n, err := s.DeleteExpiredSessions(ctx, end.Add(time.Second)); err != nil || n != 2 {
		t.Fatalf("DeleteExpiredSessions = %d, %v; want the 2 ended", n, err)
	}
	if _, err := s.GetSession(ctx, "b-1"); err != nil {
		t.Fatalf("the sweep deleted a live session: %v", err)
	}
	if n, err := s.DeleteExpiredSessions(ctx, base.Add(2*time.Hour)); err != nil || n != 1 {
		t.Fatalf("DeleteExpiredSessions past the idle expiry = %d, %v; want 1", n, err)
	}
	if _, err := s.GetSession(ctx, "b-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an expired session survived the sweep: %v", err)
	}
}

// A subject keeps at most keep live sessions: starting one more ends the
// oldest, and one person's rows stay bounded however often they sign in.
func testSessionsAreBoundedPerSubject(t *testing.T, s storage.Store) {
	ctx := context.Background()
	const keep = 3
	for i := range 10 {
		if err := s.CreateSession(ctx, newSession(t, fmt.Sprintf("s-%02d", i), "alice", base.Add(time.Duration(i)*time.Second)), keep); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateSession(ctx, newSession(t, "bob-1", "bob", base), keep); err != nil {
		t.Fatal(err)
	}
	now := base.Add(time.Minute)
	listed, err := s.ListSessions(ctx, "alice", now, storage.Page{})
	if err != nil || !slices.Equal(sessionIDs(listed), []string{"s-07", "s-08", "s-09"}) {
		t.Fatalf("live sessions = %v, %v; want the newest %d", sessionIDs(listed), err, keep)
	}
	if got, err := s.GetSession(ctx, "s-06"); err != nil || got.EndedAt.IsZero() {
		t.Fatalf("the session pushed out by the newest: %+v, %v; want it ended", got, err)
	}
	if _, err := s.GetSession(ctx, "s-00"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a session ended before the last start is still stored: %v", err)
	}
	if listed, _ := s.ListSessions(ctx, "bob", now, storage.Page{}); len(listed) != 1 {
		t.Fatalf("bob's sessions = %v", sessionIDs(listed))
	}
}

// Concurrent starts by one subject leave at most keep of them live.
func testConcurrentSessionStartsStayBounded(t *testing.T, s storage.Store) {
	ctx := context.Background()
	const keep, starts = 2, 8
	var wg sync.WaitGroup
	errs := make(chan error, starts)
	for i := range starts {
		session := newSession(t, fmt.Sprintf("s-%d", i), "alice", base.Add(time.Duration(i)*time.Millisecond))
		wg.Go(func() { errs <- s.CreateSession(ctx, session, keep) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if listed, err := s.ListSessions(ctx, "alice", base.Add(time.Minute), storage.Page{}); err != nil || len(listed) != keep {
		t.Fatalf("live sessions after %d concurrent starts = %v, %v; want %d", starts, sessionIDs(listed), err, keep)
	}
}

// Deleting a user deletes their sessions, and a code keeps the session it
// was issued through.
func testDeleteUserEndsSessions(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := s.CreateUser(ctx, storage.User{Name: "alice", PasswordHash: "$argon2id$alice", Role: "USER", CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, newSession(t, "s-1", "alice", base), 32); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, newSession(t, "s-2", "bob", base), 32); err != nil {
		t.Fatal(err)
	}
	hash := randomHash(t)
	if err := s.CreateAuthorizationCode(ctx, storage.AuthorizationCode{Hash: hash, ClientID: "app", RedirectURI: "https://app.example/cb",
		Subject: "bob", Role: "USER", AuthTime: base, SessionID: "s-2", ExpiresAt: base.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	code, err := s.RedeemAuthorizationCode(ctx, hash, base, "family", func(storage.AuthorizationCode) error { return nil })
	if err != nil || code.SessionID != "s-2" {
		t.Fatalf("the redeemed code = %+v, %v; want its session s-2", code, err)
	}
	if err := s.DeleteUser(ctx, "alice", storage.SubjectRevocation{Subject: "alice", At: base}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, "s-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a deleted user's session: %v, want ErrNotFound", err)
	}
	if _, err := s.GetSession(ctx, "s-2"); err != nil {
		t.Fatalf("another user's session: %v", err)
	}
}
