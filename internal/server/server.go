package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/stats"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/gen/openapi"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/clientaddr"
	"github.com/chit-auth/chit/internal/device"
	"github.com/chit-auth/chit/internal/federation"
	"github.com/chit-auth/chit/internal/gateway"
	"github.com/chit-auth/chit/internal/grants"
	"github.com/chit-auth/chit/internal/grpcapi"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/logout"
	"github.com/chit-auth/chit/internal/logout/backchannel"
	"github.com/chit-auth/chit/internal/oauth2http"
	"github.com/chit-auth/chit/internal/paging"
	"github.com/chit-auth/chit/internal/passwords"
	"github.com/chit-auth/chit/internal/possession"
	"github.com/chit-auth/chit/internal/providers"
	"github.com/chit-auth/chit/internal/revocationfeed"
	"github.com/chit-auth/chit/internal/revocationsse"
	"github.com/chit-auth/chit/internal/sessions"
	"github.com/chit-auth/chit/internal/signinpage"
	"github.com/chit-auth/chit/internal/ssf"
	"github.com/chit-auth/chit/internal/ssf/ssfpush"
	"github.com/chit-auth/chit/internal/ssfhttp"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/telemetry"
	"github.com/chit-auth/chit/internal/tokens"
	"github.com/chit-auth/chit/pkg/dpop"
)

// Config is everything a server needs besides its store. cmd/chitd fills and
// validates it.
type Config struct {
	GRPCAddr string
	HTTPAddr string

	Tokens           tokens.Config
	SigningAlgorithm jwa.SignatureAlgorithm
	Providers        providers.Config
	// Orchestrators are the services that may call refreshAsOrchestrator.
	Orchestrators []string
	// AllowedOrigins are browser origins whose pages may call the token,
	// revoke and userinfo endpoints (CORS), besides those registered on
	// clients; each as accounts.ValidateOrigins requires.
	AllowedOrigins []string
	// ClientAddresses resolves which address a call came from (for
	// throttling and logs) through the trusted reverse proxies; nil trusts
	// none.
	ClientAddresses *clientaddr.Resolver
	// KeySealer encrypts private keys at rest; nil stores them in the clear.
	KeySealer *keys.Sealer
	// KeyRotationPeriod is how long a signing key signs before the next one
	// takes over; zero disables automatic rotation.
	KeyRotationPeriod time.Duration
	// KeyCheckInterval is how often the keys are re-read from the store (to
	// see rotations by other processes) and rotation is considered.
	KeyCheckInterval time.Duration
	// SignIn is the browser sign-in policy; its BaseURL defaults to the issuer.
	SignIn authorize.Config
	// Device is the device authorization grant's policy (RFC 8628); its
	// BaseURL defaults to the sign-in page's.
	Device device.Config
	// Sessions are the sign-in page's browser sessions (single sign-on); a
	// zero Lifetime disables them: nothing is stored and every sign-in
	// shows the form.
	Sessions sessions.Config

	PasswordParams      passwords.Params
	MaxConcurrentHashes int
	HashQueueTimeout    time.Duration

	// TLS, when set, serves both ports over TLS (and the gRPC port verifies
	// client certificates when its ClientCAs are set).
	TLS *tls.Config
	// RequestTimeout bounds every call's handling.
	RequestTimeout time.Duration
	// GRPCConnections limits the gRPC port's connections; zero fields take
	// their defaults (DefaultGRPCConnections).
	GRPCConnections GRPCConnections
	// MaxHeaderBytes bounds the headers of one call on both ports: the gRPC
	// port's header list (SETTINGS_MAX_HEADER_LIST_SIZE), the HTTP port's
	// request headers (http.Server.MaxHeaderBytes) and the metadata the
	// gateway hands the handlers in process. Zero takes
	// DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// PprofAddr, when set, serves net/http/pprof there (keep it private).
	PprofAddr string
	// OpsAddr, when set, is the operations listener: /metrics and the Go
	// profiles are served there, and /metrics leaves the public HTTP port.
	OpsAddr string
	// TracerProvider, when set, traces every call (OpenTelemetry); the
	// trace id then appears in the call's log line.
	TracerProvider trace.TracerProvider

	// RevocationPollInterval is how often each replica reads the
	// revocation feed's head (revocationfeed.DefaultPollInterval when zero).
	RevocationPollInterval time.Duration
	// RevocationHeartbeat is how often an idle revocation stream gets a
	// heartbeat (revocationfeed.DefaultHeartbeat when zero).
	RevocationHeartbeat time.Duration
	// RevocationMaxStreamsPerCaller bounds the revocation streams one
	// caller holds open on this replica, over both transports
	// (revocationfeed.DefaultMaxStreamsPerCaller when zero).
	RevocationMaxStreamsPerCaller int

	// SecurityEvents is how Shared Signals streams are delivered (push
	// timeouts, backoff, leases, long polls); its Issuer is the tokens'.
	// Zero fields take ssf's defaults.
	SecurityEvents ssf.Config

	// ShutdownTimeout bounds the graceful drain on shutdown.
	ShutdownTimeout time.Duration
	// CleanupInterval is how often expired refresh tokens are deleted.
	CleanupInterval time.Duration
	// ServiceAccountCacheTTL is how long a service account read from the store
	// answers client-credentials sign-ins before it is read again; 0 reads
	// it on every sign-in.
	ServiceAccountCacheTTL time.Duration
	// Logout replaces, for tests, how the logout endpoint reaches the
	// browser sign-in sessions; its zero value is the sign-in page's
	// sessions and cookie.
	Logout LogoutSessions
	// FederationHTTPClient fetches the discovery documents and keys of the
	// issuers federation rules trust; nil is a default client. Tests give
	// their fake issuer's TLS client: https is required whatever it is.
	FederationHTTPClient *http.Client
	// DPoP is how DPoP proofs (RFC 9449) are checked: the iat window, and
	// whether the server requires its nonces. Its zero value checks proofs
	// of up to a minute, without nonces.
	DPoP dpop.Config
	// ClientCertificateProxies are the proxies (CIDR prefixes or addresses)
	// whose Client-Cert header (RFC 9440) names the client certificate a
	// request came with, for certificate-bound tokens (RFC 8705). None:
	// only certificates on the connection itself bind.
	ClientCertificateProxies []string

	Logger *slog.Logger
	// Now and Random default to time.Now and crypto/rand.Reader; tests
	// replace them.
	Now    func() time.Time
	Random io.Reader
}

