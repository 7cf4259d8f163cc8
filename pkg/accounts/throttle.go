package accounts

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/chit-auth/chit/pkg/chiterr"
)

// ThrottlePolicy slows down password guessing, per username and per client
// address. The counts live in the store, so every replica applies them.
type ThrottlePolicy struct {
	// FreeFailures are allowed without delay.
	FreeFailures int
	// BaseDelay is the wait after the first failure past the free ones; each
	// further failure doubles it.
	BaseDelay time.Duration
	// LockoutAfter failures lock the key for Lockout.
	LockoutAfter int
	Lockout      time.Duration
	// Forget is how long after the last failure a count starts over.
	Forget time.Duration
}

// DefaultThrottle: 5 free failures, then waits of 1, 2, 4, 8 and 16 seconds,
// then a 15-minute lockout; counts are forgotten an hour after the last
// failure, and a successful sign-in resets them.
var DefaultThrottle = ThrottlePolicy{FreeFailures: 5, BaseDelay: time.Second, LockoutAfter: 10, Lockout: 15 * time.Minute, Forget: time.Hour}

// wait returns how long a key with count failures, the last at last, must
// still wait at now.
func (p ThrottlePolicy) wait(count int, last, now time.Time) time.Duration {
	if count < p.FreeFailures || now.Sub(last) >= p.Forget {
		return 0
	}
	delay := p.Lockout
	if count < p.LockoutAfter {
		delay = time.Duration(float64(p.BaseDelay) * math.Pow(2, float64(count-p.FreeFailures)))
	}
	return last.Add(delay).Sub(now)
}

type clientAddressKey struct{}

// WithClientAddress records the address a request came from, for throttling.
// Transports set it; the core never reads it from anywhere else.
func WithClientAddress(ctx context.Context, address string) context.Context {
	return context.WithValue(ctx, clientAddressKey{}, address)
}

// ClientAddress is the address WithClientAddress recorded, or "".
func ClientAddress(ctx context.Context) string {
	address, _ := ctx.Value(clientAddressKey{}).(string)
	return address
}

func throttleKeys(ctx context.Context, name string) []string {
	keys := []string{"user:" + name}
	if address := ClientAddress(ctx); address != "" {
		keys = append(keys, "addr:"+address)
	}
	return keys
}

// checkThrottle refuses a sign-in while any of its keys must wait, and
// returns the keys that have failures on record (which a success resets).
func (d *Directory) checkThrottle(ctx context.Context, keys []string) ([]string, error) {
	now := d.now()
	var longest time.Duration
	var failing []string
	for _, key := range keys {
		failures, err := d.store.GetLoginFailures(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("read sign-in failures: %w", err)
		}
		if failures.Count > 0 {
			failing = append(failing, key)
		}
		longest = max(longest, d.throttle.wait(failures.Count, failures.LastFailureAt, now))
	}
	if longest <= 0 {
		return failing, nil
	}
	seconds := int(math.Ceil(longest.Seconds()))
	return nil, &chiterr.Error{
		Kind:       chiterr.ResourceExhausted,
		Message:    fmt.Sprintf("too many failed sign-ins; try again in %d seconds", seconds),
		RetryAfter: time.Duration(seconds) * time.Second,
	}
}

func (d *Directory) recordFailure(ctx context.Context, keys []string) {
	for _, key := range keys {
		// Best effort: a store error must not turn a wrong password into a
		// different answer.
		_, _ = d.store.RecordLoginFailure(ctx, key, d.now(), d.throttle.Forget)
	}
}

func (d *Directory) resetFailures(ctx context.Context, keys []string) {
	for _, key := range keys {
		_ = d.store.ResetLoginFailures(ctx, key)
	}
}
