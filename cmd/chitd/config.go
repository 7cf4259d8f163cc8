package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/clientaddr"
	"github.com/chit-auth/chit/internal/device"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/passwords"
	"github.com/chit-auth/chit/internal/possession"
	"github.com/chit-auth/chit/internal/providers"
	"github.com/chit-auth/chit/internal/revocationfeed"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/sessions"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/postgres"
	"github.com/chit-auth/chit/internal/storage/sqlite"
	"github.com/chit-auth/chit/internal/tokens"
	"github.com/chit-auth/chit/pkg/dpop"
)

// storeFlags are shared by every command that opens the store.
type storeFlags struct {
	db                   string
	dataDir              string
	keyEncryptionKeyFile string
	// warn tells the operator of a risk found when opening the store; the
	// server logs it, the other commands print it. Nil prints to stderr.
	warn func(message string)
}

func (f *storeFlags) register(flags *pflag.FlagSet) {
	flags.StringVar(&f.db, "db", "", "PostgreSQL URL (postgres://user@host/db) for several replicas; empty uses the embedded SQLite in --data-dir; "+
		"memory: keeps everything in this process's memory and loses it on exit (throwaway development only)")
	flags.StringVar(&f.dataDir, "data-dir", "./data", "directory of the embedded SQLite database (created if missing)")
	flags.StringVar(&f.keyEncryptionKeyFile, "key-encryption-key-file", "",
		"file holding the base64 32-byte key that encrypts private keys at rest; or set CHIT_KEY_ENCRYPTION_KEY itself")
}

// MemoryStore is the --db value of a store in memory only.
const MemoryStore = "memory:"

// open opens (and migrates) the configured store.
func (f *storeFlags) open(ctx context.Context) (storage.Store, error) {
	switch {
	case f.db == "":
		store, err := sqlite.Open(ctx, f.dataDir)
		if err == nil {
			if info, statErr := os.Stat(f.dataDir); statErr == nil && info.Mode().Perm()&0o077 != 0 {
				f.warning(fmt.Sprintf("the data directory %s is open to other users (mode %v): it holds password hashes and, "+
					"without a key encryption key, private keys; chmod 700 it", f.dataDir, info.Mode().Perm()))
			}
		}
		return store, err
	case strings.HasPrefix(f.db, "postgres://"), strings.HasPrefix(f.db, "postgresql://"):
		return postgres.Open(ctx, f.db)
	case f.db == MemoryStore:
		f.warning("--db memory: everything (users, keys, logins) lives in this process's memory and is lost when it exits; " +
			"for throwaway development only")
		return sqlite.OpenMemory(ctx)
	}
	return nil, errors.New("--db must be a postgres:// URL, memory: (throwaway), or empty for the embedded SQLite")
}

func (f *storeFlags) warning(message string) {
	if f.warn != nil {
		f.warn(message)
		return
	}
	fmt.Fprintln(os.Stderr, "warning: "+message)
}

// keyEncryptionKeyEnv holds the key encryption key itself. It has no flag:
// a flag's value would show in the process list.
const keyEncryptionKeyEnv = "CHIT_KEY_ENCRYPTION_KEY"

// sealer builds the private-key sealer from the file or the environment.
func (f *storeFlags) sealer(lookup func(string) (string, bool)) (*keys.Sealer, error) {
	text, fromEnv := lookup(keyEncryptionKeyEnv)
	switch {
	case f.keyEncryptionKeyFile != "" && fromEnv && text != "":
		return nil, fmt.Errorf("set either %s or --key-encryption-key-file, not both", keyEncryptionKeyEnv)
	case f.keyEncryptionKeyFile != "":
		raw, err := os.ReadFile(f.keyEncryptionKeyFile)
		if err != nil {
			return nil, fmt.Errorf("read the key encryption key: %w", err)
		}
		text = string(raw)
	case !fromEnv || text == "":
		return keys.NewSealer(nil)
	}
	key, err := keys.ParseEncryptionKey(text)
	if err != nil {
		return nil, err
	}
	return keys.NewSealer(key)
}