// sessionsForLogout are the sign-in sessions as the logout core sees them.
type sessionsForLogout struct{ sessions *sessions.Service }

func (l sessionsForLogout) Resume(ctx context.Context, cookie string) (logout.Session, error) {
	session, err := l.sessions.Resume(ctx, cookie)
	return logout.Session{ID: session.ID, Subject: session.Subject, ClientIDs: session.ClientIDs}, err
}

func (l sessionsForLogout) End(ctx context.Context, id string) (logout.Session, error) {
	session, err := l.sessions.End(ctx, id)
	return logout.Session{ID: session.ID, Subject: session.Subject, ClientIDs: session.ClientIDs}, err
}

// LogoutSessions are the sign-in sessions as the logout endpoint uses
// them: the sessions, and the browser's cookie that names one.
type LogoutSessions struct {
	// Sessions are ended by logouts; nil is the sign-in sessions.
	Sessions logout.Sessions
	// Cookie reads the session cookie of a request ("" for none); Clear
	// clears it in the answer. Nil reads none and clears nothing.
	Cookie func(*http.Request) string
	Clear  func(http.ResponseWriter)
}

// GRPCConnections are the gRPC port's connection limits.
type GRPCConnections struct {
	// MaxAge closes a connection (with GOAWAY, after its calls finish
	// within MaxAgeGrace) once it is this old, so that clients behind a
	// load balancer reconnect and spread over the replicas there are now.
	MaxAge      time.Duration
	MaxAgeGrace time.Duration
	// MaxConcurrentStreams bounds the calls one connection runs at once.
	MaxConcurrentStreams uint32
	// MinPingInterval is the shortest keepalive interval a client may
	// use; one pinging more often is disconnected.
	MinPingInterval time.Duration
}

// DefaultGRPCConnections are chitd's defaults: connections live 30 minutes
// (a deployment's new replicas get traffic within that), in-flight calls get
// 30 seconds (twice the default request timeout) to finish, 1,000 calls at
// once per connection, pings at most every 10 seconds.
var DefaultGRPCConnections = GRPCConnections{MaxAge: 30 * time.Minute, MaxAgeGrace: 30 * time.Second, MaxConcurrentStreams: 1000, MinPingInterval: 10 * time.Second}

func (c GRPCConnections) withDefaults() GRPCConnections {
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultGRPCConnections.MaxAge
	}
	if c.MaxAgeGrace <= 0 {
		c.MaxAgeGrace = DefaultGRPCConnections.MaxAgeGrace
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = DefaultGRPCConnections.MaxConcurrentStreams
	}
	if c.MinPingInterval <= 0 {
		c.MinPingInterval = DefaultGRPCConnections.MinPingInterval
	}
	return c
}

func (c GRPCConnections) serverOptions() []grpc.ServerOption {
	c = c.withDefaults()
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(c.MaxConcurrentStreams),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: c.MaxAge, MaxConnectionAgeGrace: c.MaxAgeGrace}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: c.MinPingInterval, PermitWithoutStream: true}),
	}
}

