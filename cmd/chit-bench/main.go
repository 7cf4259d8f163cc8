// Command chit-bench drives a running chitd over gRPC and REST and reports
// throughput, latency percentiles, errors and the server's CPU and memory.
// `chit-bench suite` starts chitd itself, runs every scenario on both
// transports beside a health-check baseline, and writes a Markdown table.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "chit-bench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	flags := flag.NewFlagSet("chit-bench suite", flag.ContinueOnError)
	chitd := flags.String("chitd", "bin/chitd", "chitd binary to start")
	out := flags.String("out", "bench/results.md", "where to write the Markdown table")
	duration := flags.Duration("duration", 3*time.Second, "length of each scenario run")
	concurrency := flags.Int("concurrency", 32, "concurrent callers")
	postgresDSN := flags.String("postgres", os.Getenv("CHIT_BENCH_POSTGRES_DSN"), "also run on this PostgreSQL (empty: SQLite only)")
	only := flags.String("only", "", "run only the scenarios whose name contains this (the baseline always runs)")
	if len(args) > 0 && args[0] == "soak" {
		return soak(args[1:])
	}
	if len(args) == 0 || args[0] != "suite" {
		return errors.New("usage: chit-bench suite [--chitd bin/chitd] [--out bench/results.md] [--duration 3s] [--concurrency 32] [--postgres DSN] [--only NAME]\n       chit-bench soak [--chitd bin/chitd] [--duration 5m]")
	}
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	var table strings.Builder
	fmt.Fprintf(&table, "# Chit load figures\n\nMachine: %d cores (%s/%s); load generator on the same machine. Each run: %v, %d concurrent callers.\n",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, *duration, *concurrency)
	fmt.Fprintf(&table, "Ratios compare with the health-check baseline of the same transport in the same run.\n")
	backends := []string{"sqlite"}
	if *postgresDSN != "" {
		backends = append(backends, "postgres")
	}
	for _, backend := range backends {
		rows, err := suite(*chitd, backend, *postgresDSN, *only, *duration, *concurrency)
		if err != nil {
			return fmt.Errorf("%s: %w", backend, err)
		}
		fmt.Fprintf(&table, "\n## %s\n\n| scenario | transport | req/s | ratio to baseline | p50 | p90 | p99 | errors | server CPU s | server peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|\n", backend)
		baseline := map[string]float64{}
		for _, r := range rows {
			if r.scenario == baselineName {
				baseline[r.transport] = r.rate
			}
		}
		for _, r := range rows {
			fmt.Fprintf(&table, "| %s | %s | %.0f | %.2f | %v | %v | %v | %d | %.2f | %.0f |\n", r.scenario, r.transport, r.rate,
				r.rate/baseline[r.transport], r.p50.Round(10*time.Microsecond), r.p90.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond),
				r.errors, r.cpuSeconds, r.peakRSSMiB)
		}
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	fmt.Print(table.String())
	return os.WriteFile(*out, []byte(table.String()), 0o644)
}

const baselineName = "baseline (health check)"

type result struct {
	scenario, transport string
	rate                float64
	p50, p90, p99       time.Duration
	errors              int
	cpuSeconds          float64
	peakRSSMiB          float64
}

// call is one request of a scenario; worker numbers let scenarios keep
// per-worker state such as refresh chains.
type call func(ctx context.Context, worker int) error

