// Package testenv decides what a test does when something it needs from the
// machine (PostgreSQL, Chromium, grpcurl) is missing: on a developer's
// machine it skips, so `make test` needs only Go; under CI=true it fails,
// naming what is missing, so CI cannot pass by skipping.
package testenv

import (
	"os"
	"testing"
)

// Missing skips tb, or fails it under CI=true, saying what is missing and
// how to get it.
func Missing(tb testing.TB, what string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("%s (CI=true: a test that would skip fails instead)", what)
	}
	tb.Skipf("%s; skipping", what)
}