// DefaultMaxHeaderBytes is chitd's bound on one call's headers (see
// gateway.DefaultMaxHeaderBytes for why 64 KiB).
const DefaultMaxHeaderBytes = gateway.DefaultMaxHeaderBytes

// Server is a running Chit with its two listeners.
type Server struct {
	cfg    Config
	store  storage.Store
	tokens *tokens.Service
	keys   *keys.Set
	// refreshKeys are the refresh token MAC keys.
	refreshKeys *keys.RefreshTokenKeys
	providers   *providers.Service
	revocations *revocationfeed.Feed
	// securityEvents pushes the Shared Signals streams.
	securityEvents *ssf.Service
	grpcServer     *grpc.Server
	health         *health.Server
	// wasReady remembers the last readiness, to log changes only.
	wasReady atomic.Bool
	// httpServer serves the REST gateway, which calls the gRPC handlers in
	// process.
	httpServer   *http.Server
	grpcListener net.Listener
	httpListener net.Listener
	// gatekeeper applies the access table, for the HTTP endpoints that
	// are gRPC methods in another form (the revocation feed's events).
	gatekeeper *grpcapi.Gatekeeper
	// opsListener and opsHandler serve OpsAddr; nil without it.
	opsListener net.Listener
	opsHandler  http.Handler
}

// NewHasher builds the password hasher the configuration asks for; the
// operator commands use the same one as the server.
func NewHasher(cfg Config) (*passwords.Hasher, error) {
	return passwords.NewHasher(cfg.PasswordParams, cfg.MaxConcurrentHashes, cfg.HashQueueTimeout, cfg.random())
}

func (cfg Config) now() func() time.Time {
	if cfg.Now != nil {
		return cfg.Now
	}
	return time.Now
}

func (cfg Config) maxHeaderBytes() int {
	if cfg.MaxHeaderBytes > 0 {
		return cfg.MaxHeaderBytes
	}
	return DefaultMaxHeaderBytes
}

func (cfg Config) random() io.Reader {
	if cfg.Random != nil {
		return cfg.Random
	}
	return rand.Reader
}

// New builds the core on store and binds both ports. Serving starts with Run.
// It builds in four steps: the core (keys and services, newCore), the gRPC
// server and the in-process connection the gateway calls it through
// (newGRPC), the listeners (listen), and the HTTP handler (newHTTPHandler).
func New(ctx context.Context, cfg Config, store storage.Store) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.KeySealer == nil {
		cfg.KeySealer = &keys.Sealer{}
	}
	if cfg.SignIn.BaseURL == "" {
		cfg.SignIn.BaseURL = cfg.Tokens.Issuer
	}
	// RFC 9207: the iss of authorization responses is the issuer of the
	// tokens and discovery, never a value of its own.
	cfg.SignIn.Issuer = cfg.Tokens.Issuer
	if cfg.SignIn.CodeTTL <= 0 {
		cfg.SignIn.CodeTTL = authorize.DefaultCodeTTL
	}
	if cfg.Device.BaseURL == "" {
		cfg.Device.BaseURL = cfg.SignIn.BaseURL
	}
	c, err := newCore(ctx, cfg, store)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, store: c.store, tokens: c.tokens, keys: c.signingKeys, refreshKeys: c.refreshKeys, providers: c.providers, revocations: c.revocations,
		securityEvents: c.securityEvents}
	s.health = health.NewServer()
	gatewayConn := s.newGRPC(cfg, c)
	if err := s.listen(cfg, c.metrics); err != nil {
		return nil, err
	}
	handler, err := s.newHTTPHandler(ctx, cfg, c, gatewayConn)
	if err != nil {
		s.closeListeners()
		return nil, err
	}
	s.httpServer = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// Over HTTP/1.1 Go counts the request line and header lines (and
		// answers 431 beyond them); over HTTP/2 it counts as the gRPC port
		// does, 32 bytes more per field, with room for ten fields.
		MaxHeaderBytes: cfg.maxHeaderBytes(),
		ErrorLog:       slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	// The per-service health statuses start out right, not SERVING by default.
	_ = s.checkReadiness(ctx)
	return s, nil
}

// core is what the transports call: the services built on the store, and
// the keys and metrics they share.
type core struct {
	store       storage.Store
	metrics     *telemetry.Metrics
	signingKeys *keys.Set
	refreshKeys *keys.RefreshTokenKeys
	directory   *accounts.Directory
	tokens      *tokens.Service
	providers   *providers.Service
	authorize   *authorize.Service
	sessions    *sessions.Service
	device      *device.Service
	// grants is the one grant table every transport dispatches to.
	grants     *grants.Service
	logout     *logout.Service
	federation *federation.Service
	// possession checks DPoP proofs; certificates finds HTTP requests'
	// client certificates.
	possession   *possession.Verifier
	certificates *possession.Certificates
	// revocations is this replica's revocation feed.
	revocations *revocationfeed.Feed
	// securityEvents are the Shared Signals streams of the feed.
	securityEvents *ssf.Service
}

