package storage

import (
	"context"
	"time"
)

// Throttle counts recent sign-in attempts per throttling key (a username, a
// client address, or both), across replicas. Invariants: an attempt is
// reserved before its password is checked, atomically with reading the count,
// so concurrent attempts each see every one reserved before them; a refused
// attempt changes nothing; counts are never below zero.
type Throttle interface {
	// GetLoginFailures returns the failures counted for key (zero if none).
	GetLoginFailures(ctx context.Context, key string) (LoginFailures, error)
	// ReserveLoginAttempt counts one more attempt for key at at, before the
	// password is checked, if allow accepts the attempts counted so far (a
	// count whose last attempt is older than forgetAfter starts again at
	// zero), and returns them. It is atomic across replicas: of concurrent
	// attempts, each sees every one reserved before it, so a burst cannot
	// outrun the throttle. A refused attempt changes nothing. The attempt
	// stays counted as a failure unless ResetLoginFailures (success) or
	// ReleaseLoginAttempts undoes it.
	ReserveLoginAttempt(ctx context.Context, key string, at time.Time, forgetAfter time.Duration, allow func(before LoginFailures) bool) (LoginFailures, bool, error)
	// ReleaseLoginAttempts takes back n attempts of key (never below zero):
	// reserved ones that checked no password, or failures a later success
	// showed to be typing mistakes.
	ReleaseLoginAttempts(ctx context.Context, key string, n int) error
	// ResetLoginFailures forgets key's failures (after a successful sign-in).
	ResetLoginFailures(ctx context.Context, key string) error
	// DeleteStaleLoginFailures forgets failures last seen before cutoff.
	DeleteStaleLoginFailures(ctx context.Context, cutoff time.Time) (int, error)
}

// LoginFailures counts recent failed sign-ins for one throttling key (a
// username or a client address).
type LoginFailures struct {
	Count         int
	LastFailureAt time.Time
}
