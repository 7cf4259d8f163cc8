// Command chit-bench drives chitd over gRPC and REST and reports throughput,
// latency percentiles, errors and the server's CPU and memory.
//
//	chit-bench run    drives a running chitd (one scenario or all of them)
//	chit-bench suite  starts chitd itself, runs every scenario on both
//	                  transports beside a health-check baseline, and writes
//	                  a Markdown table (make bench)
//	chit-bench soak   runs CheckToken for minutes and checks the server's
//	                  memory does not grow (make soak)
//	chit-bench growth measures the store's bytes per login as logins rotate,
//	                  and rotations at 100 and 100,000 live logins
//	                  (make bench-growth)
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

const usage = `usage:
  chit-bench run   [--grpc-addr localhost:9090] [--http-addr localhost:8080] [--scenario NAME] [--transport grpc|rest|both]
                   [--duration 10s | --requests N] [--warmup 1s] [--concurrency 32] [--server-pid PID] [--client-id ID] [--username NAME] [--tls [--ca-file F]] [--cpuprofile F]
                   (secrets from CHIT_BENCH_CLIENT_SECRET and CHIT_BENCH_PASSWORD)
  chit-bench suite [--chitd ../bin/chitd] [--out results.md] [--duration 4s] [--compare-duration 12s] [--warmup 1s] [--turn 500ms] [--concurrency 32] [--postgres DSN] [--only NAME]
  chit-bench compare [--chitd ../bin/chitd] [--baseline ../bin/chitd-baseline] [--out compare.md] [--duration 8s] [--only NAME]
                   [--postgres DSN --baseline-postgres DSN2]
  chit-bench soak  [--chitd ../bin/chitd] [--duration 5m] [--concurrency 32]
  chit-bench growth [--out growth.md] [--postgres DSN] [--logins 32] [--rotations 10000] [--live 100000] [--duration 4s] [--turn 500ms]
Run "chit-bench COMMAND --help" for the flags of one command.`

func main() {
	err := dispatch(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return // the flag package printed the help
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chit-bench:", err)
		os.Exit(1)
	}
}

func dispatch(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("a command is required\n%s", usage)
	}
	switch args[0] {
	case "run":
		return runCommand(args[1:], os.Stdout)
	case "suite":
		return suiteCommand(args[1:])
	case "compare":
		return compareCommand(args[1:])
	case "soak":
		return soak(args[1:])
	case "growth":
		return growthCommand(args[1:])
	case "help", "-h", "--help":
		fmt.Println(usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}
