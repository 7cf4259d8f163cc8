package main

import "runtime/debug"

// defaultGCPercent is chitd's garbage-collection target unless GOGC is set.
// Every password sign-in allocates argon2id's memory (19 MiB at the default
// parameters), so at Go's default of 100 the collector ran about once per
// sign-in. Measured with the load generator in another process: 200 raised
// sign-ins from 66-68/s to 72/s on two cores for ~30 MiB more RSS; 400 gave
// no more throughput and twice the memory.
const defaultGCPercent = 200

// tuneGC applies defaultGCPercent unless the operator set GOGC.
func tuneGC(lookupEnv func(string) (string, bool)) {
	if _, set := lookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
}
