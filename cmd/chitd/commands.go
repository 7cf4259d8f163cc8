package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chit-auth/chit/pkg/accounts"
	"github.com/chit-auth/chit/pkg/authorize"
	"github.com/chit-auth/chit/pkg/envflag"
	"github.com/chit-auth/chit/pkg/keys"
	"github.com/chit-auth/chit/pkg/passwords"
	"github.com/chit-auth/chit/pkg/providers"
	"github.com/chit-auth/chit/pkg/secretin"
	"github.com/chit-auth/chit/pkg/server"
	"github.com/chit-auth/chit/pkg/storage"
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
			return envflag.Apply(cmd, "CHIT", envflag.LookupEnv)
		},
	}
	store.register(root.PersistentFlags())
	root.AddCommand(newServeCommand(&store, &hashing), newUserCommand(&store, &hashing), newServiceCommand(&store), newProviderCommand(&store), newClientCommand(&store), newKeysCommand(&store), newMigrateCommand(&store))
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
			db, err := store.open(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			cfg := flags.serverConfig(hashing, logger)
			cfg.KeySealer = sealer
			if cfg.TLS, err = flags.tlsConfig(); err != nil {
				return err
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

// openDirectory opens the store the server uses and the account directory on it.
func openDirectory(ctx context.Context, store *storeFlags, hashing *hashFlags) (*accounts.Directory, func(), error) {
	if hashing == nil {
		hashing = &hashFlags{memoryKiB: passwords.DefaultParams.MemoryKiB, iterations: passwords.DefaultParams.Iterations,
			parallelism: passwords.DefaultParams.Parallelism, maxConcurrent: 1, queueTimeout: time.Minute}
	}
	for _, c := range hashing.checks() {
		if c.failed {
			return nil, nil, errors.New(c.message)
		}
	}
	db, err := store.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	hasher, err := server.NewHasher(server.Config{PasswordParams: hashing.params(), MaxConcurrentHashes: hashing.maxConcurrent, HashQueueTimeout: hashing.queueTimeout})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return accounts.NewDirectory(db, hasher, time.Now, rand.Reader), func() { db.Close() }, nil
}

// withDirectory adapts a command body that works on the account directory:
// it opens the store the server uses and closes it when the body returns.
func withDirectory(store *storeFlags, hashing *hashFlags, body func(cmd *cobra.Command, args []string, directory *accounts.Directory) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		directory, closeStore, err := openDirectory(cmd.Context(), store, hashing)
		if err != nil {
			return err
		}
		defer closeStore()
		return body(cmd, args, directory)
	}
}

func newUserCommand(store *storeFlags, hashing *hashFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage people who sign in with a password"}

	var passwordStdin bool
	var role string
	create := &cobra.Command{
		Use:     "create NAME --password-stdin [--role user|admin]",
		Short:   "Create a user; the password is read from standard input",
		Example: "  printf '%s' \"$PASSWORD\" | chitd user create alice --password-stdin",
		Args:    cobra.ExactArgs(1),
		RunE: withDirectory(store, hashing, func(cmd *cobra.Command, args []string, directory *accounts.Directory) error {
			if !passwordStdin {
				return errors.New("pass the password on standard input with --password-stdin (it is never taken as an argument, which other users could see)")
			}
			parsedRole, err := accounts.ParseUserRole(role)
			if err != nil {
				return err
			}
			password, err := secretin.ReadLine(cmd.InOrStdin())
			if err != nil {
				return err
			}
			if err := directory.CreateUser(cmd.Context(), args[0], password, parsedRole); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created user %s with role %s\n", args[0], parsedRole)
			return nil
		}),
	}
	create.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	create.Flags().StringVar(&role, "role", "user", "user or admin")
	hashing.register(create.Flags())

	list := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  cobra.NoArgs,
		RunE: withDirectory(store, nil, func(cmd *cobra.Command, _ []string, directory *accounts.Directory) error {
			users, err := directory.ListUsers(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tROLE\tCREATED")
			for _, u := range users {
				fmt.Fprintf(w, "%s\t%s\t%s\n", u.Name, u.Role, u.CreatedAt.UTC().Format(time.RFC3339))
			}
			return w.Flush()
		}),
	}

	remove := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a user and revoke their refresh tokens",
		Args:  cobra.ExactArgs(1),
		RunE: withDirectory(store, nil, func(cmd *cobra.Command, args []string, directory *accounts.Directory) error {
			if err := directory.DeleteUser(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted user %s\n", args[0])
			return nil
		}),
	}
	cmd.AddCommand(create, list, remove)
	return cmd
}

func newServiceCommand(store *storeFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "service", Short: "Manage service accounts (client credentials)"}
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a service account and print its client id and secret once",
		Args:  cobra.ExactArgs(1),
		RunE: withDirectory(store, nil, func(cmd *cobra.Command, args []string, directory *accounts.Directory) error {
			secret, err := directory.CreateServiceAccount(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "client_id: %s\nclient_secret: %s\n", args[0], secret)
			fmt.Fprintln(cmd.ErrOrStderr(), "Store the secret now: it is not kept and cannot be shown again.")
			return nil
		}),
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List service accounts",
		Args:  cobra.NoArgs,
		RunE: withDirectory(store, nil, func(cmd *cobra.Command, _ []string, directory *accounts.Directory) error {
			services, err := directory.ListServiceAccounts(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "CLIENT_ID\tCREATED")
			for _, s := range services {
				fmt.Fprintf(w, "%s\t%s\n", s.ClientID, s.CreatedAt.UTC().Format(time.RFC3339))
			}
			return w.Flush()
		}),
	}
	remove := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a service account; its secret stops working",
		Args:  cobra.ExactArgs(1),
		RunE: withDirectory(store, nil, func(cmd *cobra.Command, args []string, directory *accounts.Directory) error {
			if err := directory.DeleteServiceAccount(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted service %s\n", args[0])
			return nil
		}),
	}
	cmd.AddCommand(create, list, remove)
	return cmd
}

