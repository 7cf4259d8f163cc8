package storagetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

func sameSecurityEventStream(a, b storage.SecurityEventStream) bool {
	return a.ID == b.ID && a.Description == b.Description && a.Delivery == b.Delivery && a.EndpointURL == b.EndpointURL &&
		a.Authorization == b.Authorization && a.Receiver == b.Receiver && a.Audience == b.Audience && slices.Equal(a.EventTypes, b.EventTypes) &&
		a.Status == b.Status && a.Position == b.Position && a.LastError == b.LastError && sameInstant(a.DeliveredAt, b.DeliveredAt) &&
		sameInstant(a.CreatedAt, b.CreatedAt) && sameInstant(a.UpdatedAt, b.UpdatedAt)
}

func pushStream(id string) storage.SecurityEventStream {
	return storage.SecurityEventStream{ID: id, Description: "the SIEM", Delivery: storage.DeliveryPush, EndpointURL: "https://siem.example/events",
		Authorization: "Bearer s3cret", Audience: "https://siem.example", Status: storage.StreamEnabled,
		Position: storage.RevocationCursor{Xact: 7, Seq: 42}, CreatedAt: base, UpdatedAt: base}
}

// Streams round-trip, are unique by id, are listed by id, pause and
// resume, and a poll stream goes with its receiver's service account.
func testSecurityEventStreams(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: "risk-engine", SecretHash: randomHash(t), CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	siem := pushStream("siem")
	poll := storage.SecurityEventStream{ID: "risk", Delivery: storage.DeliveryPoll, Receiver: "risk-engine", Audience: "risk",
		EventTypes: []string{"https://schemas.openid.net/secevent/caep/event-type/session-revoked"}, Status: storage.StreamPaused, CreatedAt: base, UpdatedAt: base}
	for _, stream := range []storage.SecurityEventStream{siem, poll} {
		if err := s.CreateSecurityEventStream(ctx, stream); err != nil {
			t.Fatalf("create %s: %v", stream.ID, err)
		}
	}
	if err := s.CreateSecurityEventStream(ctx, siem); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("a taken id: %v, want ErrAlreadyExists", err)
	}
	orphan := poll
	orphan.ID, orphan.Receiver = "orphan", "nobody"
	if err := s.CreateSecurityEventStream(ctx, orphan); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a receiver that is no service account: %v, want ErrNotFound", err)
	}
	for _, want := range []storage.SecurityEventStream{siem, poll} {
		if got, err := s.GetSecurityEventStream(ctx, want.ID); err != nil || !sameSecurityEventStream(got, want) {
			t.Fatalf("GetSecurityEventStream = %+v, %v; want %+v", got, err, want)
		}
	}
	if _, err := s.GetSecurityEventStream(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an unknown stream: %v, want ErrNotFound", err)
	}
	all, err := s.ListSecurityEventStreams(ctx, storage.Page{})
	if err != nil || len(all) != 2 || all[0].ID != "risk" || all[1].ID != "siem" {
		t.Fatalf("ListSecurityEventStreams = %+v, %v", all, err)
	}
	if page, err := s.ListSecurityEventStreams(ctx, storage.Page{After: "risk", Limit: 1}); err != nil || len(page) != 1 || page[0].ID != "siem" {
		t.Fatalf("a page of streams = %+v, %v", page, err)
	}

	// Pausing keeps the position.
	if err := s.SetSecurityEventStreamStatus(ctx, "siem", storage.StreamPaused, base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetSecurityEventStream(ctx, "siem"); err != nil || got.Status != storage.StreamPaused || got.Position != siem.Position ||
		!sameInstant(got.UpdatedAt, base.Add(time.Minute)) {
		t.Fatalf("after pausing: %+v, %v", got, err)
	}
	if err := s.SetSecurityEventStreamStatus(ctx, "nobody", storage.StreamPaused, base); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("pausing an unknown stream: %v, want ErrNotFound", err)
	}

	// The position moves from where it is, forward only; a failure is
	// recorded without moving it, a success clears it.
	next := storage.RevocationCursor{Xact: 8, Seq: 43}
	if err := s.AdvanceSecurityEventStream(ctx, "siem", siem.Position, siem.Position, "the receiver answered 503", base.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetSecurityEventStream(ctx, "siem"); got.LastError != "the receiver answered 503" || got.Position != siem.Position || !got.DeliveredAt.IsZero() {
		t.Fatalf("after a failure: %+v", got)
	}
	if err := s.AdvanceSecurityEventStream(ctx, "siem", siem.Position, next, "", base.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetSecurityEventStream(ctx, "siem"); got.LastError != "" || got.Position != next || !sameInstant(got.DeliveredAt, base.Add(3*time.Minute)) {
		t.Fatalf("after a delivery: %+v", got)
	}
	if err := s.AdvanceSecurityEventStream(ctx, "siem", siem.Position, storage.RevocationCursor{Xact: 9, Seq: 50}, "", base); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("advancing from a stale position: %v, want ErrConflict", err)
	}
	if err := s.AdvanceSecurityEventStream(ctx, "siem", next, siem.Position, "", base); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("moving back: %v, want ErrConflict", err)
	}
	if got, _ := s.GetSecurityEventStream(ctx, "siem"); got.Position != next {
		t.Fatalf("a refused advance moved the position to %v", got.Position)
	}
	if err := s.AdvanceSecurityEventStream(ctx, "nobody", next, next, "", base); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("advancing an unknown stream: %v, want ErrNotFound", err)
	}

	// Leases: one holder at a time until it runs out; the holder renews.
	if held, err := s.LeaseSecurityEventStream(ctx, "siem", "replica-a", base, base.Add(30*time.Second)); err != nil || !held {
		t.Fatalf("a free lease: %t, %v", held, err)
	}
	if held, err := s.LeaseSecurityEventStream(ctx, "siem", "replica-b", base.Add(10*time.Second), base.Add(40*time.Second)); err != nil || held {
		t.Fatalf("a lease another holds: %t, %v", held, err)
	}
	if held, err := s.LeaseSecurityEventStream(ctx, "siem", "replica-a", base.Add(20*time.Second), base.Add(50*time.Second)); err != nil || !held {
		t.Fatalf("renewing one's own lease: %t, %v", held, err)
	}
	if held, err := s.LeaseSecurityEventStream(ctx, "siem", "replica-b", base.Add(40*time.Second), base.Add(70*time.Second)); err != nil || held {
		t.Fatalf("the renewed lease was not kept: %t, %v", held, err)
	}
	if held, err := s.LeaseSecurityEventStream(ctx, "siem", "replica-b", base.Add(50*time.Second), base.Add(80*time.Second)); err != nil || !held {
		t.Fatalf("a lease that ran out: %t, %v", held, err)
	}
	if held, err := s.LeaseSecurityEventStream(ctx, "nobody", "replica-a", base, base.Add(time.Minute)); held || !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("leasing an unknown stream: %t, %v; want ErrNotFound", held, err)
	}
	// A lease changes nothing an admin reads.
	if got, _ := s.GetSecurityEventStream(ctx, "siem"); got.Position != next || got.Status != storage.StreamPaused {
		t.Fatalf("after leasing: %+v", got)
	}

	if err := s.DeleteSecurityEventStream(ctx, "siem"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSecurityEventStream(ctx, "siem"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleting twice: %v, want ErrNotFound", err)
	}
	// Deleting the receiver deletes its stream: an account made again
	// under its name is not handed the old one's events.
	if err := s.DeleteServiceAccount(ctx, "risk-engine", storage.SubjectRevocation{Subject: "service:risk-engine", At: base}); err != nil {
		t.Fatal(err)
	}
	if rest, err := s.ListSecurityEventStreams(ctx, storage.Page{}); err != nil || len(rest) != 0 {
		t.Fatalf("streams after their receiver went: %+v, %v", rest, err)
	}
}

// Of N replicas taking a free lease at once, exactly one holds it; of N
// advances from one position, exactly one moves it.
func testConcurrentStreamLeaseHasOneWinner(t *testing.T, s storage.Store) {
	ctx := context.Background()
	stream := pushStream("siem")
	if err := s.CreateSecurityEventStream(ctx, stream); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var leases, advances atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder := "replica-" + string(rune('a'+i))
			if held, err := s.LeaseSecurityEventStream(ctx, "siem", holder, base, base.Add(time.Minute)); err != nil {
				t.Error(err)
			} else if held {
				leases.Add(1)
			}
			to := storage.RevocationCursor{Xact: 8, Seq: int64(100 + i)}
			switch err := s.AdvanceSecurityEventStream(ctx, "siem", stream.Position, to, "", base); {
			case err == nil:
				advances.Add(1)
			case !errors.Is(err, storage.ErrConflict):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if leases.Load() != 1 || advances.Load() != 1 {
		t.Fatalf("%d leases held and %d advances made, want 1 and 1", leases.Load(), advances.Load())
	}
}
