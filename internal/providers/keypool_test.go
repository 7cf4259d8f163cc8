package providers

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/chiterr"
)

// fakeKeys makes distinct, cheap key pairs, each taking delay, and counts
// them and the most made at once.
type fakeKeys struct {
	delay                  time.Duration
	made, running, busiest atomic.Int64
	// generated, when set, receives a value (or keeps a pending one) after
	// each pair is made.
	generated chan struct{}
}

func (f *fakeKeys) generate() (KeyPair, error) {
	now := f.running.Add(1)
	defer f.running.Add(-1)
	for {
		old := f.busiest.Load()
		if now <= old || f.busiest.CompareAndSwap(old, now) {
			break
		}
	}
	time.Sleep(f.delay)
	n := f.made.Add(1)
	if f.generated != nil {
		select {
		case f.generated <- struct{}{}:
		default:
		}
	}
	return KeyPair{KeyID: fmt.Sprintf("kid-%d", n)}, nil
}

func prefill(p *KeyPool, f *fakeKeys, n int) {
	pairs := make([]KeyPair, n)
	for i := range pairs {
		pairs[i], _ = f.generate()
	}
	p.giveBack(pairs)
}

func TestKeyPoolHandsEachPairOutOnce(t *testing.T) {
	f := &fakeKeys{}
	p := NewKeyPool(32, f.generate)
	prefill(p, f, 32)
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			pairs, err := p.Take(context.Background(), 10)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, pair := range pairs {
				if seen[pair.KeyID] {
					t.Errorf("key pair %s handed out twice", pair.KeyID)
				}
				seen[pair.KeyID] = true
			}
		})
	}
	wg.Wait()
	if len(seen) != 80 {
		t.Fatalf("got %d distinct pairs, want 80", len(seen))
	}
}

func TestKeyPoolRefusesEarlyWhatCannotFitTheDeadline(t *testing.T) {
	f := &fakeKeys{}
	p := NewKeyPool(8, f.generate)
	prefill(p, f, 5)
	made := f.made.Load()
	p.meanNanos.Store(int64(time.Second)) // as slow as a loaded machine
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := p.Take(ctx, 20)
	if chiterr.KindOf(err) != chiterr.ResourceExhausted || chiterr.RetryAfter(err) < time.Second ||
		!strings.Contains(err.Error(), "send at most") {
		t.Fatalf("20 keys at 1s each within 3s: %v (retry after %v), want RESOURCE_EXHAUSTED with a hint", err, chiterr.RetryAfter(err))
	}
	if f.made.Load() != made {
		t.Fatal("a refused call made keys")
	}
	if p.Ready() != 5 {
		t.Fatalf("%d pairs ready after the refusal, want the 5 it had taken back", p.Ready())
	}
	// What fits is served: the pool's five and one made now.
	p.meanNanos.Store(int64(time.Millisecond))
	pairs, err := p.Take(ctx, 6)
	if err != nil || len(pairs) != 6 || f.made.Load() != made+1 {
		t.Fatalf("Take(6) = %d pairs, %v; %d made", len(pairs), err, f.made.Load()-made)
	}
}

func TestKeyPoolStopsAtTheDeadline(t *testing.T) {
	f := &fakeKeys{delay: 20 * time.Millisecond}
	p := NewKeyPool(0, f.generate)
	p.meanNanos.Store(1) // an estimate far too low lets the call start
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := p.Take(ctx, 1000)
	if chiterr.KindOf(err) != chiterr.ResourceExhausted {
		t.Fatalf("got %v, want RESOURCE_EXHAUSTED", err)
	}
	// Generation stopped at the deadline, not after a thousand keys.
	if made := f.made.Load(); made >= 1000 {
		t.Fatalf("made %d keys for a call that had expired", made)
	}
}

func TestKeyPoolBoundsConcurrentGeneration(t *testing.T) {
	f := &fakeKeys{delay: 2 * time.Millisecond}
	p := NewKeyPool(0, f.generate)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := p.Take(context.Background(), 5); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if limit := int64(max(1, runtime.GOMAXPROCS(0)/2)); f.busiest.Load() > limit {
		t.Fatalf("%d keys made at once, want at most %d (half the CPUs)", f.busiest.Load(), limit)
	}
}

func TestKeyPoolFillsAfterFirstUse(t *testing.T) {
	f := &fakeKeys{generated: make(chan struct{}, 1)}
	p := NewKeyPool(16, f.generate)
	ctx, cancel := context.WithCancel(context.Background())
	filled := make(chan struct{})
	go func() {
		defer close(filled)
		p.Fill(ctx)
	}()
	// An unused pool costs nothing.
	runtime.Gosched()
	if f.made.Load() != 0 {
		t.Fatal("the pool made keys before anyone used it")
	}
	if _, err := p.Take(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// Fill makes one pair at a time and stores it before making the next,
	// so once it makes a pair every earlier one is in the pool: the pool is
	// full at the latest when the pair after the sixteenth is made.
	timeout := time.After(10 * time.Second)
	for p.Ready() < 16 {
		select {
		case <-f.generated:
		case <-timeout:
			t.Fatalf("the pool holds %d pairs after 10s, want 16", p.Ready())
		}
	}
	cancel()
	<-filled
}