func suite(chitd, backend, dsn, only string, duration time.Duration, concurrency int) ([]result, error) {
	dir, err := os.MkdirTemp("", "chit-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	store := []string{"--data-dir", dir}
	if backend == "postgres" {
		store = []string{"--db", dsn}
	}
	create := exec.Command(chitd, append([]string{"user", "create", "bench", "--password-stdin"}, store...)...)
	create.Stdin = strings.NewReader("bench-password-1\n")
	if out, err := create.CombinedOutput(); err != nil && !strings.Contains(string(out), "already exists") {
		return nil, fmt.Errorf("create user: %v %s", err, out)
	}
	out, err := exec.Command(chitd, append([]string{"service", "create", fmt.Sprintf("bench-%d", time.Now().UnixNano())}, store...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("create service: %v", err)
	}
	var clientID, secret string
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "client_id: "); ok {
			clientID = v
		}
		if v, ok := strings.CutPrefix(line, "client_secret: "); ok {
			secret = v
		}
	}
	server := exec.Command(chitd, append([]string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--insecure-dev", "--log-format", "json", "--log-level", "info", "--max-concurrent-hashes", strconv.Itoa(runtime.NumCPU())}, store...)...)
	grpcAddr, httpAddr, err := startServer(server)
	if err != nil {
		return nil, err
	}
	defer func() { _ = server.Process.Kill(); _ = server.Wait() }()

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	auth := authv1.NewAuthServiceClient(conn)
	health := grpc_health_v1.NewHealthClient(conn)
	rest := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency * 2}}
	base := "http://" + httpAddr

	ctx := context.Background()
	service, err := auth.Token(ctx, clientRequest(clientID, secret))
	if err != nil {
		return nil, fmt.Errorf("client credentials: %w", err)
	}
	pool := make([]string, 256)
	for i := range pool {
		t, err := auth.Token(ctx, clientRequest(clientID, secret))
		if err != nil {
			return nil, err
		}
		pool[i] = t.GetAccessToken()
	}
	providerTokens, err := claimProviders(ctx, conn, service.GetAccessToken(), 64)
	if err != nil {
		return nil, fmt.Errorf("providers: %w", err)
	}
	chains := make([]string, concurrency)
	newChains := func() error {
		for i := range chains {
			t, err := auth.Token(ctx, passwordRequest())
			if err != nil {
				return err
			}
			chains[i] = t.GetRefreshToken()
		}
		return nil
	}
	var chainMu sync.Mutex
	restPost := func(path string, body any, bearer string) ([]byte, error) {
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		return restDo(rest, req)
	}
	restGet := func(path, bearer string) ([]byte, error) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		return restDo(rest, req)
	}
	withBearer := func(ctx context.Context, token string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	refreshVia := func(rotate func(string) (string, error)) call {
		return func(_ context.Context, worker int) error {
			chainMu.Lock()
			token := chains[worker]
			chainMu.Unlock()
			next, err := rotate(token)
			if err != nil {
				return err
			}
			chainMu.Lock()
			chains[worker] = next
			chainMu.Unlock()
			return nil
		}
	}
	type scenario struct {
		name, transport string
		setup           func() error
		call            call
		// callers overrides the suite's concurrency.
		callers int
	}
	scenarios := []scenario{
		{baselineName, "grpc", nil, func(ctx context.Context, _ int) error {
			_, err := health.Check(ctx, &grpc_health_v1.HealthCheckRequest{})
			return err
		}, 0},
		{baselineName, "rest", nil, func(ctx context.Context, _ int) error { _, err := restGet("/healthz", ""); return err }, 0},
		{"CheckToken, one hot token", "grpc", nil, func(ctx context.Context, _ int) error {
			_, err := auth.CheckToken(withBearer(ctx, service.GetAccessToken()), &authv1.CheckTokenRequest{})
			return err
		}, 0},
		{"CheckToken, one hot token", "rest", nil, func(ctx context.Context, _ int) error {
			_, err := restGet("/v1/auth/check", service.GetAccessToken())
			return err
		}, 0},
		{"CheckToken, pool of 256", "grpc", nil, func(ctx context.Context, worker int) error {
			_, err := auth.CheckToken(withBearer(ctx, pool[int(time.Now().UnixNano()/7)%len(pool)]), &authv1.CheckTokenRequest{})
			return err
		}, 0},
		{"CheckToken, pool of 256", "rest", nil, func(ctx context.Context, worker int) error {
			_, err := restGet("/v1/auth/check", pool[int(time.Now().UnixNano()/7)%len(pool)])
			return err
		}, 0},
		{"Token, client credentials", "grpc", nil, func(ctx context.Context, _ int) error {
			_, err := auth.Token(ctx, clientRequest(clientID, secret))
			return err
		}, 0},
		{"Token, client credentials", "rest", nil, func(ctx context.Context, _ int) error {
			_, err := restPost("/v1/auth/token", map[string]any{"clientCredential": map[string]string{"clientId": clientID, "clientSecret": secret}}, "")
			return err
		}, 0},
		{"Token, password (argon2id)", "grpc", nil, func(ctx context.Context, _ int) error {
			_, err := auth.Token(ctx, passwordRequest())
			return err
		}, 0},
		{"Token, password (argon2id)", "rest", nil, func(ctx context.Context, _ int) error {
			_, err := restPost("/v1/auth/token", map[string]any{"passwordCredential": map[string]string{"username": "bench", "password": "bench-password-1"}}, "")
			return err
		}, 0},
		{"Token, password, 1000 concurrent sign-ins", "grpc", nil, func(ctx context.Context, _ int) error {
			_, err := auth.Token(ctx, passwordRequest())
			return err
		}, 1000},
		{"RefreshToken, one chain per caller", "grpc", newChains, refreshVia(func(token string) (string, error) {
			resp, err := auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: token})
			return resp.GetRefreshToken(), err
		}), 0},
		{"RefreshToken, one chain per caller", "rest", newChains, refreshVia(func(token string) (string, error) {
			raw, err := restPost("/v1/auth/token/refresh", map[string]string{"refreshToken": token}, "")
			if err != nil {
				return "", err
			}
			var answer struct {
				RefreshToken string `json:"refreshToken"`
			}
			return answer.RefreshToken, json.Unmarshal(raw, &answer)
		}), 0},
	}
	providerAPI := authv1.NewAuthProvidersClient(conn)
	scenarios = append(scenarios,
		scenario{"provider refresh, pool of 64", "grpc", nil, func(ctx context.Context, worker int) error {
			_, err := providerAPI.Refresh(ctx, &authv1.AuthProvidersRefreshRequest{Items: []*authv1.RefreshToken{{RefreshToken: providerTokens[worker%len(providerTokens)]}}})
			return err
		}, 0},
		scenario{"provider refresh, pool of 64", "rest", nil, func(ctx context.Context, worker int) error {
			_, err := restPost("/auth/providers/refresh", map[string]any{"items": []map[string]string{{"refreshToken": providerTokens[worker%len(providerTokens)]}}}, "")
			return err
		}, 0},
	)
	var results []result
	for _, sc := range scenarios {
		if !strings.Contains(sc.name, only) && sc.name != baselineName {
			continue
		}
		if sc.setup != nil {
			if err := sc.setup(); err != nil {
				return nil, fmt.Errorf("%s setup: %w", sc.name, err)
			}
		}
		callers := concurrency
		if sc.callers > 0 {
			callers = sc.callers
		}
		r := load(sc.call, duration, callers, server.Process.Pid)
		r.scenario, r.transport = sc.name, sc.transport
		fmt.Fprintf(os.Stderr, "%-36s %-5s %8.0f req/s  p99 %v  errors %d\n", r.scenario, r.transport, r.rate, r.p99, r.errors)
		results = append(results, r)
	}
	return results, nil
}

