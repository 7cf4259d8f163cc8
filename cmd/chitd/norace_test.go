//go:build !race

package main

// raceFlags is empty without the race detector (race_test.go).
var raceFlags []string
