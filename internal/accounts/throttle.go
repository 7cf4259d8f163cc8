package accounts

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// ThrottlePolicy slows down password guessing for one throttling key. The
// counts live in the store, so every replica applies them.
type ThrottlePolicy struct {
	// FreeFailures are allowed without delay.
	FreeFailures int
	// BaseDelay is the wait after the first failure past the free ones; each
	// further failure doubles it, up to MaxDelay when that is set.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// LockoutAfter failures lock the key for Lockout; 0 never locks.
	LockoutAfter int
	Lockout      time.Duration
	// Forget is how long after the last failure a count starts over.
	Forget time.Duration
}

// DefaultThrottle applies to a username at one address, and to an address:
// 5 free failures, then waits of 1, 2, 4, 8 and 16 seconds, then a
// 15-minute lockout; counts are forgotten an hour after the last failure,
// and a successful sign-in resets them. Locking the pair, not the username,
// means nobody can lock a person out from elsewhere with ten requests.
var DefaultThrottle = ThrottlePolicy{FreeFailures: 5, BaseDelay: time.Second, LockoutAfter: 10, Lockout: 15 * time.Minute, Forget: time.Hour}

// DefaultUsernameThrottle applies to a username from every address: a far
// higher threshold and delays only (20 free failures, then waits doubling
// from 1 second up to 1 minute, never a lockout), so guessing one account
// from many addresses stays slow without anyone being able to lock it.
var DefaultUsernameThrottle = ThrottlePolicy{FreeFailures: 20, BaseDelay: time.Second, MaxDelay: time.Minute, Forget: time.Hour}

// Wait returns how long a key with failures must still wait at now: what
// other guessable secrets (device user codes) are throttled by.
func (p ThrottlePolicy) Wait(failures storage.LoginFailures, now time.Time) time.Duration {
	return p.wait(failures.Count, failures.LastFailureAt, now)
}

// wait returns how long a key with count failures, the last at last, must
// still wait at now.
func (p ThrottlePolicy) wait(count int, last, now time.Time) time.Duration {
	if count < p.FreeFailures || now.Sub(last) >= p.Forget {
		return 0
	}
	var delay time.Duration
	if p.LockoutAfter > 0 && count >= p.LockoutAfter {
		delay = p.Lockout
	} else {
		delay = time.Duration(float64(p.BaseDelay) * math.Pow(2, float64(min(count-p.FreeFailures, 30))))
		if p.MaxDelay > 0 && delay > p.MaxDelay {
			delay = p.MaxDelay
		}
	}
	return last.Add(delay).Sub(now)
}

// throttle is what one sign-in is throttled by: its username at its
// client's address and its username everywhere, whose tries are reserved
// before the password is checked, and its client's address, whose failures
// are counted after.
type throttle struct {
	pair    string
	user    string
	address string
	// addressFailing says the address has failures on record.
	addressFailing bool
	// pairFailures are the failures of this username at this address
	// before this try: typing mistakes, if this try succeeds.
	pairFailures int
}

// admit reserves the sign-in's try for its username (at its address, and
// everywhere) and checks its address, before the password is checked. The
// tries are reserved, so a burst for one username gets no more passwords
// checked than the same tries one after the other; parallel sign-ins of one
// person beyond the free tries wait like failures do. The address is only
// read: behind a NAT many people share one, and their parallel sign-ins must
// not throttle each other; its failures are counted once they happen.
func (d *Directory) admit(ctx context.Context, address, name string) (throttle, error) {
	now := d.now()
	t := throttle{pair: "user:" + name, user: "username:" + name}
	if address != "" {
		t.pair += "@" + address
		t.address = "addr:" + address
		failures, err := d.store.GetLoginFailures(ctx, t.address)
		if err != nil {
			return throttle{}, fmt.Errorf("read sign-in failures: %w", err)
		}
		if wait := d.throttle.wait(failures.Count, failures.LastFailureAt, now); wait > 0 {
			return throttle{}, tooManyFailures(wait)
		}
		t.addressFailing = failures.Count > 0
	}
	pairBefore, err := d.reserve(ctx, t.pair, d.throttle, now)
	if err != nil {
		return throttle{}, err
	}
	t.pairFailures = pairBefore.Count
	if _, err := d.reserve(ctx, t.user, d.usernameThrottle, now); err != nil {
		_ = d.store.ReleaseLoginAttempts(context.WithoutCancel(ctx), t.pair, 1)
		return throttle{}, err
	}
	return t, nil
}

// reserve counts a try for key under policy, or refuses it, and returns
// what was counted before.
func (d *Directory) reserve(ctx context.Context, key string, policy ThrottlePolicy, now time.Time) (storage.LoginFailures, error) {
	var wait time.Duration
	before, allowed, err := d.store.ReserveLoginAttempt(ctx, key, now, policy.Forget, func(before storage.LoginFailures) bool {
		wait = policy.wait(before.Count, before.LastFailureAt, now)
		return wait <= 0
	})
	if err != nil {
		return storage.LoginFailures{}, fmt.Errorf("reserve a sign-in attempt: %w", err)
	}
	if !allowed {
		return storage.LoginFailures{}, tooManyFailures(wait)
	}
	return before, nil
}

func tooManyFailures(wait time.Duration) error {
	seconds := int(math.Ceil(wait.Seconds()))
	return &chiterr.Error{
		Kind:       chiterr.ResourceExhausted,
		Message:    fmt.Sprintf("too many failed sign-ins; try again in %s", plural(seconds, "second")),
		RetryAfter: time.Duration(seconds) * time.Second,
	}
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// failed counts a wrong password: the username's tries stay counted (they
// were reserved), the address gets one more failure. Best effort: a store error
// must not change the answer.
func (d *Directory) failed(ctx context.Context, t throttle) {
	if t.address != "" {
		_, _, _ = d.store.ReserveLoginAttempt(ctx, t.address, d.now(), d.throttle.Forget, func(storage.LoginFailures) bool { return true })
	}
}

// succeeded clears the username's counts (its reserved tries included).
// Of the address's failures it takes back only those of this username
// there: they were the person's typing mistakes. The others stay: a
// success on an account of one's own must not reset the count of a
// password sprayed at other people from the same address.
func (d *Directory) succeeded(ctx context.Context, t throttle) {
	_ = d.store.ResetLoginFailures(ctx, t.pair)
	_ = d.store.ResetLoginFailures(ctx, t.user)
	if t.addressFailing && t.pairFailures > 0 {
		_ = d.store.ReleaseLoginAttempts(ctx, t.address, t.pairFailures)
	}
}

// abandoned takes back the username's tries when no password was checked
// or its answer was withheld (the hashing queue was full).
func (d *Directory) abandoned(ctx context.Context, t throttle) {
	_ = d.store.ReleaseLoginAttempts(context.WithoutCancel(ctx), t.pair, 1)
	_ = d.store.ReleaseLoginAttempts(context.WithoutCancel(ctx), t.user, 1)
}