// hashFlags set the argon2id cost; the operator commands hash passwords too.
type hashFlags struct {
	memoryKiB     uint32
	iterations    uint32
	parallelism   uint8
	maxConcurrent int
	queueTimeout  time.Duration
}

func (f *hashFlags) register(flags *pflag.FlagSet) {
	d := passwords.DefaultParams
	flags.Uint32Var(&f.memoryKiB, "argon2-memory", d.MemoryKiB, "argon2id memory per password hash, in KiB")
	flags.Uint32Var(&f.iterations, "argon2-iterations", d.Iterations, "argon2id passes per password hash")
	flags.Uint8Var(&f.parallelism, "argon2-parallelism", d.Parallelism, "argon2id lanes per password hash")
	flags.IntVar(&f.maxConcurrent, "max-concurrent-hashes", runtime.NumCPU(), "password hashes running at once; more sign-ins wait")
	flags.DurationVar(&f.queueTimeout, "hash-queue-timeout", 5*time.Second, "how long a sign-in waits for a hashing slot before RESOURCE_EXHAUSTED (shorter than --request-timeout)")
}

func (f *hashFlags) params() passwords.Params {
	p := passwords.DefaultParams
	p.MemoryKiB, p.Iterations, p.Parallelism = f.memoryKiB, f.iterations, f.parallelism
	return p
}

// serveFlags are the flags of `chitd serve`.
type serveFlags struct {
	grpcAddr         string
	httpAddr         string
	issuer           string
	audience         string
	accessTokenTTL   time.Duration
	refreshTokenTTL  time.Duration
	clockSkew        time.Duration
	refreshGrace     time.Duration
	refreshIdle      time.Duration
	sessionIdle      time.Duration
	sessionLifetime  time.Duration
	deviceCodeTTL    time.Duration
	signingAlgorithm string
	shutdownTimeout  time.Duration
	keyRotation      time.Duration
	keyCheck         time.Duration
	// The revocation feed's poll and heartbeat intervals.
	revocationPoll, revocationHeartbeat time.Duration
	revocationMaxStreams                int
	tlsCert                             string
	tlsKey                              string
	tlsClientCA                         string
	insecureDev                         bool
	requestTimeout                      time.Duration
	grpcConnections                     server.GRPCConnections
	maxHeaderBytes                      int
	pprofAddr                           string
	opsAddr                             string
	otlpEndpoint                        string
	otlpInsecure                        bool
	logLevel                            string
	logFormat                           string

	requirePKCE            bool
	orchestrators          []string
	allowedOrigins         []string
	trustedProxies         []string
	clientCertProxies      []string
	dpopNonce              bool
	dpopProofLifetime      time.Duration
	providerKeyPool        int
	providerClaimTTL       time.Duration
	providerAccessTTL      time.Duration
	serviceAccountCacheTTL time.Duration
}

