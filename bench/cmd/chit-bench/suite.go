package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/chit-auth/chit/internal/passwords"
)

// suiteCommand starts chitd on each backend, runs every scenario and writes
// the Markdown table of bench/results.md.
func suiteCommand(args []string) error {
	flags := flag.NewFlagSet("chit-bench suite", flag.ContinueOnError)
	chitd := flags.String("chitd", "../bin/chitd", "chitd binary to start")
	out := flags.String("out", "results.md", "where to write the Markdown table")
	duration := flags.Duration("duration", 4*time.Second, "how long each scenario, and each reference it is compared with, is counted")
	warmup := flags.Duration("warmup", time.Second, "uncounted calls each one makes before its counted turns")
	turn := flags.Duration("turn", 500*time.Millisecond, "how long a scenario and its references each run at a time, taking turns")
	concurrency := flags.Int("concurrency", 32, "concurrent callers")
	postgresDSN := flags.String("postgres", os.Getenv("CHIT_BENCH_POSTGRES_DSN"), "also run on this PostgreSQL (default $CHIT_BENCH_POSTGRES_DSN; empty: SQLite only)")
	only := flags.String("only", "", "run only the scenarios whose name contains this (each with its references)")
	// The comparison's target sits at a ratio of 1.00, where the 4 s of the
	// other scenarios left a spread of about ±10% between runs.
	compareDuration := flags.Duration("compare-duration", 12*time.Second, "how long each store is counted in the PostgreSQL and SQLite comparison")
	if err := flags.Parse(args); err != nil {
		return err
	}
	var doc strings.Builder
	fmt.Fprintf(&doc, "# Chit load figures\n\nMachine: %d cores (%s/%s); load generator on the same machine; %d concurrent callers.\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, *concurrency)
	fmt.Fprintf(&doc, "Each scenario is compared with a reference measured in the same run, in turns of %v: each transport with the\n"+
		"health check over that transport (/oauth2/introspect with GET /healthz, the liveness probe), %s with REST\n"+
		"%s, and password sign-ins with raw argon2id at the default parameters (%d KiB, %d\n"+
		"passes) hashed in the load generator, one goroutine per core, while the server idles. After a %v warm-up each,\n"+
		"the scenario and its references take turns until each has been counted for %v; a turn ends when its last call\n"+
		"has returned. Taking turns keeps the machine's drift, which is as large as the differences measured, out of the\n"+
		"ratios. The 1,000-caller burst runs alone, counted from its first call.\n",
		*turn, oauthClientToken, clientToken, passwords.DefaultParams.MemoryKiB, passwords.DefaultParams.Iterations, *warmup, *duration)
	backends := []string{"sqlite"}
	if *postgresDSN != "" {
		backends = append(backends, "postgres")
	}
	for _, backend := range backends {
		results, err := suite(*chitd, backend, *postgresDSN, *only, limits{warmup: *warmup, duration: *duration, turn: *turn}, *concurrency)
		if err != nil {
			return fmt.Errorf("%s: %w", backend, err)
		}
		fmt.Fprintf(&doc, "\n## %s\n\n%s%s", backend, tableHeader, tableRows(results))
		fmt.Fprintf(&doc, "\nTargets (%s):\n\n%s", backend, targetLines(backend, results))
	}
	if len(backends) == 2 && strings.Contains(refreshChains, *only) {
		rates, err := compareBackends(*chitd, *postgresDSN, limits{warmup: *warmup, duration: *compareDuration, turn: *turn}, *concurrency)
		if err != nil {
			return fmt.Errorf("PostgreSQL and SQLite: %w", err)
		}
		fmt.Fprintf(&doc, "\n## PostgreSQL and SQLite\n\nA chitd on each store, both running, the two take turns of %v at %s until each has been counted\n"+
			"for %v (the groups above ran one after the other, and the machine drifts between them).\n\n%s", *turn, refreshChains, *compareDuration, backendTargetLines(rates))
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	fmt.Print(doc.String())
	return os.WriteFile(*out, []byte(doc.String()), 0o644)
}

func suite(chitd, backend, dsn, only string, lim limits, concurrency int) ([]result, error) {
	t, pid, stop, err := startTarget(chitd, backend, dsn, concurrency)
	if err != nil {
		return nil, err
	}
	defer stop()
	scenarios := t.scenarios()
	byName := map[[2]string]scenario{}
	for _, sc := range scenarios {
		byName[[2]string{sc.name, sc.transport}] = sc
	}
	var results []result
	for _, group := range groupByName(scenarios) {
		if group[0].name == baselineName || !strings.Contains(group[0].name, only) {
			continue
		}
		countStore := group[0].name == oauthDevicePoll
		var opsBefore, namedBefore float64
		pollsBefore := t.polls.Load()
		if countStore {
			if opsBefore, namedBefore, err = t.storeOperations(context.Background(), "PollDeviceCode"); err != nil {
				return nil, fmt.Errorf("%s: read the metrics: %w", group[0].name, err)
			}
		}
		measured, err := measureGroup(group, byName, lim, concurrency, pid)
		if err != nil {
			return nil, err
		}
		if polls := float64(t.polls.Load() - pollsBefore); countStore && polls > 0 {
			// Every store operation of the run, whatever its name, counts:
			// the reference (the liveness probe) makes none.
			ops, named, err := t.storeOperations(context.Background(), "PollDeviceCode")
			if err != nil {
				return nil, fmt.Errorf("%s: read the metrics: %w", group[0].name, err)
			}
			measured[0].storeOpsPerCall, measured[0].namedOpsPerCall = (ops-opsBefore)/polls, (named-namedBefore)/polls
		}
		results = append(results, measured...)
	}
	if strings.Contains(revocationFanout, only) {
		measured, err := t.measureFanout(context.Background())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", revocationFanout, err)
		}
		results = append(results, measured)
	}
	return results, nil
}

// startTarget creates a user and a service account with chitd's commands on
// a fresh store of backend, starts chitd serve on it and returns the target
// to load, the server's process id and how to stop it.
func startTarget(chitd, backend, dsn string, concurrency int) (*target, int, func(), error) {
	dir, err := os.MkdirTemp("", "chit-bench-")
	if err != nil {
		return nil, 0, nil, err
	}
	store := []string{"--data-dir", dir}
	dropSchema := func() {}
	if backend == "postgres" {
		// A schema of its own: rows left by earlier runs would change the
		// tables' sizes, and the plans PostgreSQL chooses for them.
		fresh, drop, err := freshSchema(context.Background(), dsn)
		if err != nil {
			os.RemoveAll(dir)
			return nil, 0, nil, err
		}
		store, dropSchema = []string{"--db", fresh}, drop
	}
	fail := func(err error) (*target, int, func(), error) {
		os.RemoveAll(dir)
		dropSchema()
		return nil, 0, nil, err
	}
	// One user per caller: a person signs in once at a time, and a
	// username's tries are counted before they are checked.
	const password = "bench-password-1"
	usernames := make([]string, concurrency)
	errs := make([]error, concurrency)
	createUser := func(i int) {
		usernames[i] = fmt.Sprintf("bench-%d", i)
		create := exec.Command(chitd, append([]string{"user", "create", usernames[i], "--password-stdin"}, store...)...)
		create.Stdin = strings.NewReader(password + "\n")
		if out, err := create.CombinedOutput(); err != nil && !strings.Contains(string(out), "already exists") {
			errs[i] = fmt.Errorf("create user %s: %v %s", usernames[i], err, out)
		}
	}
	// The first creates (and migrates) the store; the others then run at
	// once (binaries from before concurrent first migrations were safe
	// are compared too).
	createUser(0)
	var wg sync.WaitGroup
	for i := 1; i < len(usernames); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			createUser(i)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	out, err := exec.Command(chitd, append([]string{"service", "create", fmt.Sprintf("bench-%d", time.Now().UnixNano())}, store...)...).Output()
	if err != nil {
		return fail(fmt.Errorf("create service: %v", err))
	}
	clientID, secret := serviceCredentials(out)
	// The sign-in session scenario's client (a binary from before clients
	// existed cannot make one: that scenario's setup then fails alone).
	ssoClient := benchSSOClient
	if out, err := exec.Command(chitd, append([]string{"client", "create", benchSSOClient, "--redirect-uri", benchSSORedirect, "--scope", "openid"},
		store...)...).CombinedOutput(); err != nil && !strings.Contains(string(out), "already exists") {
		ssoClient = ""
	}
	grants, grantsProblem := makeGrantFixtures(chitd, store, dir)
	// The revocation fan-out's subscriber (a binary from before the feed
	// cannot grant its scope: that scenario then fails alone).
	var feedClientID, feedSecret string
	if out, err := exec.Command(chitd, append([]string{"service", "create", fmt.Sprintf("bench-feed-%d", time.Now().UnixNano()),
		"--scope", "chit:revocations"}, store...)...).Output(); err == nil {
		feedClientID, feedSecret = serviceCredentials(out)
	}
	// The device polling scenario's client: public, allowed the device grant.
	_, deviceErr := exec.Command(chitd, append([]string{"client", "create", benchDeviceClient, "--redirect-uri", benchSSORedirect,
		"--scope", "openid", "--device-authorization"}, store...)...).CombinedOutput()
	server := exec.Command(chitd, append([]string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--insecure-dev", "--log-format", "json", "--log-level", "info", "--max-concurrent-hashes", strconv.Itoa(runtime.NumCPU())}, store...)...)
	grpcAddr, httpAddr, err := startServer(server)
	if err != nil {
		return fail(err)
	}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		_ = server.Process.Kill()
		_ = server.Wait()
		return fail(err)
	}
	stop := func() {
		conn.Close()
		_ = server.Process.Kill()
		_ = server.Wait()
		os.RemoveAll(dir)
		dropSchema()
	}
	t := &target{
		conn: conn, rest: newRESTClient(httpAddr, nil, concurrency), callers: concurrency,
		clientID: clientID, clientSecret: secret, usernames: usernames, password: password,
		ssoClient: ssoClient, ssoRedirect: benchSSORedirect, grants: grants, grantsProblem: grantsProblem,
		deviceClient: deviceErr == nil, feedClientID: feedClientID, feedSecret: feedSecret,
	}
	return t, server.Process.Pid, stop, nil
}

// groupByName gathers the transports of each scenario, in order.
func groupByName(scenarios []scenario) [][]scenario {
	var groups [][]scenario
	for _, sc := range scenarios {
		if n := len(groups); n > 0 && groups[n-1][0].name == sc.name {
			groups[n-1] = append(groups[n-1], sc)
		} else {
			groups = append(groups, []scenario{sc})
		}
	}
	return groups
}

// measureGroup loads one scenario on each of its transports. They take turns
// with their references: the health check over the same transport, the
// scenario comparedWith names over the same transport, or, for password
// sign-ins, raw argon2id hashing in this process while the server idles. A
// burst runs alone, counted from its first call. byName holds the
// references, by name and transport.
func measureGroup(group []scenario, byName map[[2]string]scenario, lim limits, concurrency, pid int) ([]result, error) {
	reference := func(sc scenario) (scenario, error) {
		name := baselineName
		if other, ok := comparedWith[sc.name]; ok {
			name = other
		}
		ref, ok := byName[[2]string{name, sc.transport}]
		if !ok {
			return scenario{}, fmt.Errorf("%s over %s: no reference %q over %s", sc.name, sc.transport, name, sc.transport)
		}
		return ref, nil
	}
	for _, sc := range group {
		if err := sc.setUp(); err != nil {
			return nil, err
		}
		if _, compared := comparedWith[sc.name]; compared {
			ref, err := reference(sc)
			if err != nil {
				return nil, err
			}
			if err := ref.setUp(); err != nil {
				return nil, err
			}
		}
	}
	var callers []caller
	rows, references := make([]int, len(group)), make([]int, len(group))
	rawHashes := group[0].name == passwordToken
	if rawHashes {
		// The raw reference hashes in this process: with chitd's collector
		// target, so that it is not slowed by more collections than chitd's
		// hashing is.
		defer debug.SetGCPercent(debug.SetGCPercent(passwords.GCPercent))
	}
	for i, sc := range group {
		workers := concurrency
		switch {
		case sc.callers > 0:
			workers, lim.warmup, references[i] = sc.callers, 0, -1
		case rawHashes && i == 0:
			references[i] = len(callers)
			callers = append(callers, caller{rawArgon2id(), runtime.NumCPU()})
		case rawHashes:
			references[i] = references[0]
		default:
			ref, err := reference(sc)
			if err != nil {
				return nil, err
			}
			references[i] = len(callers)
			callers = append(callers, caller{ref.call, concurrency})
		}
		rows[i] = len(callers)
		callers = append(callers, caller{sc.call, workers})
	}
	measured := takeTurns(callers, lim, pid)
	results := make([]result, len(group))
	for i, sc := range group {
		r := measured[rows[i]]
		r.scenario, r.transport = sc.name, sc.transport
		if ref := references[i]; ref >= 0 {
			r.reference = measured[ref].rate
		}
		r.report()
		results[i] = r
	}
	return results, nil
}

// rawArgon2id hashes at the default parameters in this process, with one
// hashing slot per core as chitd has: the ceiling of password sign-ins.
func rawArgon2id() call {
	hasher, err := passwords.NewHasher(passwords.DefaultParams, runtime.NumCPU(), 0, rand.Reader)
	return func(ctx context.Context, _ int) error {
		if err != nil {
			return err
		}
		_, err := hasher.Hash(ctx, "bench-password-1")
		return err
	}
}

// compareBackends runs the refresh chains on a chitd on each store, the two
// taking turns, and returns the rotations per second by backend and
// transport.
func compareBackends(chitd, dsn string, lim limits, concurrency int) (map[string]float64, error) {
	var callers []caller
	var names []string
	for _, backend := range []string{"sqlite", "postgres"} {
		t, _, stop, err := startTarget(chitd, backend, dsn, concurrency)
		if err != nil {
			return nil, err
		}
		defer stop()
		for _, sc := range t.scenarios() {
			if sc.name != refreshChains {
				continue
			}
			if err := sc.setUp(); err != nil {
				return nil, err
			}
			callers = append(callers, caller{sc.call, concurrency})
			names = append(names, backend+"/"+sc.transport)
		}
	}
	rates := map[string]float64{}
	for i, r := range takeTurns(callers, lim, 0) {
		rates[names[i]] = r.rate
	}
	return rates, nil
}

// backendTargetLines compares the backends: refresh-token rotations on
// PostgreSQL at least as fast as on SQLite.
func backendTargetLines(rates map[string]float64) string {
	var lines strings.Builder
	lines.WriteString("| transport | SQLite rotations/s | PostgreSQL rotations/s | PostgreSQL / SQLite |\n|---|---|---|---|\n")
	var targets strings.Builder
	for _, transport := range []string{"grpc", "rest"} {
		pg, lite := rates["postgres/"+transport], rates["sqlite/"+transport]
		if pg == 0 || lite == 0 {
			continue
		}
		fmt.Fprintf(&lines, "| %s | %.0f | %.0f | %.2f |\n", transport, lite, pg, pg/lite)
		mark := "met"
		if pg < lite {
			mark = "**not met**"
		}
		fmt.Fprintf(&targets, "- %s over %s, PostgreSQL / SQLite: %.2f (target at least 1.00): %s\n", refreshChains, transport, pg/lite, mark)
	}
	return lines.String() + "\nTargets (this run):\n\n" + targets.String()
}

// targetLines compares the run with the targets of the performance issue.
// They are reported, never asserted: the machine is shared and noisy.
func targetLines(backend string, results []result) string {
	find := func(scenario, transport string) result {
		for _, r := range results {
			if r.scenario == scenario && r.transport == transport {
				return r
			}
		}
		return result{}
	}
	rate := func(scenario, transport string) float64 { return find(scenario, transport).rate }
	var lines strings.Builder
	check := func(what string, measured, target float64, format string, atMost bool) {
		if measured == 0 {
			return
		}
		met := measured >= target
		if atMost {
			met = measured <= target
		}
		mark := "met"
		if !met {
			mark = "**not met**"
		}
		fmt.Fprintf(&lines, "- %s: "+format+" (target "+format+"): %s\n", what, measured, target, mark)
	}
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	for _, scenario := range []string{checkHot, checkPool} {
		check(scenario+", gRPC / gRPC health check", ratio(rate(scenario, "grpc"), find(scenario, "grpc").reference), 0.70, "%.2f", false)
		check(scenario+", REST / gRPC", ratio(rate(scenario, "rest"), rate(scenario, "grpc")), 0.60, "%.2f", false)
	}
	// A DPoP-bound check verifies the proof's signature and records its
	// jti beside the cached token's check (RFC 9449 §7), in turns with the
	// same check of a bearer token.
	for _, transport := range []string{"grpc", "rest"} {
		check(checkDPoP+" over "+transport+" / "+checkHot, ratio(rate(checkDPoP, transport), find(checkDPoP, transport).reference), 0.50, "%.2f", false)
	}
	// Every subscribed verifier refuses a revoked login's token within a
	// second of the revocation, at p99.
	if r := find(revocationFanout, "sse"); r.requests > 0 {
		check(fmt.Sprintf("%s, delay to refusal at p99 (%d refusals; p50 %v), seconds", revocationFanout, r.requests, r.p50.Round(time.Millisecond)),
			r.p99.Seconds(), 1, "%.3f", true)
	}
	check(clientToken+" over gRPC, per second", rate(clientToken, "grpc"), 5000, "%.0f", false)
	// The standard endpoints beside what they stand in for: introspection
	// beside the liveness probe, as CheckToken is beside the health check;
	// /oauth2/token's client credentials beside the REST Token's, the same
	// grant behind another encoding.
	check(oauthIntrospect+" / REST health check (liveness)", ratio(rate(oauthIntrospect, "rest"), find(oauthIntrospect, "rest").reference), 0.85, "%.2f", false)
	// A session's sign-in reads the session, the person, the client and the
	// subject's revocations and stores a code (a durable write; the
	// session's last use is written once a minute at most), beside the
	// liveness probe's nothing. A 1-second smoke run with 4 callers on a
	// shared 2-core machine measured 0.06 on SQLite; the suite's run sets
	// the figure in bench/results.md.
	check(ssoAuthorize+" / REST health check (liveness)", ratio(rate(ssoAuthorize, "rest"), find(ssoAuthorize, "rest").reference), 0.05, "%.2f", false)
	check(oauthClientToken+" / REST "+clientToken, ratio(rate(oauthClientToken, "rest"), find(oauthClientToken, "rest").reference), 0.90, "%.2f", false)
	// An API key's exchange reads the key and its owner (client credentials
	// keep the account a second); it signs the same token.
	check(apiKeyToken+" over gRPC / client credentials over gRPC", ratio(rate(apiKeyToken, "grpc"), rate(clientToken, "grpc")), 0.50, "%.2f", false)
	// Each reads its account (and the rule, or the subject's login), checks
	// one more signature than client credentials and signs the same token.
	check(oauthTokenExchange+" / "+oauthClientToken, ratio(rate(oauthTokenExchange, "rest"), find(oauthTokenExchange, "rest").reference), 0.50, "%.2f", false)
	check(oauthFederation+" / "+oauthClientToken, ratio(rate(oauthFederation, "rest"), find(oauthFederation, "rest").reference), 0.50, "%.2f", false)
	// RFC 8628 §3.5: one store operation per poll (a conditional update that
	// reads the authorization and stamps the poll, so that slow_down holds
	// across replicas). Every operation of the server during the run is
	// counted: the client's read once per cache time (1 s) and the server's
	// background checks (readiness, clean-up) add a few hundredths.
	for _, r := range results {
		if r.scenario == oauthDevicePoll && r.storeOpsPerCall > 0 {
			check(fmt.Sprintf("%s, store operations per poll (PollDeviceCode: %.2f)", oauthDevicePoll, r.namedOpsPerCall), r.storeOpsPerCall, 1.05, "%.2f", true)
		}
	}
	if backend == "sqlite" {
		check(refreshChains+" over gRPC, rotations per second", rate(refreshChains, "grpc"), 1500, "%.0f", false)
	}
	for _, transport := range []string{"grpc", "rest"} {
		r := find(passwordToken, transport)
		check(fmt.Sprintf("%s over %s / raw argon2id (%.0f/s)", passwordToken, transport, r.reference),
			ratio(r.rate, r.reference), 0.90, "%.2f", false)
	}
	for _, r := range results {
		if r.scenario == passwordStampede {
			check("server peak RSS with 1,000 concurrent sign-ins, MiB", r.peakRSSMiB, 512, "%.0f", true)
		}
	}
	return lines.String()
}
