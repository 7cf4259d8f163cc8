package main

import (
	"io"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/chit-auth/chit/internal/server"
)

// parseServeFlags parses args as serve's flags.
func parseServeFlags(t *testing.T, args ...string) (*serveFlags, *hashFlags) {
	t.Helper()
	flags := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	var serve serveFlags
	var hashing hashFlags
	serve.register(flags)
	hashing.register(flags)
	if err := flags.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &serve, &hashing
}

// The rules server.Config.Validate owns are checked there alone: each bad
// value reaches the server's Config and Validate refuses it (were the rule
// only in chitd, Validate would accept it), and serve reports it with the
// flag's name.
func TestServeReportsValidateProblemsByFlag(t *testing.T) {
	if serve, hashing := parseServeFlags(t); serve.serverConfig(hashing, nil).Validate() != nil {
		t.Fatalf("the default flags make an invalid configuration: %v", serve.serverConfig(hashing, nil).Validate())
	}
	for _, tc := range []struct {
		name  string
		args  []string
		field string
		want  string
	}{
		{"gRPC address", []string{"--grpc-addr", "9090"}, "GRPCAddr", `--grpc-addr "9090" is not host:port`},
		{"HTTP address", []string{"--http-addr", "localhost"}, "HTTPAddr", `--http-addr "localhost" is not host:port`},
		{"operations address", []string{"--ops-addr", "ops"}, "OpsAddr", `--ops-addr "ops" is not host:port`},
		{"pprof address", []string{"--pprof-addr", "localhost:"}, "PprofAddr", `--pprof-addr "localhost:" is not host:port`},
		{"issuer not a URL", []string{"--issuer", "auth.example.com"}, "Tokens.Issuer", `--issuer "auth.example.com" must be an absolute http(s) URL`},
		{"issuer with a fragment", []string{"--issuer", "https://auth.example.com#"}, "Tokens.Issuer", "without query or fragment"},
		{"blank audience", []string{"--audience", " "}, "Tokens.Audience", "--audience must not be empty"},
		{"refresh tokens shorter than access tokens", []string{"--refresh-token-ttl", "10m", "--refresh-idle-timeout", "5m"}, "Tokens.RefreshTokenTTL", "--refresh-token-ttl must be longer than --access-token-ttl"},
		{"idle timeout past the refresh lifetime", []string{"--refresh-token-ttl", "1h", "--refresh-idle-timeout", "2h"}, "Tokens.RefreshIdleTimeout", "--refresh-idle-timeout must be positive and at most --refresh-token-ttl"},
		{"session idle timeout past the session lifetime", []string{"--session-lifetime", "1h", "--session-idle-timeout", "2h"}, "Sessions.IdleTimeout", "--session-idle-timeout must be positive and at most --session-lifetime"},
		{"negative session lifetime", []string{"--session-lifetime", "-1s"}, "Sessions.Lifetime", "--session-lifetime must not be negative"},
		{"negative clock skew", []string{"--clock-skew", "-1s"}, "Tokens.ClockSkew", "--clock-skew must not be negative"},
		{"negative refresh grace", []string{"--refresh-grace-period", "-1s"}, "Tokens.RefreshGracePeriod", "--refresh-grace-period must not be negative"},
		{"HMAC signing algorithm", []string{"--signing-algorithm", "HS256"}, "SigningAlgorithm", `--signing-algorithm "HS256": use ES256, EdDSA or RS256`},
		{"orchestrator not a service name", []string{"--orchestrators", "ucloud,bad name"}, "Orchestrators", `--orchestrators "bad name" is not a service name`},
		{"allowed origin with a path", []string{"--allowed-origin", "https://spa.example/app"}, "AllowedOrigins", `--allowed-origin "https://spa.example/app" is not an origin`},
		{"negative provider key pool", []string{"--provider-key-pool", "-1"}, "Providers.KeyPoolSize", "--provider-key-pool must not be negative"},
		{"negative service account cache", []string{"--service-account-cache", "-1s"}, "ServiceAccountCacheTTL", "--service-account-cache must not be negative"},
		{"no hashing slot", []string{"--max-concurrent-hashes", "0"}, "MaxConcurrentHashes", "--max-concurrent-hashes must be at least 1"},
		{"no hashing queue timeout", []string{"--hash-queue-timeout", "0s"}, "HashQueueTimeout", "--hash-queue-timeout must be positive"},
		{"hashing queue as long as the request", []string{"--request-timeout", "5s", "--hash-queue-timeout", "5s"}, "HashQueueTimeout", "--hash-queue-timeout must be shorter than --request-timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serve, hashing := parseServeFlags(t, tc.args...)
			var refused []string
			for _, problem := range server.ConfigErrors(serve.serverConfig(hashing, nil).Validate()) {
				refused = append(refused, problem.Field)
			}
			if len(refused) != 1 || refused[0] != tc.field {
				t.Fatalf("server.Config.Validate refused %v, want %s alone", refused, tc.field)
			}
			_, err := run(t, "", append([]string{"serve", "--data-dir", t.TempDir(), "--insecure-dev"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "server.Config") {
				t.Fatalf("serve %v: got %v, want %q naming the flag", tc.args, err, tc.want)
			}
		})
	}
}

// Where chitd's own limit is stricter than Validate's, the operator reads
// chitd's message alone.
func TestServeStricterLimitSaysItAlone(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		flag string
		want string
	}{
		{"no access token lifetime", []string{"--access-token-ttl", "0s"}, "--access-token-ttl", "--access-token-ttl must be between 10s and 24h"},
		{"no idle timeout", []string{"--refresh-idle-timeout", "0s"}, "--refresh-idle-timeout", "--refresh-idle-timeout must be between 1m and --refresh-token-ttl"},
		{"session idle timeout under a minute", []string{"--session-idle-timeout", "10s"}, "--session-idle-timeout", "--session-idle-timeout must be between 1m and --session-lifetime"},
		{"session lifetime past 90 days", []string{"--session-lifetime", "2400h"}, "--session-lifetime", "--session-lifetime must be 0s (no sign-in sessions) or between 1m and 2160h"},
		{"device code TTL under a minute", []string{"--device-code-ttl", "30s"}, "--device-code-ttl", "--device-code-ttl must be between 1m and 30m"},
		{"device code TTL past 30 minutes", []string{"--device-code-ttl", "1h"}, "--device-code-ttl", "--device-code-ttl must be between 1m and 30m"},
		{"negative shutdown timeout", []string{"--shutdown-timeout", "-1s"}, "--shutdown-timeout", "--shutdown-timeout must be positive"},
		{"negative request timeout", []string{"--request-timeout", "-1s", "--hash-queue-timeout", "-2s"}, "--request-timeout", "--request-timeout must be at least 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serve, hashing := parseServeFlags(t, append([]string{"--insecure-dev"}, tc.args...)...)
			err := serve.validate(hashing)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if n := strings.Count(err.Error(), "\n  "+tc.flag+" "); n != 1 {
				t.Fatalf("%d lines on %s, want 1:\n%v", n, tc.flag, err)
			}
		})
	}
}

// Every field chitd maps names one of serve's flags.
func TestConfigFlagsNameServeFlags(t *testing.T) {
	flags := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	var serve serveFlags
	var hashing hashFlags
	serve.register(flags)
	hashing.register(flags)
	for field, flag := range configFlags {
		if flags.Lookup(flag) == nil {
			t.Errorf("server.Config.%s maps to --%s, which serve does not have", field, flag)
		}
	}
}