// newCore loads the keys (encrypting any left in the clear) and builds the
// services on store, which from then on is reached through the metrics'
// timer.
func newCore(ctx context.Context, cfg Config, store storage.Store) (*core, error) {
	now, random := cfg.now(), cfg.random()
	hasher, err := NewHasher(cfg)
	if err != nil {
		return nil, err
	}
	if !cfg.KeySealer.Encrypts() {
		cfg.Logger.Warn("running with unencrypted private keys: set CHIT_KEY_ENCRYPTION_KEY or --key-encryption-key-file to encrypt them at rest")
	} else if encrypted, err := keys.EncryptClearKeys(ctx, store, cfg.KeySealer); errors.Is(err, keys.ErrClearCopiesRemain) {
		// Refusing to start would not erase them, and the next start finds no
		// key left to encrypt: the operator is told how to finish.
		cfg.Logger.Error("encrypted the private keys stored in the clear, but could not erase their old copies from the database's files: "+
			"run `chitd keys encrypt` while no other process uses the database", "keys", encrypted, "error", err)
	} else if err != nil {
		return nil, fmt.Errorf("encrypt private keys stored in the clear: %w", err)
	} else if encrypted > 0 {
		cfg.Logger.Info("encrypted the private keys stored in the clear under the key encryption key", "keys", encrypted)
	}
	signingKeys, err := keys.Load(ctx, store, cfg.SigningAlgorithm, cfg.KeySealer, now())
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	refreshKeys, err := keys.LoadRefreshTokenKeys(ctx, store, cfg.KeySealer, now())
	if err != nil {
		return nil, fmt.Errorf("load refresh token keys: %w", err)
	}
	metrics := telemetry.New(func() time.Duration { return now().Sub(signingKeys.ActiveSince()) })
	rawStore := store
	// Everything built from here on reaches the store through the timer.
	store = storage.Timed(store, metrics.ObserveStore)
	directory := accounts.NewDirectory(accounts.Config{ServiceAccountCacheTTL: cfg.ServiceAccountCacheTTL, ServerAudience: cfg.Tokens.Audience,
		IDTokenSigningAlgorithms: signingKeys.IDTokenAlgorithms()}, accounts.Dependencies{Store: store, Hasher: hasher, Now: now, Random: random})
	providerService := providers.NewService(cfg.Providers, providers.Dependencies{Store: store, Sealer: cfg.KeySealer, Now: now, Random: random, Events: metrics})
	tokenService := tokens.NewService(cfg.Tokens, tokens.Dependencies{
		Keys: signingKeys, RefreshKeys: refreshKeys, ProviderKeys: providerService.LookupKey, Store: store, Directory: directory,
		Now: now, Random: random, Logger: cfg.Logger, Events: metrics,
	})
	providerService.WhenKeysChange(tokenService.ForgetProviderKeys)
	directory.WhenTokensRefused(tokenService.ForgetRefusals)
	sessionService := sessions.NewService(cfg.Sessions, sessions.Dependencies{Store: store, Directory: directory, Now: now, Random: random})
	logoutSessions := cfg.Logout.Sessions
	if logoutSessions == nil {
		logoutSessions = sessionsForLogout{sessionService}
	}
	authorizeService := authorize.NewService(cfg.SignIn, authorize.Dependencies{Store: store, Directory: directory, Tokens: tokenService,
		Sessions: sessionService, Now: now, Random: random})
	federationService := federation.New(federation.Config{ClockSkew: cfg.Tokens.ClockSkew}, federation.Dependencies{Store: store,
		Directory: directory, Tokens: tokenService, HTTPClient: cfg.FederationHTTPClient, Now: now, Logger: cfg.Logger})
	deviceService := device.NewService(cfg.Device, device.Dependencies{Store: store, Authorize: authorizeService, Directory: directory, Sessions: sessionService, Now: now, Random: random,
		Logger: cfg.Logger})
	certificates, err := possession.NewCertificates(cfg.ClientCertificateProxies)
	if err != nil {
		return nil, err
	}
	proofs := cfg.DPoP
	if proofs.Now == nil {
		proofs.Now = now
	}
	revocations := revocationfeed.New(revocationfeed.Config{PollInterval: cfg.RevocationPollInterval, Heartbeat: cfg.RevocationHeartbeat,
		MaxStreamsPerCaller: cfg.RevocationMaxStreamsPerCaller, Retention: cfg.revocationRetention(), Now: now, Logger: cfg.Logger}, revocationStore{store, rawStore})
	securityEventsConfig := cfg.SecurityEvents
	securityEventsConfig.Issuer = cfg.Tokens.Issuer
	securityEvents := ssf.New(securityEventsConfig, ssf.Dependencies{Store: store, Accounts: directory, Keys: signingKeys,
		Sealer: cfg.KeySealer, Pusher: ssfpush.New(securityEventsConfig.PushTimeoutOrDefault(), nil), Feed: revocations, Events: metrics, Now: now, Logger: cfg.Logger})
	return &core{federation: federationService, device: deviceService, revocations: revocations, securityEvents: securityEvents,
		possession: possession.NewVerifier(cfg.Tokens.Issuer, dpop.NewVerifier(proofs), dpop.NewVerifier(proofs)), certificates: certificates,
		store: store, metrics: metrics, signingKeys: signingKeys, refreshKeys: refreshKeys, directory: directory,
		tokens: tokenService, providers: providerService, authorize: authorizeService, sessions: sessionService,
		grants: grants.New(grants.Dependencies{Tokens: tokenService, Directory: directory, Authorize: authorizeService,
			Federation: federationService, Device: deviceService}),
		logout: logout.NewService(logout.Config{Issuer: cfg.Tokens.Issuer}, logout.Dependencies{
			Keys: signingKeys, Sessions: logoutSessions, Clients: directory, Logins: tokenService,
			Deliverer: backchannel.New(logout.DefaultDeliveryTimeout, nil), Now: now, Random: random, Logger: cfg.Logger,
		}),
	}, nil
}

