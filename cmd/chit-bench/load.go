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
	// baseline is the health-check rate on the same transport measured
	// just before this run (zero: use the run's first baseline row); pairing
	// them keeps the machine's drift out of the ratio.
	baseline float64
	// rawHashes is the raw argon2id rate measured just before this run, for
	// the password scenarios.
	rawHashes float64
}

// limits shape a load run: warmup of calls that are made but not counted,
// then requests counted calls when set, else duration of them.
type limits struct {
	warmup   time.Duration
	duration time.Duration
	requests int
}

// load runs c from concurrency workers until the limits are reached. pid,
// when not zero, is the server's process, whose CPU and memory are read over
// the counted part of the run.
//
// The warm-up matters most for password sign-ins: a server that idled has
// given argon2id's memory back to the OS, and its first hashes run several
// times slower while the pages are faulted in again.
func load(c call, lim limits, concurrency, pid int) result {
	var (
		measuring atomic.Bool
		claimed   atomic.Int64
		cpuBefore float64
		begin     time.Time
		deadline  time.Time
	)
	start := func() {
		cpuBefore, begin = cpuSeconds(pid), time.Now()
		deadline = begin.Add(lim.duration)
		measuring.Store(true)
	}
	if lim.warmup > 0 {
		time.AfterFunc(lim.warmup, start)
	} else {
		start()
	}
	// more reports whether a worker should make another call, and whether
	// that call counts. Seeing measuring set orders the reads of deadline
	// after start's writes.
	more := func() (bool, bool) {
		if !measuring.Load() {
			return true, false
		}
		if lim.requests > 0 {
			return claimed.Add(1) <= int64(lim.requests), true
		}
		return time.Now().Before(deadline), true
	}
	latencies := make([][]time.Duration, concurrency)
	failures := make([]int, concurrency)
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				again, counts := more()
				if !again {
					return
				}
				began := time.Now()
				// Calls are not cut by the run's end: a call in flight
				// finishes and counts.
				err := c(context.Background(), w)
				if !counts && lim.requests == 0 && measuring.Load() {
					// A call the warm-up started but the counted part saw
					// finish counts: queued calls (password sign-ins wait
					// for a hashing slot) would otherwise leave the first
					// part of the window busy with work nobody counts.
					counts = true
				}
				switch {
				case !counts:
				case err != nil:
					failures[w]++
				default:
					latencies[w] = append(latencies[w], time.Since(began))
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	var all []time.Duration
	r := result{cpuSeconds: cpuSeconds(pid) - cpuBefore, peakRSSMiB: procStatusMiB(pid, "VmHWM")}
	for w := range concurrency {
		all = append(all, latencies[w]...)
		r.errors += failures[w]
	}
	slices.Sort(all)
	r.requests = len(all) + r.errors
	r.rate = float64(len(all)) / elapsed.Seconds()
	if len(all) > 0 {
		r.p50, r.p90, r.p99 = all[len(all)*50/100], all[len(all)*90/100], all[len(all)*99/100]
	}
	return r
}

const tableHeader = "| scenario | transport | req/s | ratio to baseline | p50 | p90 | p99 | errors | server CPU s | server peak RSS MiB |\n" +
	"|---|---|---|---|---|---|---|---|---|---|\n"

// tableRows formats results as Markdown rows, each with its ratio to the
// health-check baseline of its transport: the one measured just before it
// when there is one, else the first in results.
func tableRows(results []result) string {
	baseline := map[string]float64{}
	for _, r := range results {
		if r.scenario == baselineName {
			baseline[r.transport] = r.rate
		}
	}
	var rows strings.Builder
	for _, r := range results {
		ratio := "–"
		b := r.baseline
		if b == 0 {
			b = baseline[r.transport]
		}
		if b > 0 {
			ratio = fmt.Sprintf("%.2f", r.rate/b)
		}
		fmt.Fprintf(&rows, "| %s | %s | %.0f | %s | %v | %v | %v | %d | %.2f | %.0f |\n", r.scenario, r.transport, r.rate, ratio,
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
