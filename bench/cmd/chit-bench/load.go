package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	scenario, transport string
	rate                float64
	p50, p90, p99       time.Duration
	requests, errors    int
	// cpuSeconds and peakRSSMiB are the server's, read from /proc; zero
	// when the server's process is unknown.
	cpuSeconds float64
	peakRSSMiB float64
	// reference is the rate r is compared with, measured in the same turns:
	// the health check over the same transport, or raw argon2id hashing for
	// password sign-ins (zero: use the run's baseline row).
	reference float64
	// storeOpsPerCall is, for a scenario that counts them, the server's
	// store operations per call, and namedOpsPerCall those of the one
	// operation the scenario is about.
	storeOpsPerCall, namedOpsPerCall float64
}

// report prints r's progress line.
func (r result) report() {
	fmt.Fprintf(os.Stderr, "%-42s %-5s %8.0f req/s  reference %6.0f req/s  p99 %v  errors %d\n",
		r.scenario, r.transport, r.rate, r.reference, r.p99, r.errors)
}

// limits shape a load run: warmup of calls that are made but not counted,
// then requests counted calls when set, else duration of them. When several
// calls take turns, turn is how long each runs at a time.
type limits struct {
	warmup   time.Duration
	duration time.Duration
	requests int
	turn     time.Duration
}

// caller is a call and how many workers make it at once.
type caller struct {
	call    call
	workers int
}

// load runs c from concurrency workers: lim.warmup of uncounted calls, then
// the counted part. pid, when not zero, is the server's process, whose CPU
// and memory are read over the counted part.
//
// The warm-up matters most for password sign-ins: a server that idled has
// given argon2id's memory back to the OS, and its first hashes run several
// times slower while the pages are faulted in again.
func load(c call, lim limits, concurrency, pid int) result {
	return takeTurns([]caller{{c, concurrency}}, lim, pid)[0]
}

// takeTurns loads several calls whose rates are to be compared: after each
// one's warm-up, they run in turns of lim.turn until each has been counted
// for lim.duration (or, with lim.requests, one after the other for that many
// calls each). A turn starts with all its workers on one call and ends when
// the last of its calls has returned, so no call's work spills into another's
// time. Turns rather than one run after the other keep the machine's drift,
// on shared machines as large as the differences measured, out of the ratios.
func takeTurns(callers []caller, lim limits, pid int) []result {
	if lim.warmup > 0 {
		for _, c := range callers {
			runTurn(c, until(time.Now().Add(lim.warmup)), 0, nil)
		}
	}
	tallies := make([]tally, len(callers))
	if lim.requests > 0 {
		for i, c := range callers {
			var claimed atomic.Int64
			runTurn(c, func() bool { return claimed.Add(1) <= int64(lim.requests) }, pid, &tallies[i])
		}
	} else {
		turn := lim.turn
		if turn <= 0 || len(callers) == 1 {
			turn = lim.duration
		}
		for done := time.Duration(0); done < lim.duration; done += turn {
			length := min(turn, lim.duration-done)
			for i, c := range callers {
				runTurn(c, until(time.Now().Add(length)), pid, &tallies[i])
			}
		}
	}
	peakRSS := procStatusMiB(pid, "VmHWM")
	results := make([]result, len(callers))
	for i, t := range tallies {
		results[i] = t.result(peakRSS)
	}
	return results
}

// tally adds up one call's counted turns.
type tally struct {
	latencies []time.Duration
	failures  int
	elapsed   time.Duration
	cpu       float64
}

func (t tally) result(peakRSSMiB float64) result {
	slices.Sort(t.latencies)
	r := result{errors: t.failures, requests: len(t.latencies) + t.failures, cpuSeconds: t.cpu, peakRSSMiB: peakRSSMiB}
	if t.elapsed > 0 {
		r.rate = float64(len(t.latencies)) / t.elapsed.Seconds()
	}
	if n := len(t.latencies); n > 0 {
		r.p50, r.p90, r.p99 = t.latencies[n*50/100], t.latencies[n*90/100], t.latencies[n*99/100]
	}
	return r
}