// revocationStore is the store as the revocation feed reads it: through
// the metrics' timer, and waking on the raw store's notifications where it
// has them (PostgreSQL).
type revocationStore struct {
	storage.RevocationEvents
	raw storage.Store
}

func (s revocationStore) WaitRevocations(ctx context.Context) error {
	if waker, ok := s.raw.(revocationfeed.Waker); ok {
		return waker.WaitRevocations(ctx)
	}
	// Nothing to wait on: the poller polls alone.
	<-ctx.Done()
	return ctx.Err()
}

// newGRPC builds the gRPC server and the in-process connection the gateway
// calls the same handlers through, each behind the interceptors of its
// transport.
func (s *Server) newGRPC(cfg Config, c *core) *gateway.InProcess {
	apiDeps := grpcapi.Dependencies{Tokens: c.tokens, Authorize: c.authorize, Providers: c.providers, Directory: c.directory,
		Grants: c.grants, Device: c.device, Sessions: c.sessions, Pages: paging.New(c.refreshKeys), SigningKeys: signingKeyAdmin{s}, Federation: c.federation,
		Possession: c.possession, Revocations: c.revocations, SecurityEvents: c.securityEvents}
	gatekeeper := grpcapi.NewGatekeeper(grpcapi.Config{Orchestrators: cfg.Orchestrators}, apiDeps)
	authServer, providersServer := grpcapi.NewAuthServer(apiDeps), grpcapi.NewProvidersServer(apiDeps)
	adminServer := grpcapi.NewAdminServer(apiDeps)
	revocationsServer := grpcapi.NewRevocationFeedServer(apiDeps)
	s.gatekeeper = gatekeeper
	registerServices := func(registrar grpc.ServiceRegistrar) {
		authv1.RegisterAuthServiceServer(registrar, authServer)
		authv1.RegisterAuthProvidersServer(registrar, providersServer)
		adminv1.RegisterAdminServiceServer(registrar, adminServer)
		authv1.RegisterRevocationFeedServiceServer(registrar, revocationsServer)
		grpc_health_v1.RegisterHealthServer(registrar, s.health)
	}
	interceptors := func(transport grpcapi.Transport) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
		return grpcapi.Interceptors(grpcapi.InterceptorConfig{
			Logger: cfg.Logger, Gatekeeper: gatekeeper, Transport: transport, Proxies: cfg.ClientAddresses, Timeout: cfg.RequestTimeout, Observer: c.metrics,
		})
	}
	var tracing stats.Handler
	if cfg.TracerProvider != nil {
		tracing = otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(cfg.TracerProvider), otelgrpc.WithPropagators(propagation.TraceContext{}))
	}

	unary, stream := interceptors(grpcapi.TransportGRPC)
	options := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary),
		grpc.ChainStreamInterceptor(stream),
		grpc.MaxRecvMsgSize(gateway.MaxRequestBytes),
		// grpc-go's default, 16 MiB, let each call's metadata be read and
		// decoded in full before authentication looked at it: 24 calls of
		// 15 MiB held 1.4 GB. Beyond the bound the stream is reset or, once a
		// header block runs on past it, the connection closed, unread. The
		// HPACK table needs no bound of its own: grpc-go's decoder keeps it at
		// 4 KiB whatever SETTINGS_HEADER_TABLE_SIZE it would advertise, and
		// what it expands to counts against this bound.
		grpc.MaxHeaderListSize(uint32(cfg.maxHeaderBytes())),
		grpcapi.LenientStrings(),
	}
	options = append(options, cfg.GRPCConnections.serverOptions()...)
	if tracing != nil {
		options = append(options, grpc.StatsHandler(tracing))
	}
	if cfg.TLS != nil {
		options = append(options, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	s.grpcServer = grpc.NewServer(options...)
	registerServices(s.grpcServer)
	reflection.Register(s.grpcServer)

	// The gateway calls the same handlers through the same interceptors as
	// in-process function calls: no certificate, socket or serialization on
	// the way. Its calls carry the client address the HTTP layer resolved
	// (clientaddr.Middleware in newHTTPHandler).
	restUnary, _ := interceptors(grpcapi.TransportREST)
	gatewayConn := gateway.NewInProcess(restUnary, tracing, cfg.maxHeaderBytes())
	registerServices(gatewayConn)
	return gatewayConn
}

// listen binds the gRPC, HTTP and (when configured) operations ports.
func (s *Server) listen(cfg Config, metrics *telemetry.Metrics) error {
	var err error
	if s.grpcListener, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return fmt.Errorf("listen for gRPC on %s: %w", cfg.GRPCAddr, err)
	}
	if s.httpListener, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		s.grpcListener.Close()
		return fmt.Errorf("listen for HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	if cfg.OpsAddr != "" {
		if s.opsListener, err = net.Listen("tcp", cfg.OpsAddr); err != nil {
			s.closeListeners()
			return fmt.Errorf("listen for operations on %s: %w", cfg.OpsAddr, err)
		}
		ops := pprofMux()
		ops.Handle("GET /metrics", metrics.Handler())
		s.opsHandler = ops
	}
	if cfg.TLS != nil {
		httpTLS := cfg.TLS.Clone()
		// Browsers and REST clients present no client certificate.
		httpTLS.ClientAuth, httpTLS.ClientCAs = tls.NoClientCert, nil
		httpTLS.NextProtos = []string{"h2", "http/1.1"}
		s.httpListener = tls.NewListener(s.httpListener, httpTLS)
	}
	return nil
}

