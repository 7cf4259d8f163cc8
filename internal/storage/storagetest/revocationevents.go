package storagetest

import (
	"context"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// awaitRevocationEvents reads events after after until there are want of
// them. PostgreSQL delivers an event only once every transaction older than
// its own has ended (storage.RevocationEvents), which another test's, or
// another program's, transaction on the same server may delay a moment.
func awaitRevocationEvents(t *testing.T, s storage.Store, after storage.RevocationCursor, want int) []storage.RevocationEvent {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		events, err := s.ListRevocationEvents(ctx, after, 100)
		if err != nil {
			t.Fatalf("ListRevocationEvents: %v", err)
		}
		if len(events) >= want || time.Now().After(deadline) {
			if len(events) != want {
				t.Fatalf("ListRevocationEvents after %s = %+v, want %d events", after, events, want)
			}
			return events
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testRevocationEvents(t *testing.T, s storage.Store) {
	ctx := context.Background()
	bounds, err := s.RevocationBounds(ctx)
	if err != nil || bounds != (storage.RevocationBounds{}) {
		t.Fatalf("RevocationBounds of an empty feed = %+v, %v", bounds, err)
	}
	if _, err := s.RevokeRefreshFamily(ctx, "family-1", base); err != nil {
		t.Fatal(err)
	}
	// Revoking again refuses nothing more: no event.
	if _, err := s.RevokeRefreshFamily(ctx, "family-1", base.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeSubject(ctx, "alice", base.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	// An earlier cut-off than the one stored refuses nothing more.
	if err := s.RefuseAccessTokens(ctx, storage.SubjectRevocation{Subject: "alice", At: base.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := s.RefuseAccessTokens(ctx, storage.SubjectRevocation{Subject: "client:billing", At: base.Add(3 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	// A retired signing key deleted, and a provider's key replaced by a
	// renewal, then deleted with the provider.
	if err := s.CreateSigningKey(ctx, storage.SigningKey{ID: "old-key", Algorithm: "EdDSA", PrivateKey: []byte("p"), PublicKey: []byte("P"),
		State: storage.KeyRetired, CreatedAt: base, RetiredAt: base}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteRetiredSigningKeys(ctx, base.Add(time.Second), base.Add(4*time.Second)); err != nil || n != 1 {
		t.Fatalf("DeleteRetiredSigningKeys = %d, %v", n, err)
	}
	if err := s.CreateProviders(ctx, []storage.Provider{newProvider(t, "hippo"), newProvider(t, "slurm")}); err != nil {
		t.Fatal(err)
	}
	first, second := newCredentials(t, "hippo"), newCredentials(t, "hippo")
	if err := s.ClaimProviders(ctx, []storage.ProviderCredentials{first}, base); err != nil {
		t.Fatal(err)
	}
	if err := s.RenewProviders(ctx, []storage.ProviderCredentials{second}, base.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteProvider(ctx, "hippo", base.Add(6*time.Second)); err != nil {
		t.Fatal(err)
	}
	// A provider never claimed held no key: nothing to tell.
	if err := s.DeleteProvider(ctx, "slurm", base.Add(7*time.Second)); err != nil {
		t.Fatal(err)
	}

	events := awaitRevocationEvents(t, s, storage.RevocationCursor{}, 6)
	want := []storage.RevocationEvent{
		{Kind: storage.RevocationFamily, FamilyID: "family-1", RevokedAt: base},
		{Kind: storage.RevocationSubject, Subject: "alice", RevokedAt: base.Add(2 * time.Second)},
		{Kind: storage.RevocationSubject, Subject: "client:billing", RevokedAt: base.Add(3 * time.Second)},
		{Kind: storage.RevocationSigningKeyRemoved, KeyID: "old-key", RevokedAt: base.Add(4 * time.Second)},
		{Kind: storage.RevocationProviderKeyRemoved, ProviderID: "hippo", KeyID: first.KeyID, RevokedAt: base.Add(5 * time.Second)},
		{Kind: storage.RevocationProviderKeyRemoved, ProviderID: "hippo", KeyID: second.KeyID, RevokedAt: base.Add(6 * time.Second)},
	}
	for i, event := range events {
		got := event
		got.Cursor = storage.RevocationCursor{}
		if !sameInstant(got.RevokedAt, want[i].RevokedAt) {
			t.Errorf("event %d revoked at %v, want %v", i, got.RevokedAt, want[i].RevokedAt)
		}
		got.RevokedAt = want[i].RevokedAt
		if got != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, got, want[i])
		}
		if i > 0 && !events[i-1].Cursor.Before(event.Cursor) {
			t.Errorf("event %d's cursor %s is not after %s", i, event.Cursor, events[i-1].Cursor)
		}
		// A cursor round-trips through its wire form.
		if parsed, err := storage.ParseRevocationCursor(event.Cursor.String()); err != nil || parsed != event.Cursor {
			t.Errorf("ParseRevocationCursor(%s) = %v, %v", event.Cursor, parsed, err)
		}
	}

	// Paging: after a cursor come exactly the later events.
	if page, err := s.ListRevocationEvents(ctx, events[1].Cursor, 2); err != nil || len(page) != 2 || page[0].Cursor != events[2].Cursor || page[1].Cursor != events[3].Cursor {
		t.Fatalf("ListRevocationEvents after the second, limit 2 = %+v, %v", page, err)
	}
	bounds, err = s.RevocationBounds(ctx)
	if err != nil || bounds.Head != events[5].Cursor || !bounds.Swept.IsZero() {
		t.Fatalf("RevocationBounds = %+v, %v; want the head at %s", bounds, err, events[5].Cursor)
	}
	for _, cursor := range []storage.RevocationCursor{{}, events[0].Cursor, events[5].Cursor} {
		if err := storage.CheckRevocationCursor(cursor, bounds); err != nil {
			t.Errorf("cursor %s refused: %v", cursor, err)
		}
	}
	forged := storage.RevocationCursor{Xact: events[5].Cursor.Xact, Seq: events[5].Cursor.Seq + 1}
	if err := storage.CheckRevocationCursor(forged, bounds); chiterr.KindOf(err) != chiterr.InvalidArgument {
		t.Errorf("a cursor past the head: got %v, want InvalidArgument", err)
	}

	// The clean-up forgets events with the revocations, and remembers
	// where it stopped: a reader behind it is told.
	if _, err := s.DeleteExpiredRevocations(ctx, base.Add(3*time.Second+time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	left := awaitRevocationEvents(t, s, storage.RevocationCursor{}, 3)
	if left[0].Cursor != events[3].Cursor {
		t.Fatalf("after the clean-up the oldest event is %+v, want %+v", left[0], events[3])
	}
	bounds, err = s.RevocationBounds(ctx)
	if err != nil || bounds.Swept != events[2].Cursor || bounds.Head != events[5].Cursor {
		t.Fatalf("RevocationBounds after the clean-up = %+v, %v; want swept at %s", bounds, err, events[2].Cursor)
	}
	if err := storage.CheckRevocationCursor(events[1].Cursor, bounds); chiterr.KindOf(err) != chiterr.FailedPrecondition || chiterr.ReasonOf(err) != chiterr.ReasonCursorExpired {
		t.Errorf("a cursor behind the clean-up: got %v, want FailedPrecondition %s", err, chiterr.ReasonCursorExpired)
	}
	if err := storage.CheckRevocationCursor(events[2].Cursor, bounds); err != nil {
		t.Errorf("the last deleted event's cursor misses nothing, but: %v", err)
	}
	if _, err := s.DeleteExpiredRevocations(ctx, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	awaitRevocationEvents(t, s, storage.RevocationCursor{}, 0)
	// With every event gone the head stays where it was: cursors handed out
	// are not taken for forgeries.
	bounds, err = s.RevocationBounds(ctx)
	if err != nil || bounds.Swept != events[5].Cursor || bounds.Head != events[5].Cursor {
		t.Fatalf("RevocationBounds with no event left = %+v, %v", bounds, err)
	}
}

func testParseRevocationCursor(t *testing.T, _ storage.Store) {
	for _, bad := range []string{"x", "1-2", "2-1-1", "1-a-1", "1-1-b", "1--1-1", "1-1--1", "1-99999999999999999999-1"} {
		if _, err := storage.ParseRevocationCursor(bad); chiterr.KindOf(err) != chiterr.InvalidArgument {
			t.Errorf("ParseRevocationCursor(%q) = %v, want InvalidArgument", bad, err)
		}
	}
}