func (f *serveFlags) register(flags *pflag.FlagSet) {
	flags.StringVar(&f.grpcAddr, "grpc-addr", "localhost:9090", "address of the gRPC port")
	flags.StringVar(&f.httpAddr, "http-addr", "localhost:8080", "address of the HTTP port (REST gateway, JWKS, OpenAPI)")
	flags.StringVar(&f.issuer, "issuer", "http://localhost:8080", "the iss claim of every token: the URL clients know this server by")
	flags.StringVar(&f.audience, "audience", tokens.DefaultAudience, "the aud claim of access tokens")
	flags.DurationVar(&f.accessTokenTTL, "access-token-ttl", tokens.DefaultAccessTokenTTL, "lifetime of access tokens")
	flags.DurationVar(&f.refreshTokenTTL, "refresh-token-ttl", tokens.DefaultRefreshTokenTTL, "absolute lifetime of a login's refresh tokens; rotation does not extend it")
	flags.DurationVar(&f.refreshGrace, "refresh-grace-period", tokens.DefaultRefreshGrace, "how long a just-rotated refresh token still answers the same successor (lost answers, parallel tabs); 0s disables")
	flags.DurationVar(&f.refreshIdle, "refresh-idle-timeout", tokens.DefaultRefreshIdle, "a login whose refresh token goes unused this long ends")
	flags.DurationVar(&f.sessionIdle, "session-idle-timeout", sessions.DefaultIdleTimeout,
		"a browser's sign-in session (single sign-on across clients) unused this long ends; the next sign-in shows the password form")
	flags.DurationVar(&f.sessionLifetime, "session-lifetime", sessions.DefaultLifetime,
		"a browser's sign-in session ends this long after the password was typed, however much it is used; 0s disables sessions: nothing is stored and every sign-in shows the form")
	flags.DurationVar(&f.deviceCodeTTL, "device-code-ttl", device.DefaultCodeTTL,
		"how long a device authorization (chit login --device, RFC 8628) may be approved on /oauth2/device and polled; between 1m and 30m")
	flags.DurationVar(&f.clockSkew, "clock-skew", tokens.DefaultClockSkew, "tolerance for token times when checking tokens")
	flags.StringVar(&f.signingAlgorithm, "signing-algorithm", "ES256", "algorithm of a newly generated signing key: ES256, EdDSA or RS256")
	flags.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate (chain) for both ports; with --tls-key, serves TLS")
	flags.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	flags.StringVar(&f.tlsClientCA, "tls-client-ca", "", "PEM CA bundle: the gRPC port then requires client certificates it signed (mTLS)")
	flags.BoolVar(&f.insecureDev, "insecure-dev", false, "allow an http:// issuer (local development only; make run sets it)")
	flags.StringVar(&f.otlpEndpoint, "otlp-endpoint", "", "send OpenTelemetry traces over OTLP/gRPC to this host:port; tracing is off when empty")
	flags.BoolVar(&f.otlpInsecure, "otlp-insecure", false, "send OTLP traces without TLS (a local collector)")
	flags.StringVar(&f.pprofAddr, "pprof-addr", "", "serve Go profiles (net/http/pprof) on this address; off when empty; keep it private")
	flags.StringVar(&f.opsAddr, "ops-addr", "", "operations listener (keep it private): /metrics and the Go profiles move there from the public HTTP port; empty keeps /metrics on the HTTP port")
	flags.DurationVar(&f.requestTimeout, "request-timeout", 15*time.Second, "longest time one call may take")
	defaults := server.DefaultGRPCConnections
	flags.DurationVar(&f.grpcConnections.MaxAge, "grpc-max-connection-age", defaults.MaxAge, "a gRPC connection this old is closed once its calls finish, so clients reconnect and spread over the replicas")
	flags.DurationVar(&f.grpcConnections.MaxAgeGrace, "grpc-max-connection-age-grace", defaults.MaxAgeGrace, "how long the calls of a connection past its age may take to finish")
	flags.Uint32Var(&f.grpcConnections.MaxConcurrentStreams, "grpc-max-concurrent-streams", defaults.MaxConcurrentStreams, "calls one gRPC connection may run at once")
	flags.DurationVar(&f.grpcConnections.MinPingInterval, "grpc-min-ping-interval", defaults.MinPingInterval, "shortest keepalive ping interval a gRPC client may use; one pinging more often is disconnected")
	flags.IntVar(&f.maxHeaderBytes, "max-header-bytes", server.DefaultMaxHeaderBytes, "largest headers one call may carry, in bytes, on both ports: "+
		"a gRPC call's header list (its metadata) and a REST or browser request's headers; beyond it gRPC resets the call or closes the connection, HTTP answers 431")
	flags.DurationVar(&f.keyCheck, "key-check-interval", 30*time.Second, "how often the keys are re-read from the store: replicas see a rotation made elsewhere within this time")
	flags.DurationVar(&f.revocationPoll, "revocation-poll-interval", revocationfeed.DefaultPollInterval, "how often each replica reads the revocation feed's head: the longest a revocation waits before streams to verifiers send it (on PostgreSQL a NOTIFY usually wakes them sooner)")
	flags.IntVar(&f.revocationMaxStreams, "revocation-max-streams-per-caller", revocationfeed.DefaultMaxStreamsPerCaller, "how many revocation streams (WatchRevocations, /v1/revocations/events) one caller may hold open on this replica; more are refused with RESOURCE_EXHAUSTED (HTTP 429), so one credential cannot hold streams until the replica runs out of memory")
	flags.DurationVar(&f.revocationHeartbeat, "revocation-heartbeat", revocationfeed.DefaultHeartbeat, "how often an idle revocation stream (WatchRevocations, /v1/revocations/events) sends a heartbeat with the feed's head and the server time")
	flags.DurationVar(&f.keyRotation, "key-rotation-period", 30*24*time.Hour, "how long a signing key signs before the next one takes over; 0 disables automatic rotation")
	flags.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long in-flight calls may finish after SIGINT or SIGTERM")
	flags.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	flags.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	flags.BoolVar(&f.requirePKCE, "require-pkce", true, "refuse browser sign-ins without a PKCE S256 code challenge from confidential clients registered --pkce required; public clients always need one")
	flags.StringSliceVar(&f.orchestrators, "orchestrators", nil, "comma-separated service accounts that may call AuthProviders.refreshAsOrchestrator")
	flags.StringSliceVar(&f.allowedOrigins, "allowed-origin", nil, "browser origins (comma-separated or repeated, https://host[:port]) whose pages may call /oauth2/token, /oauth2/revoke and /userinfo (CORS), besides those registered on clients (client set-origins)")
	flags.StringSliceVar(&f.clientCertProxies, "client-cert-proxies", nil,
		"comma-separated CIDR prefixes or addresses of the TLS-terminating proxies whose Client-Cert header (RFC 9440) names the client certificate of a request; tokens are then bound to it (RFC 8705). The proxy must verify the certificate and drop any Client-Cert a client sends (default none: only certificates of --tls-client-ca on the gRPC port bind)")
	flags.BoolVar(&f.dpopNonce, "dpop-nonce", false,
		"require a server nonce in every DPoP proof (RFC 9449 §8): a proof is then accepted once, by the replica that issued its nonce, at the cost of one more round trip when a client first meets a replica (default off: a proof is single use on each replica within --dpop-proof-lifetime)")
	flags.DurationVar(&f.dpopProofLifetime, "dpop-proof-lifetime", time.Minute,
		"how old a DPoP proof's iat may be; replay records are kept this long, in memory; between 5s and 5m")
	flags.StringSliceVar(&f.trustedProxies, "trusted-proxies", nil, "comma-separated CIDR prefixes or addresses of the reverse proxies in front of chitd, whose X-Forwarded-For then names the client for throttling and logs (default none: the connection's peer is the client)")
	flags.DurationVar(&f.providerClaimTTL, "provider-claim-ttl", providers.DefaultClaimTTL, "how long after register a provider's claim token works")
	flags.DurationVar(&f.serviceAccountCacheTTL, "service-account-cache", accounts.DefaultServiceAccountCacheTTL, "how long a service account or OAuth client read from the store serves token requests that authenticate it; deleting one, rotating its secret or narrowing its grants elsewhere takes effect within this time (at once on the server that made the change); 0s reads the store on every request")
	flags.IntVar(&f.providerKeyPool, "provider-key-pool", providers.DefaultKeyPoolSize, "how many provider RSA key pairs are kept ready for claim and renew, made in the background once providers are first used; a bulk call needing more than the pool plus what fits in its deadline is refused with RESOURCE_EXHAUSTED (0: make every key during the call)")
	flags.DurationVar(&f.providerAccessTTL, "provider-token-ttl", providers.DefaultAccessTokenTTL, "lifetime of provider access tokens (refresh and refreshAsOrchestrator)")
}