// newHTTPHandler is the HTTP port: the REST gateway, the standard
// endpoints and the sign-in page (logged, counted and traced like the API's
// calls), JWKS, discovery, OpenAPI, metrics and readiness.
func (s *Server) newHTTPHandler(ctx context.Context, cfg Config, c *core, gatewayConn *gateway.InProcess) (http.Handler, error) {
	handler, err := gateway.New(ctx, gatewayConn, gateway.Options{
		JWKS:       c.signingKeys.JWKS,
		AdminAudit: grpcapi.AuditUnreached(cfg.Logger),
		OpenAPI:    openapi.Spec,
		Pages: func(mux *http.ServeMux) {
			// The standard endpoints and the sign-in page are logged and
			// counted like the API's calls, their transport named oauth2.
			standard := http.NewServeMux()
			httpsOnly := strings.HasPrefix(cfg.SignIn.BaseURL, "https://")
			signinpage.New(signinpage.Config{HTTPSOnly: httpsOnly},
				signinpage.Dependencies{Authorize: c.authorize, Logger: cfg.Logger}).Register(standard)
			signinpage.NewDevice(signinpage.Config{HTTPSOnly: httpsOnly},
				signinpage.DeviceDependencies{Device: c.device, Logger: cfg.Logger}).Register(standard)
			// The logout endpoint reads and clears the sign-in page's
			// session cookie, unless a test gives it its own.
			sessionCookie, clearSessionCookie := cfg.Logout.Cookie, cfg.Logout.Clear
			if cfg.Logout.Sessions == nil {
				sessionCookie = func(r *http.Request) string { return signinpage.SessionCookieValue(r, httpsOnly) }
				clearSessionCookie = func(w http.ResponseWriter) { signinpage.ClearSessionCookie(w, httpsOnly) }
			}
			signinpage.NewLogout(signinpage.Config{HTTPSOnly: httpsOnly},
				signinpage.LogoutDependencies{Logout: c.logout, Logger: cfg.Logger, SessionCookie: sessionCookie, ClearSessionCookie: clearSessionCookie}).Register(standard)
			oauth2http.New(oauth2http.Dependencies{Tokens: c.tokens, Directory: c.directory, Grants: c.grants, Device: c.device, Logger: cfg.Logger,
				Possession: c.possession}).Register(standard)
			var tracer trace.Tracer
			if cfg.TracerProvider != nil {
				tracer = cfg.TracerProvider.Tracer("github.com/chit-auth/chit/internal/server")
			}
			observed := observeHTTP(standard, cfg.Logger, c.metrics, tracer)
			mux.Handle("/oauth2/", observed)
			mux.Handle(oauth2http.UserinfoPath, observed)
			if cfg.OpsAddr == "" {
				mux.Handle("GET /metrics", c.metrics.Handler())
			}
			mux.HandleFunc("GET /readyz", s.ready)
		},
		Discovery: func() gateway.Discovery {
			base := strings.TrimSuffix(cfg.Tokens.Issuer, "/")
			return gateway.Discovery{
				Issuer:                                     cfg.Tokens.Issuer,
				AuthorizationEndpoint:                      base + authorize.PagePath,
				TokenEndpoint:                              base + oauth2http.TokenPath,
				DeviceAuthorizationEndpoint:                base + oauth2http.DeviceAuthorizationPath,
				RevocationEndpoint:                         base + oauth2http.RevokePath,
				IntrospectionEndpoint:                      base + oauth2http.IntrospectPath,
				UserinfoEndpoint:                           base + oauth2http.UserinfoPath,
				EndSessionEndpoint:                         base + signinpage.LogoutPath,
				BackchannelLogoutSupported:                 true,
				BackchannelLogoutSessionSupported:          true,
				GrantTypesSupported:                        grants.Types(),
				TokenEndpointAuthMethodsSupported:          grants.TokenEndpointAuthMethods(),
				JWKSURI:                                    base + grpcapi.JWKSPath,
				ResponseTypesSupported:                     []string{"code"},
				ResponseModesSupported:                     []string{authorize.ResponseModeQuery, authorize.ResponseModeFormPost},
				SubjectTypesSupported:                      []string{"public"},
				IDTokenSigningAlgValuesSupported:           c.signingKeys.IDTokenAlgorithms(),
				ScopesSupported:                            accounts.PersonScopes,
				CodeChallengeMethodsSupported:              []string{"S256"},
				AuthorizationResponseIssParameterSupported: true,
				ClaimsSupported:                            append([]string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "auth_time", "nonce", tokens.SessionIDClaim, tokens.AMRClaim, "role", "scope", tokens.FamilyClaim, tokens.ClientIDClaim, tokens.IssuedAtMicrosClaim}, tokens.ProfileClaimNames...),
				ChitTokenEndpoint:                          base + grpcapi.TokenPath,
				ChitRefreshEndpoint:                        base + grpcapi.RefreshTokenPath,
				ChitRevocationEndpoint:                     base + grpcapi.RevokePath,
				ChitCheckEndpoint:                          base + grpcapi.CheckPath,
				DPoPSigningAlgValuesSupported:              dpop.Algorithms(),
				TLSClientCertificateBoundAccessTokens:      true,
			}
		},
	})
	if err != nil {
		return nil, err
	}
	// The client certificate and the target of each request, for the
	// handlers that bind tokens to them or check them.
	handler = c.certificates.Middleware(handler)
	handler = possession.NonceMiddleware(c.possession, handler)
	handler = withCORS(handler, originPolicy(cfg.AllowedOrigins, c.directory.OriginRegistered), cfg.Logger)
	if cfg.RequestTimeout > 0 {
		handler = withDeadline(handler, cfg.RequestTimeout)
	}
	// The revocation feed's events stream for as long as the connection
	// may live, past the request deadline; they are logged and counted as
	// the other endpoints are.
	var tracer trace.Tracer
	if cfg.TracerProvider != nil {
		tracer = cfg.TracerProvider.Tracer("github.com/chit-auth/chit/internal/server")
	}
	// The certificates' middleware gives a sender-constrained watcher's
	// check what the other REST endpoints get: the request's target (its
	// proof's htm and htu) and a trusted proxy's Client-Cert.
	events := observeHTTP(c.certificates.Middleware(revocationsse.Handler(revocationsse.Dependencies{Feed: c.revocations, Authorize: s.gatekeeper.Authorize,
		MaxAge: cfg.GRPCConnections.withDefaults().MaxAge})), cfg.Logger, c.metrics, tracer)
	routes := http.NewServeMux()
	// Every method, so that another than GET is answered 405 as on the
	// other REST paths, not 404.
	routes.Handle(revocationsse.Path, events)
	// The Shared Signals poll waits up to ssf.Config.PollWait, past the
	// request deadline too; it reads the client certificate a
	// certificate-bound token is checked against, and names the DPoP nonce
	// in every answer to a proof, as the other endpoints do.
	signals := http.NewServeMux()
	ssfhttp.Register(signals, ssfhttp.Dependencies{SecurityEvents: c.securityEvents, Authenticate: s.gatekeeper.AuthenticateRequest,
		Issuer: cfg.Tokens.Issuer, JWKSURI: strings.TrimSuffix(cfg.Tokens.Issuer, "/") + grpcapi.JWKSPath, Logger: cfg.Logger})
	observedSignals := c.certificates.Middleware(possession.NonceMiddleware(c.possession, observeHTTP(signals, cfg.Logger, c.metrics, tracer)))
	routes.Handle(ssfhttp.PollPath, observedSignals)
	routes.Handle(ssfhttp.ConfigurationPath, observedSignals)
	routes.Handle("/", handler)
	handler = routes
	// Every HTTP request learns its client's address once; the gateway's
	// calls, the sign-in page and the OAuth endpoints all read it.
	handler = cfg.ClientAddresses.Middleware(handler)
	return handler, nil
}