// runTurn has c's workers make calls while more allows, waits until every
// call has returned and, when t is not nil, counts the turn into t.
func runTurn(c caller, more func() bool, pid int, t *tally) {
	cpuBefore, begin := cpuSeconds(pid), time.Now()
	latencies := make([][]time.Duration, c.workers)
	failures := make([]int, c.workers)
	var wg sync.WaitGroup
	for w := range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for more() {
				began := time.Now()
				if err := c.call(context.Background(), w); err != nil {
					failures[w]++
				} else {
					latencies[w] = append(latencies[w], time.Since(began))
				}
			}
		}()
	}
	wg.Wait()
	if t == nil {
		return
	}
	t.elapsed += time.Since(begin)
	t.cpu += cpuSeconds(pid) - cpuBefore
	for w := range c.workers {
		t.latencies = append(t.latencies, latencies[w]...)
		t.failures += failures[w]
	}
}

func until(deadline time.Time) func() bool {
	return func() bool { return time.Now().Before(deadline) }
}

const tableHeader = "| scenario | transport | req/s | reference req/s | ratio | p50 | p90 | p99 | errors | server CPU s | server peak RSS MiB |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|\n"

// tableRows formats results as Markdown rows, each with its reference rate
// and its ratio to it. Rows without a paired reference are compared with the
// health-check row of their transport in results, if any.
func tableRows(results []result) string {
	baselineRows := map[string]float64{}
	for _, r := range results {
		if r.scenario == baselineName {
			baselineRows[r.transport] = r.rate
		}
	}
	var rows strings.Builder
	for _, r := range results {
		reference, ratio := r.reference, "–"
		if reference == 0 {
			reference = baselineRows[r.transport]
		}
		if reference > 0 {
			ratio = fmt.Sprintf("%.2f", r.rate/reference)
		}
		fmt.Fprintf(&rows, "| %s | %s | %.0f | %.0f | %s | %v | %v | %v | %d | %.2f | %.0f |\n", r.scenario, r.transport, r.rate, reference, ratio,
			r.p50.Round(10*time.Microsecond), r.p90.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond),
			r.errors, r.cpuSeconds, r.peakRSSMiB)
	}
	return rows.String()
}

// cpuSeconds reads utime+stime of pid from /proc (Linux; 0 elsewhere or
// without a pid).
func cpuSeconds(pid int) float64 {
	if pid == 0 {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// procStatusMiB reads a memory field of /proc/PID/status (VmHWM, the peak
// resident set, or VmRSS, the current one) in MiB; 0 where /proc is missing.
func procStatusMiB(pid int, field string) float64 {
	if pid == 0 {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kib, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kib / 1024
		}
	}
	return 0
}

// startServer starts chitd and reads its addresses from its first JSON log
// line.
func startServer(cmd *exec.Cmd) (string, string, error) {
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", "", err
	}
	if err := cmd.Start(); err != nil {
		return "", "", err
	}
	decoder := json.NewDecoder(stderr)
	for {
		var line map[string]any
		if err := decoder.Decode(&line); err != nil {
			// A chitd that wrote something else may still be running.
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return "", "", fmt.Errorf("chitd did not start: %w", err)
		}
		if line["msg"] == "chitd serving" {
			grpcAddr, _ := line["grpc"].(string)
			httpAddr, _ := line["http"].(string)
			go func() { _, _ = io.Copy(io.Discard, stderr) }()
			return grpcAddr, httpAddr, nil
		}
	}
}

// serviceCredentials reads the client id and secret that `chitd service
// create` prints.
func serviceCredentials(out []byte) (clientID, secret string) {
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "client_id: "); ok {
			clientID = v
		}
		if v, ok := strings.CutPrefix(line, "client_secret: "); ok {
			secret = v
		}
	}
	return clientID, secret
}
