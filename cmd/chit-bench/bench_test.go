package main

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chit-auth/chit/pkg/server/servertest"
)

func TestLoadMakesExactlyTheRequestedCalls(t *testing.T) {
	var calls atomic.Int64
	r := load(func(context.Context, int) error {
		if calls.Add(1)%10 == 0 {
			return errors.New("every tenth call fails")
		}
		return nil
	}, limits{requests: 50}, 8, 0)
	if calls.Load() != 50 || r.requests != 50 || r.errors != 5 {
		t.Fatalf("%d calls, result counted %d requests and %d errors; want 50, 50, 5", calls.Load(), r.requests, r.errors)
	}
	if r.p50 <= 0 || r.p99 < r.p50 || r.rate <= 0 {
		t.Fatalf("latencies p50 %v p99 %v, rate %v", r.p50, r.p99, r.rate)
	}
}

func TestWarmUpCallsAreNotCounted(t *testing.T) {
	var calls atomic.Int64
	r := load(func(context.Context, int) error {
		calls.Add(1)
		time.Sleep(time.Millisecond)
		return nil
	}, limits{warmup: 50 * time.Millisecond, requests: 20}, 2, 0)
	if r.requests != 20 || calls.Load() <= 20 {
		t.Fatalf("%d calls in all, %d counted; want 20 counted after a warm-up of more calls", calls.Load(), r.requests)
	}
}

// A call the warm-up started and the counted part saw finish is counted: a
// queue of slow calls must not leave the window's start uncounted.
func TestCallsFinishingAfterTheWarmUpCount(t *testing.T) {
	var calls atomic.Int64
	r := load(func(context.Context, int) error {
		calls.Add(1)
		time.Sleep(100 * time.Millisecond)
		return nil
	}, limits{warmup: 10 * time.Millisecond, duration: 20 * time.Millisecond}, 1, 0)
	if calls.Load() != 1 || r.requests != 1 {
		t.Fatalf("%d calls, %d counted; want the one call, counted", calls.Load(), r.requests)
	}
}

// run drives a real server over both transports and reports each scenario
// beside the baseline, without errors.
func TestRunDrivesARunningServer(t *testing.T) {
	e := servertest.Start(t)
	t.Setenv("CHIT_BENCH_CLIENT_SECRET", e.ServiceSecret)
	t.Setenv("CHIT_BENCH_PASSWORD", servertest.UserPassword)
	var out strings.Builder
	err := runCommand([]string{"--grpc-addr", e.Server.GRPCAddr(), "--http-addr", e.Server.HTTPAddr(),
		"--client-id", servertest.ServiceName, "--username", servertest.UserName,
		"--scenario", "RefreshToken", "--requests", "40", "--warmup", "50ms", "--concurrency", "4"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| " + baselineName + " | grpc |", "| " + baselineName + " | rest |", "| " + refreshChains + " | grpc |", "| " + refreshChains + " | rest |"} {
		line := lineStarting(out.String(), want)
		if line == "" {
			t.Fatalf("no row %q in\n%s", want, out.String())
		}
		// errors is the eighth column.
		if cells := strings.Split(line, "|"); strings.TrimSpace(cells[8]) != "0" {
			t.Fatalf("row with errors: %s", line)
		}
	}
	if strings.Contains(out.String(), checkHot) {
		t.Fatalf("--scenario RefreshToken ran other scenarios:\n%s", out.String())
	}
}

func TestRunNamesTheMissingAccount(t *testing.T) {
	e := servertest.Start(t)
	t.Setenv("CHIT_BENCH_CLIENT_SECRET", "")
	err := runCommand([]string{"--grpc-addr", e.Server.GRPCAddr(), "--http-addr", e.Server.HTTPAddr(),
		"--scenario", "client credentials", "--requests", "5", "--warmup", "0s"}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "--client-id") {
		t.Fatalf("got %v, want an error naming --client-id", err)
	}
}

func TestTargetsAreMarked(t *testing.T) {
	lines := targetLines("sqlite", []result{
		{scenario: checkHot, transport: "grpc", rate: 800, baseline: 1000},
		{scenario: checkHot, transport: "rest", rate: 400},
		{scenario: passwordToken, transport: "grpc", rate: 95, rawHashes: 100},
		{scenario: refreshChains, transport: "grpc", rate: 1400},
		{scenario: passwordStampede, transport: "grpc", peakRSSMiB: 600},
	})
	for _, want := range []string{
		checkHot + ", gRPC / gRPC baseline: 0.80 (target 0.70): met",
		checkHot + ", REST / gRPC: 0.50 (target 0.60): **not met**",
		"raw argon2id measured just before (100/s): 0.95 (target 0.90): met",
		"rotations per second: 1400 (target 1500): **not met**",
		"1,000 concurrent sign-ins, MiB: 600 (target 512): **not met**",
	} {
		if !strings.Contains(lines, want) {
			t.Errorf("targets lack %q:\n%s", want, lines)
		}
	}
}

func lineStarting(text, prefix string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}
