package main

import (
	"runtime/debug"
	"testing"

	"github.com/chit-auth/chit/internal/passwords"
)

func TestGCTargetUnlessGOGCIsSet(t *testing.T) {
	previous := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(previous) })

	tuneGC(func(string) (string, bool) { return "", false })
	if got := debug.SetGCPercent(100); got != passwords.GCPercent {
		t.Fatalf("GC percent %d without GOGC, want %d", got, passwords.GCPercent)
	}
	tuneGC(func(name string) (string, bool) { return "150", name == "GOGC" })
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent %d with GOGC set, want the operator's (100 here) untouched", got)
	}
}
