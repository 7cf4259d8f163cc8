package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// runCommand drives a running chitd and writes a Markdown table to out.
func runCommand(args []string, out io.Writer) error {
	flags := flag.NewFlagSet("chit-bench run", flag.ContinueOnError)
	grpcAddr := flags.String("grpc-addr", "localhost:9090", "chitd's gRPC address")
	httpAddr := flags.String("http-addr", "localhost:8080", "chitd's HTTP address")
	scenarioName := flags.String("scenario", "", "run the scenarios whose name contains this (empty: all); the baseline always runs")
	transport := flags.String("transport", "both", "grpc, rest or both")
	duration := flags.Duration("duration", 10*time.Second, "length of each scenario run (unless --requests)")
	requests := flags.Int("requests", 0, "make this many requests per scenario instead of running for --duration")
	warmup := flags.Duration("warmup", time.Second, "calls made before each scenario's counted part begins")
	concurrency := flags.Int("concurrency", 32, "concurrent callers")
	serverPID := flags.Int("server-pid", 0, "chitd's process id on this machine, to report its CPU seconds and peak RSS (0: not reported)")
	clientID := flags.String("client-id", "", "a service account for the CheckToken, client-credentials and provider scenarios (secret in $CHIT_BENCH_CLIENT_SECRET)")
	username := flags.String("username", "", "users for the password and refresh scenarios, comma-separated, sharing the password in $CHIT_BENCH_PASSWORD; callers take turns among them (one username signing in from many callers at once is throttled like a burst of guesses)")
	ssoClient := flags.String("sso-client", "", "a registered public OAuth client allowed openid, for the sign-in session scenario (its users are --username's)")
	ssoRedirect := flags.String("sso-redirect-uri", "http://127.0.0.1/callback", "--sso-client's registered redirect URI")
	useTLS := flags.Bool("tls", false, "call both ports over TLS")
	caFile := flags.String("ca-file", "", "with --tls, trust this CA bundle (PEM) instead of the system roots")
	cpuProfile := flags.String("cpuprofile", "", "write the load generator's own CPU profile here (it shares the machine's cores with a local chitd)")
	flags.Usage = func() {
		fmt.Fprintf(flags.Output(), "Usage: chit-bench run [flags]\n\nDrives a running chitd. Scenarios: %s.\n\nFlags:\n",
			strings.Join([]string{checkHot, checkPool, clientToken, oauthClientToken, oauthIntrospect, apiKeyToken, passwordToken, passwordStampede, refreshChains, providerRefresh}, "; "))
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *transport != "grpc" && *transport != "rest" && *transport != "both" {
		return fmt.Errorf("--transport must be grpc, rest or both, not %q", *transport)
	}
	if *requests <= 0 && *duration <= 0 {
		return errors.New("give a positive --duration or --requests")
	}
	grpcCreds := credentials.TransportCredentials(insecure.NewCredentials())
	var restTLS *tls.Config
	if *useTLS {
		config := &tls.Config{MinVersion: tls.VersionTLS12}
		if *caFile != "" {
			pem, err := os.ReadFile(*caFile)
			if err != nil {
				return err
			}
			config.RootCAs = x509.NewCertPool()
			if !config.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("%s holds no PEM certificate", *caFile)
			}
		}
		grpcCreds, restTLS = credentials.NewTLS(config), config
	}
	conn, err := grpc.NewClient(*grpcAddr, grpc.WithTransportCredentials(grpcCreds))
	if err != nil {
		return err
	}
	defer conn.Close()
	t := &target{
		conn: conn, rest: newRESTClient(*httpAddr, restTLS, *concurrency), callers: *concurrency,
		clientID: *clientID, clientSecret: os.Getenv("CHIT_BENCH_CLIENT_SECRET"),
		usernames: usernamesOf(*username), password: os.Getenv("CHIT_BENCH_PASSWORD"),
		ssoClient: *ssoClient, ssoRedirect: *ssoRedirect,
	}
	if *cpuProfile != "" {
		file, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer file.Close()
		if err := pprof.StartCPUProfile(file); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var results []result
	for _, sc := range t.scenarios() {
		if !strings.Contains(sc.name, *scenarioName) && sc.name != baselineName {
			continue
		}
		if *transport != "both" && sc.transport != *transport {
			continue
		}
		if suiteOnly[sc.name] {
			fmt.Fprintf(os.Stderr, "%s: left out (the suite makes its accounts: make bench)\n", sc.name)
			continue
		}
		r, err := runScenario(sc, limits{warmup: *warmup, duration: *duration, requests: *requests}, *concurrency, *serverPID)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	_, err = fmt.Fprint(out, tableHeader+tableRows(results))
	return err
}

// runScenario sets sc up and loads it alone.
func runScenario(sc scenario, lim limits, concurrency, pid int) (result, error) {
	if err := sc.setUp(); err != nil {
		return result{}, err
	}
	callers := concurrency
	if sc.callers > 0 {
		callers, lim.warmup = sc.callers, 0
	}
	r := load(sc.call, lim, callers, pid)
	r.scenario, r.transport = sc.name, sc.transport
	r.report()
	return r, nil
}

// usernamesOf splits the comma-separated --username.
func usernamesOf(flag string) []string {
	var names []string
	for _, name := range strings.Split(flag, ",") {
		if name = strings.TrimSpace(name); name != "" {
			names = append(names, name)
		}
	}
	return names
}
