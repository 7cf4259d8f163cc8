// Package testenv decides what a test does when something it needs from the
// machine (PostgreSQL, Chromium, grpcurl) is missing: on a developer's
// machine it skips, so `make test` needs only Go; under CI=true it fails,
// naming what is missing, so CI cannot pass by skipping.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// Program returns the path of the program name, from PATH or from
// GOPATH/bin (where .ci/run installs the Go tools the tests drive with go
// install), or skips tb (fails it under CI=true) saying how to install it.
func Program(tb testing.TB, name, install string) string {
	tb.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		candidate := filepath.Join(strings.TrimSpace(string(out)), "bin", name)
		if _, err := exec.LookPath(candidate); err == nil {
			return candidate
		}
	}
	Missing(tb, name+" is not installed ("+install+")")
	return ""
}