// The bounds of --max-header-bytes: below 16 KiB the largest token Chit
// accepts (8 KiB) and the headers around it may not fit; above 1 MiB (Go's
// HTTP default) the bound no longer bounds much.
const (
	minHeaderBytes = 16 << 10
	maxHeaderBytes = 1 << 20
)

// check is one rule of chitd's own: a limit stricter than server.Config.Validate's,
// or a rule on flags the server's Config does not have.
type check struct {
	// narrows is the flag (without its dashes) whose Validate rule this
	// limit narrows, as --access-token-ttl's 10s to 24h narrows "positive":
	// Validate's message on that flag is then left out. Empty for a rule of
	// chitd's own.
	narrows string
	failed  bool
	message string
}

// configFlags names the flag that sets each server.Config field, so that
// the problems Validate finds are reported as the flags the operator typed.
var configFlags = map[string]string{
	"GRPCAddr": "grpc-addr", "HTTPAddr": "http-addr", "OpsAddr": "ops-addr", "PprofAddr": "pprof-addr",
	"Tokens.Issuer": "issuer", "Tokens.Audience": "audience",
	"Tokens.AccessTokenTTL": "access-token-ttl", "Tokens.RefreshTokenTTL": "refresh-token-ttl",
	"Tokens.RefreshIdleTimeout": "refresh-idle-timeout", "Sessions.IdleTimeout": "session-idle-timeout", "Sessions.Lifetime": "session-lifetime", "Tokens.ClockSkew": "clock-skew", "Tokens.RefreshGracePeriod": "refresh-grace-period",
	"SigningAlgorithm": "signing-algorithm", "Orchestrators": "orchestrators", "AllowedOrigins": "allowed-origin",
	"Providers.AccessTokenTTL": "provider-token-ttl", "Providers.ClaimTTL": "provider-claim-ttl", "Providers.KeyPoolSize": "provider-key-pool",
	"ServiceAccountCacheTTL": "service-account-cache", "RequestTimeout": "request-timeout", "ShutdownTimeout": "shutdown-timeout",
	"KeyRotationPeriod": "key-rotation-period", "KeyCheckInterval": "key-check-interval",
	"RevocationPollInterval": "revocation-poll-interval", "RevocationHeartbeat": "revocation-heartbeat", "RevocationMaxStreamsPerCaller": "revocation-max-streams-per-caller",
	"GRPCConnections.MaxAge": "grpc-max-connection-age", "GRPCConnections.MaxAgeGrace": "grpc-max-connection-age-grace",
	"GRPCConnections.MinPingInterval": "grpc-min-ping-interval", "MaxHeaderBytes": "max-header-bytes",
	"MaxConcurrentHashes": "max-concurrent-hashes", "HashQueueTimeout": "hash-queue-timeout",
}

