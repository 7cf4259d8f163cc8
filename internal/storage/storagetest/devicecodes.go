package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

const deviceInterval = 5 * time.Second

func newDeviceCode(t *testing.T) storage.DeviceCode {
	t.Helper()
	return storage.DeviceCode{DeviceCodeHash: []byte(rand.Text()), UserCodeHash: []byte(rand.Text()), ClientID: "chit-cli",
		Scope: "openid", RequestedFrom: "192.0.2.7", RequestedAt: base, ExpiresAt: base.Add(10 * time.Minute),
		Interval: deviceInterval, Status: storage.DevicePending}
}

func poll(t *testing.T, s storage.Store, hash []byte, at time.Time) (storage.DeviceCode, storage.DevicePollOutcome) {
	t.Helper()
	code, outcome, err := s.PollDeviceCode(context.Background(), hash, "chit-cli", at, 5*time.Second)
	if err != nil {
		t.Fatalf("PollDeviceCode at %v: %v", at.Sub(base), err)
	}
	return code, outcome
}

func testDeviceCodes(t *testing.T, s storage.Store) {
	ctx := context.Background()
	code := newDeviceCode(t)
	if err := s.CreateDeviceCode(ctx, code); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateDeviceCode(ctx, code); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("duplicate device code: %v", err)
	}
	clash := newDeviceCode(t)
	clash.UserCodeHash = code.UserCodeHash
	if err := s.CreateDeviceCode(ctx, clash); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("duplicate user code: %v", err)
	}
	got, err := s.GetDeviceCodeByUserCode(ctx, code.UserCodeHash)
	if err != nil || !bytes.Equal(got.DeviceCodeHash, code.DeviceCodeHash) || got.ClientID != "chit-cli" || got.Scope != "openid" ||
		got.RequestedFrom != "192.0.2.7" || !sameInstant(got.RequestedAt, base) || got.Interval != deviceInterval || got.Status != storage.DevicePending {
		t.Fatalf("GetDeviceCodeByUserCode = %+v, %v", got, err)
	}
	if _, err := s.GetDeviceCodeByUserCode(ctx, []byte("nothing")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown user code: %v", err)
	}
	if _, _, err := s.PollDeviceCode(ctx, []byte("nothing"), "chit-cli", base, time.Second); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("poll of an unknown device code: %v", err)
	}
	// Another client's poll is not found, and stamps nothing.
	if _, _, err := s.PollDeviceCode(ctx, code.DeviceCodeHash, "tv", base, time.Second); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("poll by another client: %v", err)
	}

	// Pending, then too early, then pending again after the grown interval.
	if _, outcome := poll(t, s, code.DeviceCodeHash, base.Add(time.Second)); outcome != storage.DevicePollPending {
		t.Fatalf("first poll: %s", outcome)
	}
	polled, outcome := poll(t, s, code.DeviceCodeHash, base.Add(3*time.Second))
	if outcome != storage.DevicePollSlowDown || polled.Interval != 10*time.Second || !sameInstant(polled.LastPolledAt, base.Add(3*time.Second)) {
		t.Fatalf("early poll: %s, interval %v, last %v", outcome, polled.Interval, polled.LastPolledAt)
	}
	// 8 s after the last poll is less than the new 10 s.
	if _, outcome := poll(t, s, code.DeviceCodeHash, base.Add(11*time.Second)); outcome != storage.DevicePollSlowDown {
		t.Fatalf("poll inside the grown interval: %s", outcome)
	}
	if polled, outcome := poll(t, s, code.DeviceCodeHash, base.Add(40*time.Second)); outcome != storage.DevicePollPending || polled.Interval != 15*time.Second {
		t.Fatalf("poll after the interval: %s, %v", outcome, polled.Interval)
	}

	// Decided once, while pending and unexpired.
	if err := s.DecideDeviceCode(ctx, []byte("nothing"), storage.DeviceDecision{Status: storage.DeviceApproved, At: base}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("decide an unknown code: %v", err)
	}
	approve := storage.DeviceDecision{Status: storage.DeviceApproved, Subject: "alice", AuthTime: base.Add(time.Minute), SessionID: "s1", At: base.Add(time.Minute)}
	if err := s.DecideDeviceCode(ctx, code.UserCodeHash, approve); err != nil {
		t.Fatal(err)
	}
	deny := approve
	deny.Status = storage.DeviceDenied
	if err := s.DecideDeviceCode(ctx, code.UserCodeHash, deny); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("second decision: %v", err)
	}
	issued, outcome := poll(t, s, code.DeviceCodeHash, base.Add(2*time.Minute))
	if outcome != storage.DevicePollIssue || issued.Subject != "alice" || issued.SessionID != "s1" || !sameInstant(issued.AuthTime, base.Add(time.Minute)) {
		t.Fatalf("poll of an approved code: %s %+v", outcome, issued)
	}
	// After it issued, every poll, however early, is told so.
	for _, at := range []time.Duration{2*time.Minute + time.Second, 5 * time.Minute} {
		if _, outcome := poll(t, s, code.DeviceCodeHash, base.Add(at)); outcome != storage.DevicePollRedeemed {
			t.Fatalf("poll after the tokens were issued: %s", outcome)
		}
	}

	denied := newDeviceCode(t)
	if err := s.CreateDeviceCode(ctx, denied); err != nil {
		t.Fatal(err)
	}
	if err := s.DecideDeviceCode(ctx, denied.UserCodeHash, deny); err != nil {
		t.Fatal(err)
	}
	if _, outcome := poll(t, s, denied.DeviceCodeHash, base.Add(time.Minute)); outcome != storage.DevicePollDenied {
		t.Fatalf("poll of a denied code: %s", outcome)
	}

	expired := newDeviceCode(t)
	if err := s.CreateDeviceCode(ctx, expired); err != nil {
		t.Fatal(err)
	}
	late := approve
	late.At = expired.ExpiresAt
	if err := s.DecideDeviceCode(ctx, expired.UserCodeHash, late); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("decision on an expired code: %v", err)
	}
	if _, outcome := poll(t, s, expired.DeviceCodeHash, expired.ExpiresAt); outcome != storage.DevicePollExpired {
		t.Fatalf("poll of an expired code: %s", outcome)
	}

	n, err := s.DeleteExpiredDeviceCodes(ctx, base.Add(10*time.Minute+time.Second))
	if err != nil || n != 3 {
		t.Fatalf("DeleteExpiredDeviceCodes = %d, %v; want 3", n, err)
	}
	if _, err := s.GetDeviceCodeByUserCode(ctx, code.UserCodeHash); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("expired code kept: %v", err)
	}
}

