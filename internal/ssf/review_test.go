package ssf

import (
	"context"
	"sync"
	"testing"
	"time"
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