// flagName is "--flag" for the flag that sets a server.Config field; a
// field no flag sets keeps its name in Config.
func flagName(field string) string {
	if flag, ok := configFlags[field]; ok {
		return "--" + flag
	}
	return "server.Config." + field
}

// flagProblem says a problem Validate found in terms of flags.
func flagProblem(e *server.ConfigError) string {
	message := flagName(e.Field) + " " + e.Problem
	if e.Than != "" {
		message += " " + flagName(e.Than)
	}
	return message
}

// validate returns every problem with the flags at once, so an operator
// fixes them in one go: those server.Config.Validate finds in the
// configuration the flags make (the one set of rules the server has), and
// chitd's own (checks). Where one of chitd's stricter limits refuses a
// flag, Validate's words on the same flag are left out: they would say less.
func (f *serveFlags) validate(h *hashFlags) error {
	var problems []string
	refused := map[string]bool{}
	for _, c := range f.checks(h) {
		if c.failed {
			problems = append(problems, c.message)
			if c.narrows != "" {
				refused[c.narrows] = true
			}
		}
	}
	var libraryProblems []string
	for _, e := range server.ConfigErrors(f.serverConfig(h, nil).Validate()) {
		if !refused[configFlags[e.Field]] {
			libraryProblems = append(libraryProblems, flagProblem(e))
		}
	}
	problems = append(libraryProblems, problems...)
	if len(problems) > 0 {
		return fmt.Errorf("invalid configuration:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// checks are chitd's own rules for serve: the flags the server's Config does
// not have (TLS files, logging, tracing, proxies), how flags go together, and
// limits stricter than Validate's (an https issuer, at least a second for a
// call, lifetimes within sane bounds). Everything Validate checks, it alone
// checks: host:port addresses, the issuer's form, the audience, the order of
// the lifetimes, the signing algorithm, orchestrator names, negative
// durations, the hashing queue against the request timeout.
func (f *serveFlags) checks(h *hashFlags) []check {
	issuer, issuerErr := url.Parse(f.issuer)
	httpIssuer := issuerErr == nil && issuer.Scheme == "http"
	checks := []check{
		{"", f.grpcAddr == f.httpAddr && !strings.HasSuffix(f.grpcAddr, ":0"), "--grpc-addr and --http-addr must differ"},
		{"", httpIssuer && !f.insecureDev, fmt.Sprintf("--issuer %q must be https; pass --insecure-dev for local development over http", f.issuer)},
		{"", (f.tlsCert == "") != (f.tlsKey == ""), "--tls-cert and --tls-key go together"},
		{"", f.tlsClientCA != "" && f.tlsCert == "", "--tls-client-ca needs --tls-cert and --tls-key"},
		{"request-timeout", f.requestTimeout < time.Second, "--request-timeout must be at least 1s"},
		{"grpc-max-connection-age", f.grpcConnections.MaxAge < time.Minute, "--grpc-max-connection-age must be at least 1m"},
		{"grpc-max-connection-age-grace", f.grpcConnections.MaxAgeGrace < f.requestTimeout, "--grpc-max-connection-age-grace must be at least --request-timeout, so calls in flight can finish"},
		// The server takes 0 for its default; a flag set to 0 is a mistake.
		{"", f.grpcConnections.MaxConcurrentStreams < 1, "--grpc-max-concurrent-streams must be at least 1"},
		{"grpc-min-ping-interval", f.grpcConnections.MinPingInterval < time.Second, "--grpc-min-ping-interval must be at least 1s"},
		{"max-header-bytes", f.maxHeaderBytes < minHeaderBytes || f.maxHeaderBytes > maxHeaderBytes,
			fmt.Sprintf("--max-header-bytes must be between %d (16 KiB) and %d (1 MiB)", minHeaderBytes, maxHeaderBytes)},
		{"", f.opsAddr != "" && (f.opsAddr == f.httpAddr || f.opsAddr == f.grpcAddr) && !strings.HasSuffix(f.opsAddr, ":0"), "--ops-addr must differ from --http-addr and --grpc-addr"},
		{"", f.otlpEndpoint != "" && !validAddr(f.otlpEndpoint), fmt.Sprintf("--otlp-endpoint %q is not host:port", f.otlpEndpoint)},
		{"access-token-ttl", f.accessTokenTTL < 10*time.Second || f.accessTokenTTL > 24*time.Hour, "--access-token-ttl must be between 10s and 24h"},
		// Validate refuses the negative values of these four.
		{"clock-skew", f.clockSkew > 5*time.Minute, "--clock-skew must be between 0 and 5m"},
		// Short enough to bound guessing a user code, long enough to find a
		// browser and sign in.
		{"device-code-ttl", f.deviceCodeTTL < time.Minute || f.deviceCodeTTL > 30*time.Minute, "--device-code-ttl must be between 1m and 30m"},
		{"refresh-grace-period", f.refreshGrace > time.Minute, "--refresh-grace-period must be between 0s and 1m"},
		{"service-account-cache", f.serviceAccountCacheTTL > time.Minute, "--service-account-cache must be between 0s and 1m"},
		{"provider-key-pool", f.providerKeyPool > 10000, "--provider-key-pool must be between 0 and 10000"},
		// Validate refuses one past --refresh-token-ttl.
		{"refresh-idle-timeout", f.refreshIdle < time.Minute, "--refresh-idle-timeout must be between 1m and --refresh-token-ttl"},
		// Validate refuses an idle timeout past the lifetime, and a negative lifetime.
		{"session-idle-timeout", f.sessionLifetime > 0 && f.sessionIdle < time.Minute, "--session-idle-timeout must be between 1m and --session-lifetime"},
		{"session-lifetime", f.sessionLifetime > 0 && (f.sessionLifetime < time.Minute || f.sessionLifetime > 90*24*time.Hour),
			"--session-lifetime must be 0s (no sign-in sessions) or between 1m and 2160h (90 days)"},
		// The server takes 0 for its default; a flag set to 0 is a mistake.
		{"shutdown-timeout", f.shutdownTimeout <= 0, "--shutdown-timeout must be positive"},
		{"key-rotation-period", f.keyRotation != 0 && f.keyRotation < time.Hour, "--key-rotation-period must be 0 or at least 1h"},
		{"revocation-poll-interval", f.revocationPoll < 10*time.Millisecond || f.revocationPoll > time.Minute, "--revocation-poll-interval must be between 10ms and 1m"},
		{"revocation-max-streams-per-caller", f.revocationMaxStreams < 1, "--revocation-max-streams-per-caller must be at least 1"},
		{"revocation-heartbeat", f.revocationHeartbeat < time.Second || f.revocationHeartbeat > 5*time.Minute, "--revocation-heartbeat must be between 1s and 5m"},
		{"key-check-interval", f.keyCheck < time.Second || f.keyCheck > 4*time.Minute, "--key-check-interval must be between 1s and 4m (under the 5-minute JWKS cache time)"},
		{"", parseLevel(f.logLevel) == nil, fmt.Sprintf("--log-level %q: use debug, info, warn or error", f.logLevel)},
		{"", f.logFormat != "text" && f.logFormat != "json", fmt.Sprintf("--log-format %q: use text or json", f.logFormat)},
		{"provider-claim-ttl", f.providerClaimTTL < time.Minute, "--provider-claim-ttl must be at least 1m"},
		{"dpop-proof-lifetime", f.dpopProofLifetime < 5*time.Second || f.dpopProofLifetime > 5*time.Minute, "--dpop-proof-lifetime must be between 5s and 5m"},
		{"provider-token-ttl", f.providerAccessTTL < 10*time.Second || f.providerAccessTTL > 24*time.Hour, "--provider-token-ttl must be between 10s and 24h"},
	}
	if _, err := possession.NewCertificates(f.clientCertProxies); err != nil {
		checks = append(checks, check{"", true, "--client-cert-proxies: " + err.Error()})
	}
	if _, err := clientaddr.NewResolver(f.trustedProxies); err != nil {
		checks = append(checks, check{"", true, "--trusted-proxies: " + err.Error()})
	}
	return append(checks, h.costChecks()...)
}

// costChecks are chitd's floor on the argon2id cost, above what
// passwords.NewHasher accepts.
func (h *hashFlags) costChecks() []check {
	return []check{
		{"", h.memoryKiB < 8*1024, "--argon2-memory must be at least 8192 KiB"},
		{"", h.iterations < 1, "--argon2-iterations must be at least 1"},
		{"", h.parallelism < 1, "--argon2-parallelism must be at least 1"},
	}
}

// checks are the hashing rules of the operator commands, which hash
// passwords without a server (and so without server.Config.Validate, which
// checks the last two for serve).
func (h *hashFlags) checks() []check {
	return append(h.costChecks(),
		check{"", h.maxConcurrent < 1, "--max-concurrent-hashes must be at least 1"},
		check{"", h.queueTimeout <= 0, "--hash-queue-timeout must be positive"},
	)
}

func validAddr(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port != ""
}

func parseLevel(name string) *slog.Level {
	var level slog.Level
	if err := level.UnmarshalText([]byte(name)); err != nil {
		return nil
	}
	return &level
}

func (f *serveFlags) logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: *parseLevel(f.logLevel)}
	if f.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func (f *serveFlags) serverConfig(h *hashFlags, logger *slog.Logger) server.Config {
	alg, err := keys.ParseAlgorithm(f.signingAlgorithm)
	if err != nil {
		// Validate refuses it, naming the operator's value.
		alg = jwa.SignatureAlgorithm(f.signingAlgorithm)
	}
	return server.Config{
		GRPCAddr: f.grpcAddr,
		HTTPAddr: f.httpAddr,
		Tokens: tokens.Config{
			Issuer:             f.issuer,
			Audience:           f.audience,
			AccessTokenTTL:     f.accessTokenTTL,
			RefreshTokenTTL:    f.refreshTokenTTL,
			ClockSkew:          f.clockSkew,
			RefreshGracePeriod: f.refreshGrace,
			RefreshIdleTimeout: f.refreshIdle,
			RevocationCacheTTL: tokens.DefaultRevocationCache,
		},
		SigningAlgorithm: alg,
		Providers: providers.Config{
			Issuer:         f.issuer,
			Audience:       f.audience,
			AccessTokenTTL: f.providerAccessTTL,
			ClaimTTL:       f.providerClaimTTL,
			KeyPoolSize:    f.providerKeyPool,
		},
		Orchestrators:          f.orchestrators,
		AllowedOrigins:         f.allowedOrigins,
		ClientAddresses:        f.proxies(),
		SignIn:                 authorize.Config{RequirePKCE: f.requirePKCE, CodeTTL: authorize.DefaultCodeTTL},
		Sessions:               sessions.Config{IdleTimeout: f.sessionIdle, Lifetime: f.sessionLifetime},
		Device:                 device.Config{CodeTTL: f.deviceCodeTTL},
		PasswordParams:         h.params(),
		MaxConcurrentHashes:    h.maxConcurrent,
		HashQueueTimeout:       h.queueTimeout,
		ServiceAccountCacheTTL: f.serviceAccountCacheTTL,
		ShutdownTimeout:        f.shutdownTimeout,
		KeyRotationPeriod:      f.keyRotation,
		KeyCheckInterval:       f.keyCheck,
		RevocationPollInterval: f.revocationPoll,
		RevocationHeartbeat:    f.revocationHeartbeat,
		RequestTimeout:         f.requestTimeout,
		GRPCConnections:        f.grpcConnections,
		MaxHeaderBytes:         f.maxHeaderBytes,
		PprofAddr:              f.pprofAddr,
		OpsAddr:                f.opsAddr,
		Logger:                 logger,

		ClientCertificateProxies: f.clientCertProxies,
		DPoP:                     dpop.Config{MaxAge: f.dpopProofLifetime},

		RevocationMaxStreamsPerCaller: f.revocationMaxStreams,
	}
}

// dpopNonceLifetime is how long a DPoP nonce of --dpop-nonce is accepted:
// clients learn a new one from a refusal (use_dpop_nonce) at most this
// often.
const dpopNonceLifetime = 5 * time.Minute

// proxies resolves client addresses through the trusted proxies (checked
// by validate).
func (f *serveFlags) proxies() *clientaddr.Resolver {
	resolver, _ := clientaddr.NewResolver(f.trustedProxies)
	return resolver
}

// tlsConfig loads the certificates the flags name; nil without TLS.
func (f *serveFlags) tlsConfig() (*tls.Config, error) {
	if f.tlsCert == "" {
		return nil, nil
	}
	certificate, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("load --tls-cert and --tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{certificate}, MinVersion: tls.VersionTLS12}
	if f.tlsClientCA != "" {
		pem, err := os.ReadFile(f.tlsClientCA)
		if err != nil {
			return nil, fmt.Errorf("read --tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-client-ca %s holds no PEM certificate", f.tlsClientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// tracerProvider starts the OTLP exporter when --otlp-endpoint is set; the
// returned function flushes and stops it.
func (f *serveFlags) tracerProvider(ctx context.Context) (*sdktrace.TracerProvider, func(), error) {
	if f.otlpEndpoint == "" {
		return nil, func() {}, nil
	}
	options := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(f.otlpEndpoint)}
	if f.otlpInsecure {
		options = append(options, otlptracegrpc.WithInsecure())
	}
	exporter, err := otlptracegrpc.New(ctx, options...)
	if err != nil {
		return nil, nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "chitd"))),
	)
	return provider, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = provider.Shutdown(ctx)
	}, nil
}
