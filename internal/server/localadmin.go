package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"log/slog"

	"google.golang.org/grpc"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/federation"
	"github.com/chit-auth/chit/internal/gateway"
	"github.com/chit-auth/chit/internal/grpcapi"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/paging"
	"github.com/chit-auth/chit/internal/providers"
	"github.com/chit-auth/chit/internal/ssf"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/tokens"
)

// NewLocalAdmin returns the Admin API as chitd's operator commands call it:
// the same AdminService handlers behind the same interceptors (validation,
// error translation, the audit line on cfg.Logger) as on the gRPC and REST
// ports, reached by function calls in this process, with no port, no
// token and no key loaded. Every call is made as the local operator
// (grpcapi.WithLocalOperator with osUser): whoever can open the store is
// trusted as an admin, which is how the first admin of an empty store is
// made. Of cfg it reads the password hashing, Tokens.Audience (the
// audience no client id may take), SigningAlgorithm and KeySealer (for
// rotations, and the Shared Signals streams' Authorization values), Logger,
// Now and Random.
func NewLocalAdmin(cfg Config, store storage.Store, osUser string) (adminv1.AdminServiceClient, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.KeySealer == nil {
		cfg.KeySealer = &keys.Sealer{}
	}
	now, random := cfg.now(), cfg.random()
	hasher, err := NewHasher(cfg)
	if err != nil {
		return nil, err
	}
	pageKey := make([]byte, 32)
	if _, err := random.Read(pageKey); err != nil {
		return nil, err
	}
	directory := accounts.NewDirectory(accounts.Config{ServerAudience: cfg.Tokens.Audience, IDTokenSigningAlgorithms: keys.FamilyNames(cfg.SigningAlgorithm)}, accounts.Dependencies{Store: store, Hasher: hasher, Now: now, Random: random})
	// The admin calls of the token service (logins, API keys) read and
	// write the store alone: no signing key is needed.
	tokenService := tokens.NewService(cfg.Tokens, tokens.Dependencies{Store: store, Directory: directory, Now: now, Random: random, Logger: cfg.Logger})
	directory.WhenTokensRefused(tokenService.ForgetRefusals)
	streamStore, _ := store.(ssf.Store)
	deps := grpcapi.Dependencies{
		Tokens:    tokenService,
		Directory: directory,
		Providers: providers.NewService(cfg.Providers, providers.Dependencies{Store: store, Sealer: cfg.KeySealer, Now: now, Random: random}),
		// Page tokens live as long as one command, which follows them in
		// this process: a key of its own spares loading the server's.
		Pages:       paging.New(processPageSigner(pageKey)),
		SigningKeys: localSigningKeys{store: store, cfg: cfg},
		// Rules only: no token is issued in this process.
		Federation: federation.New(federation.Config{ClockSkew: cfg.Tokens.ClockSkew}, federation.Dependencies{Store: store, Directory: directory, Now: now, Logger: cfg.Logger}),
		// Streams only: nothing is signed or pushed in this process, so a
		// verification event is refused with a word to ask a server.
		SecurityEvents: ssf.New(ssf.Config{Issuer: cfg.Tokens.Issuer}, ssf.Dependencies{Store: streamStore, Accounts: directory,
			Sealer: cfg.KeySealer, Now: now, Logger: cfg.Logger}),
	}
	unary, _ := grpcapi.Interceptors(grpcapi.InterceptorConfig{Logger: cfg.Logger, Gatekeeper: grpcapi.NewLocalGatekeeper(), Transport: grpcapi.TransportLocal})
	conn := gateway.NewInProcess(unary, nil, 0)
	adminv1.RegisterAdminServiceServer(conn, grpcapi.NewAdminServer(deps))
	return adminv1.NewAdminServiceClient(localOperatorConn{conn: conn, osUser: osUser}), nil
}

// localOperatorConn marks every call as the local operator's; the mark is
// a context value, which only this channel sets.
type localOperatorConn struct {
	conn   *gateway.InProcess
	osUser string
}

func (c localOperatorConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return c.conn.Invoke(grpcapi.WithLocalOperator(ctx, c.osUser), method, args, reply, opts...)
}

func (c localOperatorConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	// The Admin API has no streaming method today; should it get one, its
	// calls are the local operator's too.
	return c.conn.NewStream(grpcapi.WithLocalOperator(ctx, c.osUser), desc, method, opts...)
}

// processPageSigner signs page tokens with a key of this process.
type processPageSigner []byte

func (key processPageSigner) Tag(parts ...[]byte) (uint32, []byte) {
	mac := hmac.New(sha256.New, key)
	for _, part := range parts {
		var length [4]byte
		binary.BigEndian.PutUint32(length[:], uint32(len(part)))
		mac.Write(length[:])
		mac.Write(part)
	}
	return 0, mac.Sum(nil)[:keys.RefreshTagBytes]
}

func (key processPageSigner) Verify(_ context.Context, id uint32, tag []byte, parts ...[]byte) bool {
	_, want := key.Tag(parts...)
	return id == 0 && hmac.Equal(tag, want)
}

// localSigningKeys rotates the signing keys in the store as a replica's
// Admin API does (keys.Rotate with the configured algorithm and sealer);
// the running servers follow within their key check interval.
type localSigningKeys struct {
	store storage.Store
	cfg   Config
}

func (k localSigningKeys) List(ctx context.Context) ([]storage.SigningKey, error) {
	return k.store.ListSigningKeys(ctx)
}

func (k localSigningKeys) Rotate(ctx context.Context, force bool) error {
	return rotateSigningKeys(ctx, k.store, k.cfg, k.cfg.now()(), force)
}