// withDeadline bounds every HTTP request's context: the API calls behind
// the gateway, the pages and the OAuth endpoints all stop waiting (on the
// store, on the password-hashing queue) when it passes. Unlike
// http.TimeoutHandler it needs no goroutine or buffered copy per request.
func withDeadline(next http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (s *Server) closeListeners() {
	s.grpcListener.Close()
	s.httpListener.Close()
	if s.opsListener != nil {
		s.opsListener.Close()
	}
}

// OpsAddr is the address of the operations listener, or "" without one.
func (s *Server) OpsAddr() string {
	if s.opsListener == nil {
		return ""
	}
	return s.opsListener.Addr().String()
}

// GRPCAddr is the address the gRPC port listens on.
func (s *Server) GRPCAddr() string { return s.grpcListener.Addr().String() }

// HTTPAddr is the address the HTTP port listens on.
func (s *Server) HTTPAddr() string { return s.httpListener.Addr().String() }

// Run serves until ctx is done, then drains in-flight calls (up to
// ShutdownTimeout) and returns.
func (s *Server) Run(ctx context.Context) error {
	group, groupCtx := errgroup.WithContext(ctx)
	group.Go(func() error {
		if err := s.grpcServer.Serve(s.grpcListener); err != nil {
			return fmt.Errorf("gRPC server: %w", err)
		}
		return nil
	})
	group.Go(func() error {
		if err := s.httpServer.Serve(s.httpListener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("HTTP server: %w", err)
		}
		return nil
	})
	group.Go(func() error {
		s.cleanExpired(groupCtx)
		return nil
	})
	group.Go(func() error {
		s.maintainKeys(groupCtx)
		return nil
	})
	group.Go(func() error {
		s.providers.FillKeyPool(groupCtx)
		return nil
	})
	group.Go(func() error {
		s.watchReadiness(groupCtx)
		return nil
	})
	group.Go(func() error {
		s.revocations.Run(groupCtx)
		return nil
	})
	group.Go(func() error {
		s.securityEvents.Run(groupCtx)
		return nil
	})
	if s.cfg.PprofAddr != "" {
		pprofServer := &http.Server{Addr: s.cfg.PprofAddr, Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
		group.Go(func() error {
			if err := pprofServer.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("pprof server: %w", err)
			}
			return nil
		})
		group.Go(func() error {
			<-groupCtx.Done()
			return pprofServer.Close()
		})
	}
	if s.opsListener != nil {
		opsServer := &http.Server{Handler: s.opsHandler, ReadHeaderTimeout: 10 * time.Second}
		group.Go(func() error {
			if err := opsServer.Serve(s.opsListener); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("operations server: %w", err)
			}
			return nil
		})
		group.Go(func() error {
			<-groupCtx.Done()
			return opsServer.Close()
		})
	}
	s.cfg.Logger.Info("chitd serving", "grpc", s.GRPCAddr(), "http", s.HTTPAddr(), "ops", s.OpsAddr(), "issuer", s.cfg.Tokens.Issuer)
	group.Go(func() error {
		<-groupCtx.Done()
		s.shutdown()
		return nil
	})
	return group.Wait()
}

func (s *Server) shutdown() {
	s.cfg.Logger.Info("chitd shutting down")
	s.health.Shutdown()
	timeout := s.cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Both ports drain at once; the gateway's in-process calls finish
	// within their HTTP requests.
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		if err := s.httpServer.Shutdown(ctx); err != nil {
			s.cfg.Logger.Warn("HTTP drain incomplete", "error", err)
		}
	}()
	stopped := make(chan struct{})
	go func() {
		s.grpcServer.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.grpcServer.Stop()
	}
	<-drained
}

func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
