// Package servertest starts a real Chit server on ephemeral ports for tests:
// a fresh SQLite store, fast password hashing, a settable clock, one user
// (alice / wonderland) and one service account (billing).
package servertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/passwords"
	"github.com/chit-auth/chit/internal/providers"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/sessions"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/postgres"
	"github.com/chit-auth/chit/internal/storage/postgres/postgrestest"
	"github.com/chit-auth/chit/internal/storage/sqlite"
	"github.com/chit-auth/chit/internal/storage/sqlite/sqlitetest"
	"github.com/chit-auth/chit/internal/tokens"
)

// Fixed facts of the test server.
const (
	Issuer       = "https://chit.test"
	Audience     = "chit"
	UserName     = "alice"
	UserPassword = "wonderland"
	ServiceName  = "billing"
	// KeyRotationPeriod is how long a signing key of the test server signs.
	KeyRotationPeriod = 24 * time.Hour
	// GracePeriod is the refresh grace period of the test server.
	GracePeriod = 10 * time.Second
	// OrchestratorName is a second service account, listed as orchestrator.
	OrchestratorName = "ucloud"
)

// What the test principals may obtain: alice the scopes read and write
// (read by default), billing inventory:read and inventory:write
// (inventory:read by default) and tokens for the audience inventory.
var (
	UserGrants    = storage.Grants{AllowedScopes: []string{"read", "write"}, DefaultScopes: []string{"read"}}
	ServiceGrants = storage.Grants{
		AllowedScopes: []string{"inventory:read", "inventory:write"}, DefaultScopes: []string{"inventory:read"},
		AllowedAudiences: []string{ServiceAudience},
	}
)

// ServiceAudience is an audience billing may ask tokens for.
const ServiceAudience = "inventory"

// ClientTLS is how Start's own connection dials a TLS server; tests that
// enable TLS set it (trusting their CA, with a client certificate for mTLS).
var ClientTLS *tls.Config

// KeyEncryptionKey encrypts the test server's private keys at rest.
var KeyEncryptionKey = bytes.Repeat([]byte{0x42}, 32)

// Clock is a settable time source.
type Clock struct{ nanos atomic.Int64 }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.nanos.Load()) }

// Advance moves the clock by d (which may be negative).
func (c *Clock) Advance(d time.Duration) { c.nanos.Add(int64(d)) }

// Env is a running server and a gRPC connection to it.
type Env struct {
	Server *server.Server
	Store  storage.Store
	Clock  *Clock
	Conn   *grpc.ClientConn
	// Logs is everything the server logged, at debug level.
	Logs               *LockedBuffer
	ServiceSecret      string
	OrchestratorSecret string
	// hasher hashes with the server's (fast, test) parameters.
	hasher *passwords.Hasher
	// idTokenAlgorithms are the server's (keys.FamilyNames), which its
	// clients may be registered for.
	idTokenAlgorithms []string
	// dsn is the PostgreSQL store's, for StartReplica; empty on SQLite.
	dsn string
}

// HTTPBase is the base URL of the REST port.
func (e *Env) HTTPBase() string { return "http://" + e.Server.HTTPAddr() }

// Start runs a server on a fresh SQLite store until the test ends and
// returns once it is serving. Options adjust its configuration first.
func Start(t testing.TB, options ...func(*server.Config)) *Env {
	t.Helper()
	return StartOn(t, SQLite, options...)
}

// The stores a test server can run on.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Backends are the stores every grant rule is tested on; a test on
// PostgreSQL skips when CHIT_TEST_POSTGRES_DSN is unset.
var Backends = []string{SQLite, Postgres}

// StartOn is Start on a fresh store of backend (SQLite or Postgres).
func StartOn(t testing.TB, backend string, options ...func(*server.Config)) *Env {
	t.Helper()
	var dsn string
	if backend == Postgres {
		dsn = postgrestest.FreshDSN(t) // skips without a PostgreSQL server
	}
	ctx, cancel := context.WithCancel(context.Background())
	var store storage.Store
	var err error
	switch backend {
	case Postgres:
		store, err = postgres.Open(ctx, dsn)
	default:
		store, err = sqlite.Open(ctx, sqlitetest.Dir(t))
	}
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	e := start(t, ctx, cancel, store, nil, options)
	e.dsn = dsn
	return e
}

// StartReplica starts a second server on e's PostgreSQL store, as another
// replica of the same deployment: its own caches, the same rows and clock.
func (e *Env) StartReplica(t testing.TB, options ...func(*server.Config)) *Env {
	t.Helper()
	if e.dsn == "" {
		t.Fatal("StartReplica needs a server on PostgreSQL (StartOn(t, Postgres))")
	}
	ctx, cancel := context.WithCancel(context.Background())
	store, err := postgres.Open(ctx, e.dsn)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	replica := start(t, ctx, cancel, store, e, options)
	replica.dsn = e.dsn
	return replica
}

