//go:build race

package main

// raceFlags builds chitd with the race detector when the tests have it: the
// processes the tests start are checked for races too, and the build reuses
// the race-built packages of the test binary instead of compiling them all
// again without it.
var raceFlags = []string{"-race"}
