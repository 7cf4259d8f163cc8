package main

import (
	"runtime/debug"

	"github.com/chit-auth/chit/internal/passwords"
)

// tuneGC applies passwords.GCPercent unless the operator set GOGC.
func tuneGC(lookupEnv func(string) (string, bool)) {
	if _, set := lookupEnv("GOGC"); !set {
		debug.SetGCPercent(passwords.GCPercent)
	}
}