// testConcurrentDevicePolls: of N concurrent polls of an approved code,
// exactly one issues; the others learn that it was issued.
func testConcurrentDevicePolls(t *testing.T, s storage.Store) {
	ctx := context.Background()
	code := newDeviceCode(t)
	if err := s.CreateDeviceCode(ctx, code); err != nil {
		t.Fatal(err)
	}
	if err := s.DecideDeviceCode(ctx, code.UserCodeHash, storage.DeviceDecision{Status: storage.DeviceApproved, Subject: "alice", AuthTime: base, At: base}); err != nil {
		t.Fatal(err)
	}
	const contenders = 10
	outcomes := make([]storage.DevicePollOutcome, contenders)
	errs := make([]error, contenders)
	var wg sync.WaitGroup
	for i := range contenders {
		wg.Go(func() {
			_, outcomes[i], errs[i] = s.PollDeviceCode(ctx, code.DeviceCodeHash, "chit-cli", base.Add(time.Minute), 5*time.Second)
		})
	}
	wg.Wait()
	wins := 0
	for i, outcome := range outcomes {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		switch outcome {
		case storage.DevicePollIssue:
			wins++
		case storage.DevicePollRedeemed:
		default:
			t.Fatalf("poll %d: %s", i, outcome)
		}
	}
	if wins != 1 {
		t.Fatalf("%d polls issued tokens, want 1", wins)
	}
}

// testClientDeviceAuthorization: the client's device grant flag round-trips.
func testClientDeviceAuthorization(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := s.CreateClient(ctx, storage.Client{ID: "tv", DeviceAuthorization: true, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetClient(ctx, "tv"); err != nil || !got.DeviceAuthorization {
		t.Fatalf("GetClient = %+v, %v", got, err)
	}
	if err := s.UpdateClient(ctx, "tv", func(c *storage.Client) (*storage.SubjectRevocation, error) {
		c.DeviceAuthorization = false
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetClient(ctx, "tv"); err != nil || got.DeviceAuthorization {
		t.Fatalf("after update: %+v, %v", got, err)
	}
}