// claimProviders registers and claims n providers (as the bench service)
// and returns their refresh tokens.
func claimProviders(ctx context.Context, conn *grpc.ClientConn, serviceToken string, n int) ([]string, error) {
	api := authv1.NewAuthProvidersClient(conn)
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+serviceToken)
	register := &authv1.AuthProvidersRegisterRequest{}
	prefix := fmt.Sprintf("bench-%d-", time.Now().UnixNano())
	for i := range n {
		register.Items = append(register.Items, &authv1.AuthProvidersRegisterRequestItem{Id: prefix + strconv.Itoa(i)})
	}
	registered, err := api.Register(ctx, register)
	if err != nil {
		return nil, err
	}
	claim := &authv1.AuthProvidersClaimRequest{}
	for _, item := range registered.GetResponses() {
		claim.Items = append(claim.Items, &authv1.AuthProvidersRegisterResponseItem{ClaimToken: item.GetClaimToken()})
	}
	claimed, err := api.Claim(ctx, claim)
	if err != nil {
		return nil, err
	}
	var refreshTokens []string
	for _, item := range claimed.GetResponses() {
		refreshTokens = append(refreshTokens, item.GetRefreshToken())
	}
	return refreshTokens, nil
}

func restDo(client *http.Client, req *http.Request) ([]byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, raw)
	}
	return raw, err
}

func passwordRequest() *authv1.TokenRequest {
	return &authv1.TokenRequest{Credential: &authv1.TokenRequest_PasswordCredential{
		PasswordCredential: &authv1.PasswordCredential{Username: "bench", Password: "bench-password-1"}}}
}

func clientRequest(id, secret string) *authv1.TokenRequest {
	return &authv1.TokenRequest{Credential: &authv1.TokenRequest_ClientCredential{
		ClientCredential: &authv1.ClientCredential{ClientId: id, ClientSecret: secret}}}
}

// load runs c from concurrency workers for duration.
func load(c call, duration time.Duration, concurrency, pid int) result {
	cpuBefore := cpuSeconds(pid)
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	latencies := make([][]time.Duration, concurrency)
	failures := make([]int, concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				began := time.Now()
				err := c(context.Background(), w)
				if err != nil {
					failures[w]++
					continue
				}
				latencies[w] = append(latencies[w], time.Since(began))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	r := result{cpuSeconds: cpuSeconds(pid) - cpuBefore, peakRSSMiB: procStatusMiB(pid, "VmHWM")}
	for w := range concurrency {
		all = append(all, latencies[w]...)
		r.errors += failures[w]
	}
	slices.Sort(all)
	r.rate = float64(len(all)) / elapsed.Seconds()
	if len(all) > 0 {
		r.p50, r.p90, r.p99 = all[len(all)*50/100], all[len(all)*90/100], all[len(all)*99/100]
	}
	return r
}

// cpuSeconds reads utime+stime of pid from /proc (Linux; 0 elsewhere).
func cpuSeconds(pid int) float64 {
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
