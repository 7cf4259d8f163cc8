package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"time"

	"github.com/spf13/cobra"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/admincli"
	"github.com/chit-auth/chit/internal/envflag"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/tokens"
	"github.com/chit-auth/chit/pkg/dpop"
)

func newRootCommand() *cobra.Command {
	var store storeFlags
	var hashing hashFlags
	root := &cobra.Command{
		Use:   "chitd",
		Short: "Chit token server and operator commands",
		Long: `chitd issues, refreshes and checks access tokens (JWT) and rotating refresh
tokens over gRPC and REST. Every flag can also be set through the environment
variable named in its help; a flag given on the command line wins.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			store.warn = func(message string) { fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+message) }
			return envflag.Apply(cmd, "CHIT", envflag.LookupEnv)
		},
	}
	store.register(root.PersistentFlags())
	root.AddCommand(newServeCommand(&store, &hashing), newMigrateCommand(&store))
	root.AddCommand(newAdminCommands(&store, &hashing)...)
	envflag.Annotate(root, "CHIT")
	return root
}

func newServeCommand(store *storeFlags, hashing *hashFlags) *cobra.Command {
	var flags serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the token server (gRPC and REST)",
		Long: `Run the token server until SIGINT or SIGTERM, then drain in-flight calls.

The gRPC port serves chit.auth.v1.AuthService and AuthProviders, server
reflection and the standard health service. The HTTP port serves the same API
as REST/JSON, the signing keys at /.well-known/jwks.json, the OpenAPI document
at /openapi.json and /healthz.`,
		Example: "  chitd serve --data-dir ./data --issuer https://auth.example.com",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := flags.validate(hashing); err != nil {
				return err
			}
			logger := flags.logger()
			sealer, err := store.sealer(envflag.LookupEnv)
			if err != nil {
				return err
			}
			store.warn = func(message string) { logger.Warn(message) }
			db, err := store.open(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			cfg := flags.serverConfig(hashing, logger)
			if store.db == MemoryStore {
				if err := createDevAdmin(cmd.Context(), db, cfg, envflag.LookupEnv); err != nil {
					return err
				}
			}
			cfg.KeySealer = sealer
			if cfg.TLS, err = flags.tlsConfig(); err != nil {
				return err
			}
			if flags.dpopNonce {
				// Each replica makes its own nonces: a proof carrying one
				// is accepted only where its replay record lives.
				if cfg.DPoP.Nonces, err = dpop.NewNonceSource(dpopNonceLifetime, time.Now); err != nil {
					return err
				}
			}
			provider, stopTracing, err := flags.tracerProvider(cmd.Context())
			if err != nil {
				return err
			}
			defer stopTracing()
			if provider != nil {
				cfg.TracerProvider = provider
			}
			if flags.insecureDev {
				logger.Warn("--insecure-dev: accepting an http issuer; do not use this in production")
			}
			tuneGC(os.LookupEnv)
			srv, err := server.New(cmd.Context(), cfg, db)
			if err != nil {
				return err
			}
			return srv.Run(cmd.Context())
		},
	}
	flags.register(cmd.Flags())
	hashing.register(cmd.Flags())
	return cmd
}

// DevAdminPasswordEnv holds the password of the admin a server on
// --db memory: starts with: nobody else can reach its store to create one.
const DevAdminPasswordEnv = "CHIT_DEV_ADMIN_PASSWORD"

// createDevAdmin creates the ADMIN user "admin" in a store in memory, with
// the password in DevAdminPasswordEnv.
func createDevAdmin(ctx context.Context, db storage.Store, cfg server.Config, lookup func(string) (string, bool)) error {
	password, ok := lookup(DevAdminPasswordEnv)
	if !ok || password == "" {
		return fmt.Errorf("--db memory: set %s: the server creates the ADMIN user \"admin\" with it, since no other command can reach a store in its memory", DevAdminPasswordEnv)
	}
	hasher, err := server.NewHasher(cfg)
	if err != nil {
		return err
	}
	return accounts.NewDirectory(accounts.Config{}, accounts.Dependencies{Store: db, Hasher: hasher, Now: time.Now, Random: rand.Reader}).CreateUser(ctx, "admin", password, accounts.RoleAdmin, storage.Grants{})
}

// newAdminCommands are chitd's operator commands (user, service, client,
// provider, keys, login, session, api-key, federation, ssf): the Admin
// API's one command tree (admincli), the one chit admin mounts, over the
// Admin API's handlers in this process (server.NewLocalAdmin) as the local
// operator. Whoever can
// open the store (its files, its DSN) could change it anyway, so the
// commands need no token and make the first admin of an empty store; they
// are validated by the same handlers and audited by the same interceptors
// as a call over the network, the audit line going to standard error. To
// the tree chitd adds what only a process holding the store has: the
// hashing cost of user create, the algorithm of keys rotate's new key, and
// keys encrypt.
func newAdminCommands(store *storeFlags, hashing *hashFlags) []*cobra.Command {
	var algorithm string
	connect := func(cmd *cobra.Command) (adminv1.AdminServiceClient, context.Context, func(), error) {
		admin, done, err := openLocalAdmin(cmd, store, hashing, algorithm)
		return admin, cmd.Context(), done, err
	}
	nouns := admincli.Commands(admincli.Config{Program: "chitd", Connect: connect})
	for _, noun := range nouns {
		switch noun.Name() {
		case "user":
			create, _, _ := noun.Find([]string{"create"})
			hashing.register(create.Flags())
			admincli.MarkLocalOnly(create, "argon2-memory", "argon2-iterations", "argon2-parallelism", "max-concurrent-hashes", "hash-queue-timeout")
		case "keys":
			noun.Short = "List, rotate and encrypt the server's signing keys"
			rotate, _, _ := noun.Find([]string{"rotate"})
			rotate.Flags().StringVar(&algorithm, "signing-algorithm", "ES256", "algorithm of the new next key: ES256, EdDSA or RS256")
			admincli.MarkLocalOnly(rotate, "signing-algorithm")
			noun.AddCommand(newKeysEncryptCommand(store))
		}
	}
	return nouns
}

// openLocalAdmin opens the store and the Admin API on it as the local
// operator; done closes the store.
func openLocalAdmin(cmd *cobra.Command, store *storeFlags, hashing *hashFlags, algorithm string) (adminv1.AdminServiceClient, func(), error) {
	for _, c := range hashing.checks() {
		if c.failed {
			return nil, nil, errors.New(c.message)
		}
	}
	alg, err := keys.ParseAlgorithm(algorithm)
	if err != nil {
		return nil, nil, fmt.Errorf("--signing-algorithm: %w", err)
	}
	sealer, err := store.sealer(envflag.LookupEnv)
	if err != nil {
		return nil, nil, err
	}
	// The server's audience, which no client id may take, is serve's
	// --audience, and the audit lines take serve's --log-format: the
	// operator commands read their variables.
	audience := tokens.DefaultAudience
	if value, ok := envflag.LookupEnv(envflag.Name("CHIT", "audience")); ok && value != "" {
		audience = value
	}
	var logs slog.Handler = slog.NewTextHandler(cmd.ErrOrStderr(), nil)
	if format, _ := envflag.LookupEnv(envflag.Name("CHIT", "log-format")); format == "json" {
		logs = slog.NewJSONHandler(cmd.ErrOrStderr(), nil)
	}
	db, err := store.open(cmd.Context())
	if err != nil {
		return nil, nil, err
	}
	admin, err := server.NewLocalAdmin(server.Config{
		Tokens:           tokens.Config{Audience: audience},
		SigningAlgorithm: alg,
		KeySealer:        sealer,
		PasswordParams:   hashing.params(), MaxConcurrentHashes: hashing.maxConcurrent, HashQueueTimeout: hashing.queueTimeout,
		Logger: slog.New(logs),
	}, db, operatingSystemUser())
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return admin, func() { db.Close() }, nil
}

// operatingSystemUser names who runs the command in its audit lines, or ""
// when the system does not say.
func operatingSystemUser() string {
	if current, err := user.Current(); err == nil {
		return current.Username
	}
	return os.Getenv("USER")
}

// newKeysEncryptCommand is chitd keys encrypt, which no Admin API call can
// be: it needs the key encryption key in the process and, to erase the
// clear copies, the database to itself; a server does the same at start.
func newKeysEncryptCommand(store *storeFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "encrypt",
		Short: "Encrypt the private keys stored in the clear under the key encryption key",
		Long: `Encrypt under the key encryption key (CHIT_KEY_ENCRYPTION_KEY or
--key-encryption-key-file) every private key the store holds in the clear: the
server's signing keys and the providers' keys, then erase what replaced rows
left in the database's files (on SQLite: VACUUM and a WAL checkpoint; on
PostgreSQL see docs/security.md). chitd serve does the same at start whenever a
key encryption key is configured and it finds a key in the clear; this command
does it without starting a server, and erases even when no key was left to
encrypt. Copies made before (backups) still hold the clear keys: rotate the
signing keys afterwards to retire them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sealer, err := store.sealer(envflag.LookupEnv)
			if err != nil {
				return err
			}
			if !sealer.Encrypts() {
				return errors.New("no key encryption key: set CHIT_KEY_ENCRYPTION_KEY or --key-encryption-key-file")
			}
			db, err := store.open(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			encrypted, err := keys.EncryptClearKeys(cmd.Context(), db, sealer)
			if err != nil {
				return err
			}
			// The erasure a server's start could not finish is finished here.
			if encrypted == 0 {
				if err := db.EraseReplacedValues(cmd.Context()); err != nil {
					return fmt.Errorf("%w: %w", keys.ErrClearCopiesRemain, err)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "encrypted %d private keys; none is left in the clear\n", encrypted)
			return nil
		},
		Annotations: map[string]string{admincli.LocalOnly: "true"},
	}
}

func newMigrateCommand(store *storeFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending schema migrations and exit",
		Long: `Apply pending schema migrations and exit. chitd serve also migrates at start
(under an advisory lock on PostgreSQL, so replicas starting together do not
race); run this alone to migrate before a rolling upgrade.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := store.open(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			fmt.Fprintln(cmd.OutOrStdout(), "migrations applied")
			return nil
		},
	}
}
