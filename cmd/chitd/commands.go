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

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/envflag"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/passwords"
	"github.com/chit-auth/chit/internal/providers"
	"github.com/chit-auth/chit/internal/secretin"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/tokens"
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
	// The server's audience, which no client id may take, is serve's
	// --audience: the operator commands read its variable too.
	audience := tokens.DefaultAudience
	if value, ok := envflag.LookupEnv(envflag.Name("CHIT", "audience")); ok && value != "" {
		audience = value
	}
	return accounts.NewDirectory(accounts.Config{ServerAudience: audience}, accounts.Dependencies{Store: db, Hasher: hasher, Now: time.Now, Random: rand.Reader}), func() { db.Close() }, nil
}

// grantFlags are what an operator grants a principal: repeatable --scope,
// --default-scope and (for service accounts and clients) --audience. No
// environment variable sets them.
type grantFlags struct {
	scopes, defaults, audiences []string
}

func (g *grantFlags) register(cmd *cobra.Command, withAudience bool, defaultScopes []string) {
	flags := cmd.Flags()
	flags.StringArrayVar(&g.scopes, "scope", defaultScopes, "a scope tokens may carry (repeat for more)")
	flags.StringArrayVar(&g.defaults, "default-scope", nil, "a scope tokens carry when none is asked for (repeat for more; must be allowed)")
	names := []string{"scope", "default-scope"}
	if withAudience {
		flags.StringArrayVar(&g.audiences, "audience", nil, "an audience tokens may be minted for instead of the server's own (RFC 8707; repeat for more)")
		names = append(names, "audience")
	}
	envflag.NoEnv(flags, names...)
}

// grantFlagNames name the grant flags in the messages that refuse one.
var grantFlagNames = accounts.GrantFields{Allowed: "--scope", Default: "--default-scope", Audiences: "--audience"}

func (g *grantFlags) grants() (storage.Grants, error) {
	return accounts.NewGrants(grantFlagNames, g.scopes, g.defaults, g.audiences)
}

// newSetGrantsCommand is `chitd <kind> set-grants NAME`: it replaces what
// the principal may obtain, through set.
func newSetGrantsCommand(store *storeFlags, kind string, withAudience bool, short, example string,
	set func(*accounts.Directory, context.Context, string, storage.Grants) error) *cobra.Command {
	var flags grantFlags
	use := "set-grants NAME [--scope S]... [--default-scope S]..."
	if withAudience {
		use += " [--audience A]..."
	}
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: withDirectory(store, nil, func(cmd *cobra.Command, args []string, directory *accounts.Directory) error {
			grants, err := flags.grants()
			if err != nil {
				return err
			}
			if err := set(directory, cmd.Context(), args[0], grants); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %s\n", kind, args[0], formatGrants(grants))
			return nil
		}),
	}
	flags.register(cmd, withAudience, nil)
	return cmd
}

func formatGrants(grants storage.Grants) string {
	text := "scopes: " + orNone(grants.AllowedScopes) + "; defaults: " + orNone(grants.DefaultScopes)
	if len(grants.AllowedAudiences) > 0 {
		text += "; audiences: " + strings.Join(grants.AllowedAudiences, " ")
	}
	return text
}

