package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// compareCommand measures the same scenarios on two chitd binaries (a change
// and the commit before it), taking turns in one run, and writes the ratio
// of each scenario's rate on the change to its rate on the baseline: what a
// change costs, with the machine's drift kept out.
func compareCommand(args []string) error {
	flags := flag.NewFlagSet("chit-bench compare", flag.ContinueOnError)
	chitd := flags.String("chitd", "../bin/chitd", "chitd binary of the change")
	baseline := flags.String("baseline", "../bin/chitd-baseline", "chitd binary to compare with (the previous commit's)")
	out := flags.String("out", "compare.md", "where to write the Markdown table")
	duration := flags.Duration("duration", 8*time.Second, "how long each scenario is counted on each binary")
	warmup := flags.Duration("warmup", time.Second, "uncounted calls on each binary before the counted turns")
	turn := flags.Duration("turn", 500*time.Millisecond, "how long one binary is loaded at a time")
	concurrency := flags.Int("concurrency", 32, "concurrent callers")
	postgresDSN := flags.String("postgres", "", "also compare on PostgreSQL (each binary in a fresh schema of its own, dropped after)")
	baselineDSN := flags.String("baseline-postgres", "", "the baseline's PostgreSQL database, when it is another (default: --postgres)")
	only := flags.String("only", clientToken, "compare the scenarios whose name contains this")
	if err := flags.Parse(args); err != nil {
		return err
	}
	lim := limits{warmup: *warmup, duration: *duration, turn: *turn}
	var doc strings.Builder
	fmt.Fprintf(&doc, "# Chit: a change against its baseline\n\nMachine: %d cores (%s/%s); %d concurrent callers. The change (%s) and the baseline (%s)\n"+
		"serve on their own stores side by side and are loaded in turns of %v, after a %v warm-up each, until each has\n"+
		"been counted for %v; only the loaded one works at a time.\n\n| backend | scenario | transport | change req/s | baseline req/s | change / baseline |\n|---|---|---|---|---|---|\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, *concurrency, *chitd, *baseline, *turn, *warmup, *duration)
	backends := [][3]string{{"sqlite", "", ""}}
	if *baselineDSN != "" && *postgresDSN == "" {
		return errors.New("--baseline-postgres needs --postgres")
	}
	if *baselineDSN == "" {
		*baselineDSN = *postgresDSN
	}
	if *postgresDSN != "" {
		backends = append(backends, [3]string{"postgres", *postgresDSN, *baselineDSN})
	}
	for _, backend := range backends {
		rows, err := compare(*chitd, *baseline, backend[0], backend[1], backend[2], *only, lim, *concurrency)
		if err != nil {
			return fmt.Errorf("%s: %w", backend[0], err)
		}
		doc.WriteString(rows)
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	fmt.Print(doc.String())
	return os.WriteFile(*out, []byte(doc.String()), 0o644)
}

// compare loads each scenario named like only on both binaries in turns and
// returns the table rows.
func compare(chitd, baseline, backend, dsn, baselineDSN, only string, lim limits, concurrency int) (string, error) {
	change, _, stopChange, err := startTarget(chitd, backend, dsn, concurrency)
	if err != nil {
		return "", fmt.Errorf("start the change: %w", err)
	}
	defer stopChange()
	base, _, stopBase, err := startTarget(baseline, backend, baselineDSN, concurrency)
	if err != nil {
		return "", fmt.Errorf("start the baseline: %w", err)
	}
	defer stopBase()
	baseScenarios := map[[2]string]scenario{}
	for _, sc := range base.scenarios() {
		baseScenarios[[2]string{sc.name, sc.transport}] = sc
	}
	var rows strings.Builder
	for _, sc := range change.scenarios() {
		other, ok := baseScenarios[[2]string{sc.name, sc.transport}]
		if !ok || sc.callers > 0 || sc.name == baselineName || !strings.Contains(sc.name, only) {
			continue
		}
		if err := sc.setUp(); err != nil {
			return "", err
		}
		if err := other.setUp(); err != nil {
			// A scenario of a feature the baseline lacks (sign-in sessions,
			// say) has nothing to be compared with.
			fmt.Fprintf(os.Stderr, "%s %s %s: skipped, the baseline cannot run it: %v\n", backend, sc.name, sc.transport, err)
			continue
		}
		measured := takeTurns([]caller{{sc.call, concurrency}, {other.call, concurrency}}, lim, 0)
		ratio := 0.0
		if measured[1].rate > 0 {
			ratio = measured[0].rate / measured[1].rate
		}
		fmt.Fprintf(os.Stderr, "%s %s %s: change %.0f/s (%d errors), baseline %.0f/s (%d errors), ratio %.3f\n",
			backend, sc.name, sc.transport, measured[0].rate, measured[0].errors, measured[1].rate, measured[1].errors, ratio)
		fmt.Fprintf(&rows, "| %s | %s | %s | %.0f | %.0f | %.3f |\n", backend, sc.name, sc.transport, measured[0].rate, measured[1].rate, ratio)
	}
	return rows.String(), nil
}