// StartOnStore is Start on store, which the test prepared (and the server
// closes when the test ends).
func StartOnStore(t testing.TB, store storage.Store, options ...func(*server.Config)) *Env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	return start(t, ctx, cancel, store, nil, options)
}

// start runs a server on store; replicaOf, when set, is a server already
// running on the same store, whose clock and principals the new one shares.
func start(t testing.TB, ctx context.Context, cancel context.CancelFunc, store storage.Store, replicaOf *Env, options []func(*server.Config)) *Env {
	t.Helper()
	clock := &Clock{}
	clock.nanos.Store(time.Now().UnixNano())
	if replicaOf != nil {
		clock = replicaOf.Clock
	}
	logs := &LockedBuffer{}
	sealer, err := keys.NewSealer(KeyEncryptionKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{
		Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		GRPCAddr: "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0",
		Tokens: tokens.Config{
			Issuer: Issuer, Audience: Audience, AccessTokenTTL: 15 * time.Minute, RefreshTokenTTL: 24 * time.Hour,
			ClockSkew: 30 * time.Second, RefreshGracePeriod: GracePeriod, RefreshIdleTimeout: 12 * time.Hour,
			RevocationCacheTTL: 3 * time.Second,
		},
		SigningAlgorithm:    jwa.ES256,
		Providers:           providers.Config{Issuer: Issuer, Audience: Audience, AccessTokenTTL: 15 * time.Minute, ClaimTTL: 24 * time.Hour},
		Orchestrators:       []string{OrchestratorName},
		SignIn:              authorize.Config{RequirePKCE: true},
		Sessions:            sessions.Config{IdleTimeout: sessions.DefaultIdleTimeout, Lifetime: sessions.DefaultLifetime},
		KeySealer:           sealer,
		KeyRotationPeriod:   KeyRotationPeriod,
		PasswordParams:      passwords.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32},
		MaxConcurrentHashes: 4,
		HashQueueTimeout:    5 * time.Second,
		Now:                 clock.Now,
	}
	for _, option := range options {
		option(&cfg)
	}
	hasher, err := server.NewHasher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var secret, orchestratorSecret string
	if replicaOf != nil {
		secret, orchestratorSecret = replicaOf.ServiceSecret, replicaOf.OrchestratorSecret
	} else {
		directory := accounts.NewDirectory(accounts.Config{ServerAudience: Audience}, accounts.Dependencies{Store: store, Hasher: hasher, Now: clock.Now, Random: rand.Reader})
		if err := directory.CreateUser(ctx, UserName, UserPassword, accounts.RoleUser, UserGrants); err != nil {
			t.Fatal(err)
		}
		if secret, err = directory.CreateServiceAccount(ctx, ServiceName, ServiceGrants); err != nil {
			t.Fatal(err)
		}
		if orchestratorSecret, err = directory.CreateServiceAccount(ctx, OrchestratorName, storage.Grants{}); err != nil {
			t.Fatal(err)
		}
	}
	if replicaOf == nil {
		if err := seedRSAKeys(ctx, store, cfg.SigningAlgorithm, cfg.KeySealer, clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := server.New(ctx, cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(ClientTLS)
	}
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server stopped with %v", err)
		}
		store.Close()
	})
	// Readiness is the standard health check, never a sleep.
	health, err := grpc_health_v1.NewHealthClient(conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil || health.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
		t.Fatalf("server not ready: %v, %v", health, err)
	}
	return &Env{Server: srv, Store: store, Logs: logs, Clock: clock, Conn: conn, ServiceSecret: secret, OrchestratorSecret: orchestratorSecret,
		hasher: hasher, idTokenAlgorithms: keys.FamilyNames(cfg.SigningAlgorithm)}
}

// Directory is the account directory on the test server's store, for tests
// that add or change principals as an operator would.
func (e *Env) Directory() *accounts.Directory {
	return accounts.NewDirectory(accounts.Config{ServerAudience: Audience, IDTokenSigningAlgorithms: e.idTokenAlgorithms},
		accounts.Dependencies{Store: e.Store, Hasher: e.hasher, Now: e.Clock.Now, Random: rand.Reader})
}

// CreateClient registers an OAuth client and returns its secret ("" for a
// public client).
func (e *Env) CreateClient(t testing.TB, id string, redirectURIs []string, confidential bool, grants storage.Grants) string {
	t.Helper()
	return e.RegisterClient(t, accounts.ClientRegistration{ID: id, RedirectURIs: redirectURIs, Confidential: confidential, Grants: grants})
}

// RegisterClient registers an OAuth client as an operator would and returns
// its secret ("" for a public client).
func (e *Env) RegisterClient(t testing.TB, registration accounts.ClientRegistration) string {
	t.Helper()
	secret, err := e.Directory().RegisterClient(context.Background(), registration)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// LockedBuffer is a bytes.Buffer safe for a logger and a test at once.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
