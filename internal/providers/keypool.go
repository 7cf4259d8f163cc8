package providers

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chit-auth/chit/internal/chiterr"
)

// DefaultKeyPoolSize is how many provider key pairs a server keeps ready.
const DefaultKeyPoolSize = 128

// initialKeyEstimate is what one RSA 2048 key pair is assumed to cost until
// the pool has timed one (measured: 60 to 200 ms on one core of the
// reference machine; RSA generation varies a lot from key to key).
const initialKeyEstimate = 150 * time.Millisecond

// KeyPool hands out fresh provider key pairs. An RSA key pair costs tens to
// hundreds of milliseconds of CPU, so claim and renew take them from a pool a
// background worker keeps filled, and generate inline only what the pool
// lacks. Generation, in the worker and inline alike, runs on at most half
// the CPUs, so bulk calls cannot starve sign-ins and token checks; a call
// whose missing keys cannot be made before its deadline is refused at once
// rather than burning CPU past it.
//
// A pair leaves the pool once, to one caller; pairs a refused call had taken
// go back, as they were never shown to anyone.
type KeyPool struct {
	ready    chan KeyPair
	slots    chan struct{}
	generate func() (KeyPair, error)
	// meanNanos is the running mean time to make one pair.
	meanNanos atomic.Int64
	// used is closed on first use: a server whose providers never claim or
	// renew spends no CPU on keys.
	used     chan struct{}
	markUsed sync.Once
}

// NewKeyPool returns a pool keeping size pairs ready (0: generate every pair
// on demand), made by generate (GenerateKeyPair when nil).
func NewKeyPool(size int, generate func() (KeyPair, error)) *KeyPool {
	if generate == nil {
		generate = GenerateKeyPair
	}
	generators := max(1, runtime.GOMAXPROCS(0)/2)
	p := &KeyPool{
		ready: make(chan KeyPair, max(size, 0)), slots: make(chan struct{}, generators),
		generate: generate, used: make(chan struct{}),
	}
	p.meanNanos.Store(int64(initialKeyEstimate))
	return p
}

// Fill keeps the pool full until ctx ends, from the first Take on.
func (p *KeyPool) Fill(ctx context.Context) {
	if cap(p.ready) == 0 {
		return
	}
	select {
	case <-p.used:
	case <-ctx.Done():
		return
	}
	for {
		pair, err := p.generateOne(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			continue // the entropy source failed once; the next try may not
		}
		select {
		case p.ready <- pair:
		case <-ctx.Done():
			return
		}
	}
}

// Take returns n fresh key pairs: what the pool holds, and the rest made
// now. When ctx's deadline leaves too little time to make the rest, it
// refuses with ResourceExhausted and a retry hint, having made none.
func (p *KeyPool) Take(ctx context.Context, n int) ([]KeyPair, error) {
	p.markUsed.Do(func() { close(p.used) })
	pairs := make([]KeyPair, 0, n)
take:
	for len(pairs) < n {
		select {
		case pair := <-p.ready:
			pairs = append(pairs, pair)
		default:
			break take
		}
	}
	missing := n - len(pairs)
	if missing == 0 {
		return pairs, nil
	}
	mean := time.Duration(p.meanNanos.Load())
	if deadline, ok := ctx.Deadline(); ok {
		// Leave a tenth of the time for the store write and the answer.
		available := time.Until(deadline) * 9 / 10
		if need := time.Duration(missing) * mean; need > available {
			p.giveBack(pairs)
			fit := len(pairs) + int(available/mean)
			return nil, &chiterr.Error{
				Kind: chiterr.ResourceExhausted,
				Message: fmt.Sprintf("this call needs %d new provider keys; %d are ready and making the rest takes about %s, longer than the call's deadline allows: retry later, or send at most %d items per call",
					n, len(pairs), need.Round(100*time.Millisecond), max(fit, 1)),
				RetryAfter: max(time.Second, (need - available).Round(time.Second)),
			}
		}
	}
	for range missing {
		pair, err := p.generateOne(ctx)
		if err != nil {
			p.giveBack(pairs)
			if ctx.Err() != nil {
				return nil, &chiterr.Error{
					Kind: chiterr.ResourceExhausted, Message: "ran out of time making provider keys: retry later, or send fewer items per call",
					Cause: err, RetryAfter: time.Second,
				}
			}
			return nil, err
		}
		pairs = append(pairs, pair)
	}
	return pairs, nil
}

// generateOne makes a pair on one of the generation slots and updates the
// running mean.
func (p *KeyPool) generateOne(ctx context.Context) (KeyPair, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return KeyPair{}, ctx.Err()
	}
	defer func() { <-p.slots }()
	if err := ctx.Err(); err != nil {
		return KeyPair{}, err
	}
	start := time.Now()
	pair, err := p.generate()
	if err != nil {
		return KeyPair{}, err
	}
	took := int64(time.Since(start))
	// An exponentially weighted mean over about the last 16 pairs.
	for {
		old := p.meanNanos.Load()
		if p.meanNanos.CompareAndSwap(old, old+(took-old)/16) {
			break
		}
	}
	return pair, nil
}

// giveBack returns unused pairs to the pool, dropping what does not fit.
func (p *KeyPool) giveBack(pairs []KeyPair) {
	for _, pair := range pairs {
		select {
		case p.ready <- pair:
		default:
			return
		}
	}
}

// Ready is how many pairs the pool holds now.
func (p *KeyPool) Ready() int { return len(p.ready) }