func orNone(items []string) string {
	if len(items) == 0 {
		return "-"
	}
	return strings.Join(items, " ")
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
	var createGrants grantFlags
	create := &cobra.Command{
		Use:   "create NAME --password-stdin [--role user|admin] [--scope S]... [--default-scope S]...",
		Short: "Create a user; the password is read from standard input",
		Long: `Create a user. People may always obtain the OpenID Connect scopes (openid,
profile, offline_access) through clients that allow them; --scope grants
more, and --default-scope names what a token carries when none is asked for.`,
		Example: "  printf '%s' \"$PASSWORD\" | chitd user create alice --password-stdin --scope reports:read --default-scope reports:read",
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
			grants, err := createGrants.grants()
			if err != nil {
				return err
			}
			if err := directory.CreateUser(cmd.Context(), args[0], password, parsedRole, grants); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created user %s with role %s\n", args[0], parsedRole)
			return nil
		}),
	}
	create.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	create.Flags().StringVar(&role, "role", "user", "user or admin")
	createGrants.register(create, false, nil)
	hashing.register(create.Flags())

	setRole := &cobra.Command{
		Use:   "set-role NAME user|admin",
		Short: "Change a user's role; their access tokens issued before stop working",
		Args:  cobra.ExactArgs(2),
		RunE: withDirectory(store, nil, func(cmd *cobra.Command, args []string, directory *accounts.Directory) error {
			parsedRole, err := accounts.ParseUserRole(args[1])
			if err != nil {
				return err
			}
			if err := directory.SetUserRole(cmd.Context(), args[0], parsedRole); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s now has role %s\n", args[0], parsedRole)
			return nil
		}),
	}
	setUserGrants := newSetGrantsCommand(store, "user", false,
		"Replace the scopes a user may obtain; if any is removed, their access tokens issued before stop working",
		"  chitd user set-grants alice --scope reports:read --scope reports:write --default-scope reports:read",
		(*accounts.Directory).SetUserGrants)

	list := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  cobra.NoArgs,
		RunE: withDirectory(store, nil, func(cmd *cobra.Command, _ []string, directory *accounts.Directory) error {
			users, err := directory.ListUsers(cmd.Context(), storage.Page{})
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tROLE\tSCOPES\tDEFAULT_SCOPES\tCREATED")
			for _, u := range users {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.Role, orNone(u.AllowedScopes), orNone(u.DefaultScopes), u.CreatedAt.UTC().Format(time.RFC3339))
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
	cmd.AddCommand(create, list, setRole, setUserGrants, remove)
	return cmd
}

func newServiceCommand(store *storeFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "service", Short: "Manage service accounts (client credentials)"}
	var createGrants grantFlags
	create := &cobra.Command{
		Use:   "create NAME [--scope S]... [--default-scope S]... [--audience A]...",
		Short: "Create a service account and print its client id and secret once",
		Long: `Create a service account. Its tokens have the subject service:NAME and carry
only scopes granted with --scope; --audience lets it ask for tokens minted for
another service (the audience field of Token, resource on /oauth2/token).`,
		Example: "  chitd service create billing --scope inventory:read --default-scope inventory:read --audience inventory",
		Args:    cobra.ExactArgs(1),
		RunE: withDirectory(store, nil, func(cmd *cobra.Command, args []string, directory *accounts.Directory) error {
			grants, err := createGrants.grants()
			if err != nil {
				return err
			}
			secret, err := directory.CreateServiceAccount(cmd.Context(), args[0], grants)
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
			services, err := directory.ListServiceAccounts(cmd.Context(), storage.Page{})
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "CLIENT_ID\tSCOPES\tDEFAULT_SCOPES\tAUDIENCES\tCREATED")
			for _, s := range services {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.ClientID, orNone(s.AllowedScopes), orNone(s.DefaultScopes), orNone(s.AllowedAudiences), s.CreatedAt.UTC().Format(time.RFC3339))
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
	var overlap time.Duration
	rotate := &cobra.Command{
		Use:   "rotate-secret NAME [--overlap DURATION]",
		Short: "Give a service account a new secret and print it once",
		Long: `Give a service account a new secret. The secret it replaces keeps working for
--overlap (default none: it stops at once, as after a leak), so the services
that use it can move to the new one without a gap; at most 168h.`,
		Example: "  chitd service rotate-secret billing --overlap 1h",
		Args:    cobra.ExactArgs(1),
		RunE: withDirectory(store, nil, func(cmd *cobra.Command, args []string, directory *accounts.Directory) error {
			secret, err := directory.RotateServiceSecret(cmd.Context(), args[0], overlap)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "client_id: %s\nclient_secret: %s\n", args[0], secret)
			fmt.Fprintln(cmd.ErrOrStderr(), "Store the secret now: it is not kept and cannot be shown again.")
			return nil
		}),
	}
	rotate.Flags().DurationVar(&overlap, "overlap", 0, "how long the replaced secret keeps working")
	createGrants.register(create, true, nil)
	setServiceGrants := newSetGrantsCommand(store, "service", true,
		"Replace what a service account may obtain; if anything is removed, its access tokens issued before stop working",
		"  chitd service set-grants billing --scope inventory:read --audience inventory",
		(*accounts.Directory).SetServiceGrants)
	cmd.AddCommand(create, list, setServiceGrants, rotate, remove)
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
			all, err := service.List(cmd.Context(), storage.Page{})
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
	cmd := &cobra.Command{Use: "client", Short: "Manage OAuth clients of the sign-in page and /oauth2/token"}
	var redirectURIs []string
	var confidential bool
	var createGrants grantFlags
	create := &cobra.Command{
		Use:   "create NAME --redirect-uri URI... [--confidential] [--scope S]... [--default-scope S]... [--audience A]...",
		Short: "Register an OAuth client: its redirect URIs, whether it keeps a secret, and what may be obtained through it",
		Long: `Register an OAuth client. A public client (the default: browser and native apps)
has no secret and must use PKCE; a --confidential client gets a secret, printed
once, and authenticates with client_secret_basic or client_secret_post. What a
person obtains through a client is within both the person's and the client's
scopes. Chit's own clients (chit-api, chit-cli) need no registration.`,
		Example: "  chitd client create dashboard --redirect-uri https://dash.example.com/callback --confidential \\\n    --scope openid --scope offline_access --scope reports:read",
		Args:    cobra.ExactArgs(1),
		RunE: withDirectory(store, nil, func(cmd *cobra.Command, args []string, directory *accounts.Directory) error {
			if err := authorize.ValidateRedirectURIs(redirectURIs); err != nil {
				return err
			}
			grants, err := createGrants.grants()
			if err != nil {
				return err
			}
			secret, err := directory.CreateClient(cmd.Context(), args[0], redirectURIs, confidential, grants)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !confidential {
				fmt.Fprintf(out, "created public client %s\n", args[0])
				return nil
			}
			fmt.Fprintf(out, "client_id: %s\nclient_secret: %s\n", args[0], secret)
			fmt.Fprintln(cmd.ErrOrStderr(), "Store the secret now: it is not kept and cannot be shown again.")
			return nil
		}),
	}
	create.Flags().StringArrayVar(&redirectURIs, "redirect-uri", nil, "a redirect URI (repeat for more); https, or http on a loopback IP")
	create.Flags().BoolVar(&confidential, "confidential", false, "the client keeps a secret (a server-side app): print one")
	createGrants.register(create, true, accounts.PersonScopes)
	envflag.NoEnv(create.Flags(), "redirect-uri", "confidential")
	list := &cobra.Command{
		Use:   "list",
		Short: "List registered clients",
		Args:  cobra.NoArgs,
		RunE: withDirectory(store, nil, func(cmd *cobra.Command, _ []string, directory *accounts.Directory) error {
			clients, err := directory.ListClients(cmd.Context(), storage.Page{})
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "CLIENT_ID\tTYPE\tREDIRECT_URIS\tSCOPES\tDEFAULT_SCOPES\tAUDIENCES")
			for _, c := range clients {
				kind := "public"
				if len(c.SecretHash) > 0 {
					kind = "confidential"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, kind, strings.Join(c.RedirectURIs, " "), orNone(c.AllowedScopes), orNone(c.DefaultScopes), orNone(c.AllowedAudiences))
			}
			return w.Flush()
		}),
	}
	setClientGrants := newSetGrantsCommand(store, "client", true,
		"Replace what may be obtained through a client; if anything is removed, tokens issued through it before stop working",
		"  chitd client set-grants dashboard --scope openid --scope reports:read",
		(*accounts.Directory).SetClientGrants)
	remove := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a client; its sign-ins, refresh tokens and access tokens stop working",
		Args:  cobra.ExactArgs(1),
		RunE: withDirectory(store, nil, func(cmd *cobra.Command, args []string, directory *accounts.Directory) error {
			if err := directory.DeleteClient(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted client %s\n", args[0])
			return nil
		}),
	}
	cmd.AddCommand(create, list, setClientGrants, remove)
	return cmd
}

func newKeysCommand(store *storeFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "List, rotate and encrypt the server's signing keys"}
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
	encrypt := &cobra.Command{
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
	}
	cmd.AddCommand(list, rotate, encrypt)
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