func newProviderCommand(store *storeFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "provider", Short: "Manage resource providers (AuthProviders)"}
	// The provider core needs no token policy to list or delete.
	withProviders := func(body func(cmd *cobra.Command, args []string, service *providers.Service) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			db, err := store.open(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			return body(cmd, args, providers.NewService(providers.Config{}, providers.Dependencies{Store: db, Sealer: &keys.Sealer{}, Now: time.Now, Random: rand.Reader}))
		}
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List providers and whether they have been claimed",
		Args:  cobra.NoArgs,
		RunE: withProviders(func(cmd *cobra.Command, _ []string, service *providers.Service) error {
			all, err := service.List(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tSTATE\tREGISTERED\tKEY_ID")
			for _, p := range all {
				state := "unclaimed (claim expires " + p.ClaimExpiresAt.UTC().Format(time.RFC3339) + ")"
				if !p.ClaimedAt.IsZero() {
					state = "claimed " + p.ClaimedAt.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", p.ID, state, p.CreatedAt.UTC().Format(time.RFC3339), p.Credentials.KeyID)
			}
			return w.Flush()
		}),
	}
	remove := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a provider; its refresh token and key stop working at once",
		Args:  cobra.ExactArgs(1),
		RunE: withProviders(func(cmd *cobra.Command, args []string, service *providers.Service) error {
			if err := service.Delete(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted provider %s\n", args[0])
			return nil
		}),
	}
	cmd.AddCommand(list, remove)
	return cmd
}

func newClientCommand(store *storeFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "client", Short: "Manage clients of the browser sign-in page (their redirect URIs)"}
	withStore := func(body func(cmd *cobra.Command, args []string, db storage.Store) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			db, err := store.open(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			return body(cmd, args, db)
		}
	}
	var redirectURIs []string
	create := &cobra.Command{
		Use:     "create NAME --redirect-uri URI...",
		Short:   "Register a client and the redirect URIs its sign-ins may return to",
		Long:    "Register a client. Chit's own CLI (client id chit-cli) needs no registration: it may use any loopback redirect.",
		Example: "  chitd client create dashboard --redirect-uri https://dash.example.com/callback",
		Args:    cobra.ExactArgs(1),
		RunE: withStore(func(cmd *cobra.Command, args []string, db storage.Store) error {
			if err := authorize.ValidateClientRegistration(args[0], redirectURIs); err != nil {
				return err
			}
			err := db.CreateClient(cmd.Context(), storage.Client{ID: args[0], RedirectURIs: redirectURIs, CreatedAt: time.Now()})
			if errors.Is(err, storage.ErrAlreadyExists) {
				return fmt.Errorf("client %q already exists", args[0])
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created client %s\n", args[0])
			return nil
		}),
	}
	create.Flags().StringArrayVar(&redirectURIs, "redirect-uri", nil, "a redirect URI (repeat for more); https, or http on a loopback IP")
	list := &cobra.Command{
		Use:   "list",
		Short: "List registered clients",
		Args:  cobra.NoArgs,
		RunE: withStore(func(cmd *cobra.Command, _ []string, db storage.Store) error {
			clients, err := db.ListClients(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "CLIENT_ID\tREDIRECT_URIS")
			for _, c := range clients {
				fmt.Fprintf(w, "%s\t%s\n", c.ID, strings.Join(c.RedirectURIs, " "))
			}
			return w.Flush()
		}),
	}
	remove := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a client; its sign-ins stop working",
		Args:  cobra.ExactArgs(1),
		RunE: withStore(func(cmd *cobra.Command, args []string, db storage.Store) error {
			err := db.DeleteClient(cmd.Context(), args[0])
			if errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("client %q does not exist", args[0])
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted client %s\n", args[0])
			return nil
		}),
	}
	cmd.AddCommand(create, list, remove)
	return cmd
}

func newKeysCommand(store *storeFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "List and rotate the server's signing keys"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List signing keys with their state (next, active, retired)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := store.open(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			stored, err := db.ListSigningKeys(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "KID\tALG\tSTATE\tCREATED\tACTIVATED\tRETIRED\tENCRYPTED")
			for _, key := range stored {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%v\n", key.ID, key.Algorithm, key.State, stamp(key.CreatedAt),
					stamp(key.ActivatedAt), stamp(key.RetiredAt), keys.IsSealed(key.PrivateKey))
			}
			return w.Flush()
		},
	}
	var force bool
	var algorithm string
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Activate the next key, retire the active one and publish a new next key",
		Long: `Activate the next signing key, retire the active one and publish a new next
key. Running servers pick the change up within 30 seconds. The next key must
have been published for at least 5 minutes (the JWKS cache time), so that no
verifier meets an unknown kid; --force skips that check.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			alg, err := keys.ParseAlgorithm(algorithm)
			if err != nil {
				return err
			}
			sealer, err := store.sealer(envflag.LookupEnv)
			if err != nil {
				return err
			}
			db, err := store.open(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			if err := keys.Rotate(cmd.Context(), db, alg, sealer, time.Now(), server.JWKSCacheTime, force); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "rotated: the former next key signs now; a new next key is published")
			return nil
		},
	}
	rotate.Flags().BoolVar(&force, "force", false, "rotate even if the next key was published less than 5 minutes ago")
	rotate.Flags().StringVar(&algorithm, "signing-algorithm", "ES256", "algorithm of the new next key: ES256, EdDSA or RS256")
	cmd.AddCommand(list, rotate)
	return cmd
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
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
