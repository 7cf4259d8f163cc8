package ssf

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/chit-auth/chit/internal/chiterr"
)

// leaseStealingPusher takes every push as long as a receiver that answers
// slowly would: each push moves the clock past the lease, and another
// replica takes the lease that ran out.
type leaseStealingPusher struct {
	f      *fixture
	mu     sync.Mutex
	pushed int
}

func (p *leaseStealingPusher) Push(ctx context.Context, endpoint, authorization, set string) PushResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pushed++
	p.f.now = p.f.now.Add(DefaultLease + time.Second)
	if _, err := p.f.store.LeaseSecurityEventStream(ctx, "siem", "replica-b", p.f.now, p.f.now.Add(DefaultLease)); err != nil {
		panic(err)
	}
	return PushResult{Status: 202}
}

// A replica pushing a backlog to a slow receiver renews its lease between
// pushes and stops once another replica holds it: one replica pushes a
// stream at a time even when one page of its backlog outlasts the lease.
func TestBacklogPushStopsWhenTheLeaseIsLost(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	if _, err := f.service.CreateStream(ctx, pushSpec("siem")); err != nil {
		t.Fatal(err)
	}
	for _, family := range []string{"fam-1", "fam-2", "fam-3"} {
		f.revokeFamily(t, family)
	}
	pusher := &leaseStealingPusher{f: f}
	replica := New(Config{Issuer: issuer}, Dependencies{Store: f.store, Accounts: directoryOf(f.store), Keys: f.signer, Pusher: pusher,
		Now: func() time.Time { return f.now }, ReplicaID: "replica-a"})
	runCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	replica.pushStream(runCtx, "siem")
	if pusher.pushed != 1 {
		t.Fatalf("replica-a pushed %d SETs, %d of them while replica-b held the lease; want 1", pusher.pushed, pusher.pushed-1)
	}
}

// A receiver holds at most MaxLongPolls long polls of its stream waiting at
// once (per replica): each waiting poll is rerun on every move of the feed's
// head, so thousands of them from one token would turn every revocation into
// thousands of reads. Another is refused as ResourceExhausted, changing
// nothing; a poll that returns at once is not bounded.
func TestLongPollsPerStreamAreBounded(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	if _, err := f.service.CreateStream(ctx, pollSpec("risk")); err != nil {
		t.Fatal(err)
	}
	pollCtx, cancel := context.WithCancel(ctx)
	var waiting sync.WaitGroup
	for range MaxLongPolls {
		waiting.Add(1)
		go func() {
			defer waiting.Done()
			_, _ = f.service.Poll(pollCtx, receiver("risk"), "risk", PollRequest{})
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.service.longPollsOf("risk") < MaxLongPolls && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_, err := f.service.Poll(ctx, receiver("risk"), "risk", PollRequest{})
	if chiterr.KindOf(err) != chiterr.ResourceExhausted {
		t.Fatalf("a long poll beyond %d: %v, want ResourceExhausted", MaxLongPolls, err)
	}
	if _, err := f.service.Poll(ctx, receiver("risk"), "risk", PollRequest{ReturnImmediately: true}); err != nil {
		t.Fatalf("a poll that returns at once: %v", err)
	}
	cancel()
	waiting.Wait()
	if n := f.service.longPollsOf("risk"); n != 0 {
		t.Fatalf("%d long polls still counted after they ended", n)
	}
	if _, err := f.service.Poll(ctx, receiver("risk"), "risk", PollRequest{ReturnImmediately: true, MaxEvents: intPtr(0)}); err != nil {
		t.Fatal(err)
	}
}

// A receiver's refusal text reaches LastError, which chitd ssf get and
// list print to an admin's terminal: its control characters (escape
// sequences, line breaks), bidirectional overrides and invalid UTF-8 are
// replaced, for a pushed refusal and a poll's setErrs alike.
func TestReceiverTextInLastErrorIsPrintable(t *testing.T) {
	const hostile = "\x1b[2J\x1b[31mPWNED\nfake line\r\u202eevil\u0085\xff"
	wantClean := func(t *testing.T, lastError string) {
		t.Helper()
		if !strings.Contains(lastError, "PWNED") {
			t.Fatalf("LastError %q lost the text", lastError)
		}
		if strings.ContainsFunc(lastError, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) }) || !utf8.ValidString(lastError) {
			t.Fatalf("LastError %q holds control characters or invalid UTF-8", lastError)
		}
	}
	ctx := context.Background()
	t.Run("push", func(t *testing.T) {
		f := newFixture(t, nil)
		if _, err := f.service.CreateStream(ctx, pushSpec("siem")); err != nil {
			t.Fatal(err)
		}
		f.revokeFamily(t, "fam-1")
		f.pusher.answers = []PushResult{{Status: 400, ErrCode: "invalid_key" + hostile, Description: hostile}}
		if _, _, err := f.service.pushBacklog(ctx, f.stream(t, "siem"), f.now); err != nil {
			t.Fatal(err)
		}
		wantClean(t, f.stream(t, "siem").LastError)
	})
	t.Run("poll", func(t *testing.T) {
		f := newFixture(t, nil)
		if _, err := f.service.CreateStream(ctx, pollSpec("risk")); err != nil {
			t.Fatal(err)
		}
		f.revokeFamily(t, "fam-1")
		got, err := f.service.Poll(ctx, receiver("risk"), "risk", PollRequest{ReturnImmediately: true})
		if err != nil || len(got.SETs) != 1 {
			t.Fatal(got, err)
		}
		for jti := range got.SETs {
			if _, err := f.service.Poll(ctx, receiver("risk"), "risk", PollRequest{ReturnImmediately: true,
				SetErrs: map[string]SetError{jti: {Err: "invalid" + hostile, Description: hostile}}}); err != nil {
				t.Fatal(err)
			}
		}
		wantClean(t, f.stream(t, "risk").LastError)
	})
}
