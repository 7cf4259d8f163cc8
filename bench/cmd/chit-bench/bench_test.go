package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/server/servertest"
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

// The warm-up's calls return before the counted part starts: a queue of
// slow calls it left would otherwise make the counted part look slower or,
// counted there, faster.
func TestWarmUpEndsBeforeCounting(t *testing.T) {
	var calls atomic.Int64
	r := load(func(context.Context, int) error {
		calls.Add(1)
		time.Sleep(30 * time.Millisecond)
		return nil
	}, limits{warmup: 10 * time.Millisecond, duration: 10 * time.Millisecond}, 3, 0)
	// Each worker: one warm-up call, then one counted call of its own.
	if calls.Load() != 6 || r.requests != 3 {
		t.Fatalf("%d calls, %d counted; want 6 calls, the 3 made after the warm-up counted", calls.Load(), r.requests)
	}
}

// Calls compared with each other take turns, and one's calls never run
// while another's turn is on.
func TestCallsTakeTurns(t *testing.T) {
	var inFlight [2]atomic.Int64
	var overlaps, switches atomic.Int64
	var mu sync.Mutex
	last := -1
	make := func(i int) call {
		return func(context.Context, int) error {
			if inFlight[1-i].Load() > 0 {
				overlaps.Add(1)
			}
			inFlight[i].Add(1)
			defer inFlight[i].Add(-1)
			mu.Lock()
			if last != i {
				switches.Add(1)
				last = i
			}
			mu.Unlock()
			time.Sleep(time.Millisecond)
			return nil
		}
	}
	results := takeTurns([]caller{{make(0), 4}, {make(1), 4}}, limits{duration: 100 * time.Millisecond, turn: 20 * time.Millisecond}, 0)
	if overlaps.Load() != 0 {
		t.Fatalf("%d calls ran during the other call's turn", overlaps.Load())
	}
	// Five turns each: ten turns, the first a switch from nothing.
	if switches.Load() != 10 {
		t.Fatalf("%d switches between the calls, want 10 (five turns each)", switches.Load())
	}
	for i, r := range results {
		if r.requests == 0 || r.rate <= 0 {
			t.Fatalf("call %d: %d requests at %v/s", i, r.requests, r.rate)
		}
	}
}

// Each transport of a scenario is compared with the health check over the
// same transport, measured in the same turns.
func TestScenariosArePairedWithTheirTransportsBaseline(t *testing.T) {
	var baselineCalls [2]atomic.Int64
	counting := func(i int) call {
		return func(context.Context, int) error { baselineCalls[i].Add(1); return nil }
	}
	nothing := func(context.Context, int) error { return nil }
	baselines := map[[2]string]scenario{
		{baselineName, "grpc"}: {name: baselineName, transport: "grpc", call: counting(0)},
		{baselineName, "rest"}: {name: baselineName, transport: "rest", call: counting(1)},
	}
	group := []scenario{{name: checkHot, transport: "grpc", call: nothing}, {name: checkHot, transport: "rest", call: nothing}}
	results, err := measureGroup(group, baselines, limits{duration: 20 * time.Millisecond, turn: 10 * time.Millisecond}, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if r.scenario != checkHot || r.transport != group[i].transport || r.reference <= 0 {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	if baselineCalls[0].Load() == 0 || baselineCalls[1].Load() == 0 {
		t.Fatalf("baseline calls: gRPC %d, REST %d; want both measured", baselineCalls[0].Load(), baselineCalls[1].Load())
	}
}

// A scenario comparedWith another takes turns with that one over the same
// transport, not with the health check.
func TestScenariosComparedWithAnotherTakeTurnsWithIt(t *testing.T) {
	var healthCalls, tokenCalls atomic.Int64
	nothing := func(context.Context, int) error { return nil }
	byName := map[[2]string]scenario{
		{baselineName, "rest"}: {name: baselineName, transport: "rest", call: func(context.Context, int) error { healthCalls.Add(1); return nil }},
		{clientToken, "rest"}:  {name: clientToken, transport: "rest", call: func(context.Context, int) error { tokenCalls.Add(1); return nil }},
	}
	group := []scenario{{name: oauthClientToken, transport: "rest", call: nothing}}
	results, err := measureGroup(group, byName, limits{duration: 20 * time.Millisecond, turn: 10 * time.Millisecond}, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].reference <= 0 || tokenCalls.Load() == 0 || healthCalls.Load() != 0 {
		t.Fatalf("results %+v; %d calls of REST %s, %d of the health check; want the reference measured, and only it",
			results, tokenCalls.Load(), clientToken, healthCalls.Load())
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
		// errors is the ninth column.
		if cells := strings.Split(line, "|"); strings.TrimSpace(cells[9]) != "0" {
			t.Fatalf("row with errors: %s", line)
		}
	}
	if strings.Contains(out.String(), checkHot) {
		t.Fatalf("--scenario RefreshToken ran other scenarios:\n%s", out.String())
	}
}

// The standard endpoints' scenarios are on the HTTP port only, and their
// calls succeed (introspection answers the token active).
func TestRunDrivesTheStandardEndpoints(t *testing.T) {
	e := servertest.Start(t)
	t.Setenv("CHIT_BENCH_CLIENT_SECRET", e.ServiceSecret)
	var out strings.Builder
	err := runCommand([]string{"--grpc-addr", e.Server.GRPCAddr(), "--http-addr", e.Server.HTTPAddr(),
		"--client-id", servertest.ServiceName, "--scenario", "/oauth2/", "--requests", "40", "--warmup", "50ms", "--concurrency", "4"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{oauthIntrospect, oauthClientToken} {
		line := lineStarting(out.String(), "| "+name+" | rest |")
		if line == "" {
			t.Fatalf("no row for %s in\n%s", name, out.String())
		}
		if cells := strings.Split(line, "|"); strings.TrimSpace(cells[9]) != "0" {
			t.Fatalf("row with errors: %s", line)
		}
		if lineStarting(out.String(), "| "+name+" | grpc |") != "" {
			t.Fatalf("%s has a gRPC row:\n%s", name, out.String())
		}
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
		{scenario: checkHot, transport: "grpc", rate: 800, reference: 1000},
		{scenario: checkHot, transport: "rest", rate: 400},
		{scenario: passwordToken, transport: "grpc", rate: 95, reference: 100},
		{scenario: refreshChains, transport: "grpc", rate: 1400},
		{scenario: passwordStampede, transport: "grpc", peakRSSMiB: 600},
		{scenario: oauthIntrospect, transport: "rest", rate: 640, reference: 1000},
		{scenario: oauthClientToken, transport: "rest", rate: 950, reference: 1000},
	})
	for _, want := range []string{
		oauthIntrospect + " / REST health check (liveness): 0.64 (target 0.85): **not met**",
		oauthClientToken + " / REST " + clientToken + ": 0.95 (target 0.90): met",
		checkHot + ", gRPC / gRPC health check: 0.80 (target 0.70): met",
		checkHot + ", REST / gRPC: 0.50 (target 0.60): **not met**",
		"raw argon2id (100/s): 0.95 (target 0.90): met",
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
