package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/clilogin"
	"github.com/chit-auth/chit/internal/secretin"
)

// adminCLI is `chit admin`: the Admin API driven with the stored login,
// with the nouns and verbs of the chitd commands that work on the store.
type adminCLI struct {
	*cli
	output string
}

func (c *cli) adminCommand() *cobra.Command {
	a := &adminCLI{cli: c}
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Manage a Chit server remotely (needs a login with the ADMIN role)",
		Long: `Manage what a Chit server knows through its Admin API, as the signed-in
person (chit login). The nouns and verbs are those of the chitd commands, which
work on the store directly; every call is checked for the ADMIN role and
written to the server's audit log.`,
	}
	cmd.PersistentFlags().StringVarP(&a.output, "output", "o", "table", "table or json")
	cmd.AddCommand(a.userCommand(), a.serviceCommand(), a.clientCommand(), a.providerCommand(), a.keysCommand(), a.loginCommand(), a.apiKeyCommand())
	return cmd
}

// adminSession is a connection to the Admin API with the stored login's
// access token on every call, bounded by --timeout.
func (a *adminCLI) session(cmd *cobra.Command) (adminv1.AdminServiceClient, context.Context, func(), error) {
	if err := checkOutput(a.output); err != nil {
		return nil, nil, nil, err
	}
	conn, err := a.connect()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), a.timeout)
	done := func() { cancel(); conn.Close() }
	token, err := clilogin.ValidAccessToken(ctx, authv1.NewAuthServiceClient(conn), a.credentialsPath, a.serverAddr, a.now())
	if err != nil {
		done()
		return nil, nil, nil, a.explain(err)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	return adminv1.NewAdminServiceClient(conn), ctx, done, nil
}

// run calls the Admin API once and prints its answer.
func (a *adminCLI) run(call func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error),
	print func(w io.Writer, answer proto.Message) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		admin, ctx, done, err := a.session(cmd)
		if err != nil {
			return err
		}
		defer done()
		answer, err := call(ctx, admin)
		if err != nil {
			return a.explain(err)
		}
		return printAnswer(cmd.OutOrStdout(), a.output, answer, print)
	}
}

func (a *adminCLI) userCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage people who sign in with a password"}

	var passwordStdin bool
	var role string
	var createScopes, createDefaults []string
	create := &cobra.Command{
		Use:     "create NAME --password-stdin [--role user|admin] [--scope S]... [--default-scope S]...",
		Short:   "Create a user; the password is read from standard input",
		Example: "  printf '%s' \"$PASSWORD\" | chit admin user create alice --password-stdin --scope reports:read",
		Args:    cobra.ExactArgs(1),
	}
	create.RunE = func(cmd *cobra.Command, args []string) error {
		if !passwordStdin {
			return errors.New("pass the password on standard input with --password-stdin (it is never taken as an argument, which other users could see)")
		}
		password, err := secretin.ReadLine(cmd.InOrStdin())
		if err != nil {
			return err
		}
		return a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
			resp, err := admin.CreateUser(ctx, &adminv1.CreateUserRequest{Name: args[0], Password: password, Role: strings.ToUpper(role),
				AllowedScopes: createScopes, DefaultScopes: createDefaults})
			return resp.GetUser(), err
		}, printUsers)(cmd, args)
	}
	create.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	create.Flags().StringVar(&role, "role", "user", "user or admin")
	create.Flags().StringArrayVar(&createScopes, "scope", nil, "a scope the user may obtain (repeat for more)")
	create.Flags().StringArrayVar(&createDefaults, "default-scope", nil, "a scope their tokens carry when none is asked for (repeat for more)")

	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a user",
		Args:  cobra.ExactArgs(1),
	}
	get.RunE = func(cmd *cobra.Command, args []string) error {
		return a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
			resp, err := admin.GetUser(ctx, &adminv1.GetUserRequest{Name: args[0]})
			return resp.GetUser(), err
		}, printUsers)(cmd, args)
	}

	var pageSize int32
	list := &cobra.Command{
		Use:   "list",
		Short: "List users by name (every page)",
		Args:  cobra.NoArgs,
	}
	list.RunE = a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
		items, err := everyPage(func(token string) ([]*adminv1.User, string, error) {
			page, err := admin.ListUsers(ctx, &adminv1.ListUsersRequest{PageSize: pageSize, PageToken: token})
			return page.GetUsers(), page.GetNextPageToken(), err
		})
		return &adminv1.ListUsersResponse{Users: items}, err
	}, printUsers)
	list.Flags().Int32Var(&pageSize, "page-size", 0, "users fetched per call (default: the server's, 50)")

	setRole := &cobra.Command{
		Use:   "set-role NAME user|admin",
		Short: "Change a user's role; their access tokens issued before stop working",
		Args:  cobra.ExactArgs(2),
	}
	setRole.RunE = func(cmd *cobra.Command, args []string) error {
		return a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
			resp, err := admin.SetUserRole(ctx, &adminv1.SetUserRoleRequest{Name: args[0], Role: strings.ToUpper(args[1])})
			return resp.GetUser(), err
		}, printUsers)(cmd, args)
	}

	var scopes, defaults []string
	setGrants := &cobra.Command{
		Use:     "set-grants NAME [--scope S]... [--default-scope S]...",
		Short:   "Replace the scopes a user may obtain; if any is removed, their access tokens issued before stop working",
		Example: "  chit admin user set-grants alice --scope reports:read --scope reports:write --default-scope reports:read",
		Args:    cobra.ExactArgs(1),
	}
	setGrants.RunE = func(cmd *cobra.Command, args []string) error {
		return a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
			resp, err := admin.SetUserScopes(ctx, &adminv1.SetUserScopesRequest{Name: args[0], AllowedScopes: scopes, DefaultScopes: defaults})
			return resp.GetUser(), err
		}, printUsers)(cmd, args)
	}
	setGrants.Flags().StringArrayVar(&scopes, "scope", nil, "a scope the user may obtain (repeat for more; none removes all)")
	setGrants.Flags().StringArrayVar(&defaults, "default-scope", nil, "a scope their tokens carry when none is asked for (repeat for more)")

	remove := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a user: their logins end and their access tokens stop working",
		Args:  cobra.ExactArgs(1),
	}
	remove.RunE = func(cmd *cobra.Command, args []string) error {
		return a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
			return admin.DeleteUser(ctx, &adminv1.DeleteUserRequest{Name: args[0]})
		}, func(w io.Writer, _ proto.Message) error {
			_, err := fmt.Fprintf(w, "deleted user %s\n", args[0])
			return err
		})(cmd, args)
	}

	cmd.AddCommand(create, get, list, setRole, setGrants, remove)
	return cmd
}

// printUsers prints a user or a list of users as the chitd command's table.
func printUsers(out io.Writer, answer proto.Message) error {
	var users []*adminv1.User
	switch answer := answer.(type) {
	case *adminv1.User:
		users = []*adminv1.User{answer}
	case *adminv1.ListUsersResponse:
		users = answer.GetUsers()
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tROLE\tSCOPES\tDEFAULT_SCOPES\tCREATED")
	for _, u := range users {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", u.GetName(), u.GetRole(), orNone(u.GetAllowedScopes()), orNone(u.GetDefaultScopes()),
			u.GetCreateTime().AsTime().UTC().Format(time.RFC3339))
	}
	return w.Flush()
}

func orNone(items []string) string {
	if len(items) == 0 {
		return "-"
	}
	return strings.Join(items, " ")
}

func (a *adminCLI) serviceCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "service", Short: "Manage service accounts (client credentials)"}
	// withSecret prints a secret made by the server once, with the account;
	// in a table on standard output and a reminder on standard error.
	withSecret := func(cmd *cobra.Command) func(io.Writer, proto.Message) error {
		return func(w io.Writer, answer proto.Message) error {
			var secret string
			var account *adminv1.ServiceAccount
			switch answer := answer.(type) {
			case *adminv1.CreateServiceAccountResponse:
				secret, account = answer.GetClientSecret(), answer.GetServiceAccount()
			case *adminv1.RotateServiceAccountSecretResponse:
				secret, account = answer.GetClientSecret(), answer.GetServiceAccount()
			}
			fmt.Fprintf(w, "client_id: %s\nclient_secret: %s\n", account.GetClientId(), secret)
			if expires := account.GetPreviousSecretExpireTime(); expires != nil {
				fmt.Fprintf(w, "previous secret works until: %s\n", expires.AsTime().UTC().Format(time.RFC3339))
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "Store the secret now: it is not kept and cannot be shown again.")
			return nil
		}
	}

	var createScopes, createDefaults, createAudiences []string
	create := &cobra.Command{
		Use:     "create NAME [--scope S]... [--default-scope S]... [--audience A]...",
		Short:   "Create a service account and print its client id and secret once",
		Example: "  chit admin service create billing --scope inventory:read --default-scope inventory:read --audience inventory",
		Args:    cobra.ExactArgs(1),
	}
	create.RunE = func(cmd *cobra.Command, args []string) error {
		return a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
			return admin.CreateServiceAccount(ctx, &adminv1.CreateServiceAccountRequest{ClientId: args[0], AllowedScopes: createScopes,
				DefaultScopes: createDefaults, AllowedAudiences: createAudiences})
		}, withSecret(cmd))(cmd, args)
	}
	grantFlags(create, &createScopes, &createDefaults, &createAudiences)

	get := &cobra.Command{Use: "get NAME", Short: "Show a service account", Args: cobra.ExactArgs(1)}
	get.RunE = func(cmd *cobra.Command, args []string) error {
		return a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
			resp, err := admin.GetServiceAccount(ctx, &adminv1.GetServiceAccountRequest{ClientId: args[0]})
			return resp.GetServiceAccount(), err
		}, printServiceAccounts)(cmd, args)
	}

	var pageSize int32
	list := &cobra.Command{Use: "list", Short: "List service accounts by client id (every page)", Args: cobra.NoArgs}
	list.RunE = a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
		items, err := everyPage(func(token string) ([]*adminv1.ServiceAccount, string, error) {
			page, err := admin.ListServiceAccounts(ctx, &adminv1.ListServiceAccountsRequest{PageSize: pageSize, PageToken: token})
			return page.GetServiceAccounts(), page.GetNextPageToken(), err
		})
		return &adminv1.ListServiceAccountsResponse{ServiceAccounts: items}, err
	}, printServiceAccounts)
	list.Flags().Int32Var(&pageSize, "page-size", 0, "accounts fetched per call (default: the server's, 50)")

	var scopes, defaults, audiences []string
	setGrants := &cobra.Command{
		Use:     "set-grants NAME [--scope S]... [--default-scope S]... [--audience A]...",
		Short:   "Replace what a service account may obtain; if anything is removed, its access tokens issued before stop working",
		Example: "  chit admin service set-grants billing --scope inventory:read --audience inventory",
		Args:    cobra.ExactArgs(1),
	}
	setGrants.RunE = func(cmd *cobra.Command, args []string) error {
		return a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
			resp, err := admin.SetServiceAccountGrants(ctx, &adminv1.SetServiceAccountGrantsRequest{ClientId: args[0], AllowedScopes: scopes,
				DefaultScopes: defaults, AllowedAudiences: audiences})
			return resp.GetServiceAccount(), err
		}, printServiceAccounts)(cmd, args)
	}
	grantFlags(setGrants, &scopes, &defaults, &audiences)

	var overlap time.Duration
	rotate := &cobra.Command{
		Use:   "rotate-secret NAME [--overlap DURATION]",
		Short: "Give a service account a new secret and print it once",
		Long: `Give a service account a new secret. The secret it replaces keeps working for
--overlap (default none: it stops at once, as after a leak), so the services
that use it can move to the new one without a gap; at most 168h.`,
		Example: "  chit admin service rotate-secret billing --overlap 1h",
		Args:    cobra.ExactArgs(1),
	}
	rotate.RunE = func(cmd *cobra.Command, args []string) error {
		return a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
			return admin.RotateServiceAccountSecret(ctx, &adminv1.RotateServiceAccountSecretRequest{ClientId: args[0], Overlap: durationpb.New(overlap)})
		}, withSecret(cmd))(cmd, args)
	}
	rotate.Flags().DurationVar(&overlap, "overlap", 0, "how long the replaced secret keeps working")

	remove := &cobra.Command{Use: "delete NAME", Short: "Delete a service account; its secrets stop working", Args: cobra.ExactArgs(1)}
	remove.RunE = func(cmd *cobra.Command, args []string) error {
		return a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
			return admin.DeleteServiceAccount(ctx, &adminv1.DeleteServiceAccountRequest{ClientId: args[0]})
		}, func(w io.Writer, _ proto.Message) error {
			_, err := fmt.Fprintf(w, "deleted service %s\n", args[0])
			return err
		})(cmd, args)
	}

	cmd.AddCommand(create, get, list, setGrants, rotate, remove)
	return cmd
}

// grantFlags adds the --scope, --default-scope and --audience flags of
// chitd's service commands.
func grantFlags(cmd *cobra.Command, scopes, defaults, audiences *[]string) {
	cmd.Flags().StringArrayVar(scopes, "scope", nil, "a scope its tokens may carry (repeat for more)")
	cmd.Flags().StringArrayVar(defaults, "default-scope", nil, "a scope its tokens carry when none is asked for (repeat for more)")
	cmd.Flags().StringArrayVar(audiences, "audience", nil, "another service it may ask tokens for (repeat for more)")
}

// printServiceAccounts prints service accounts as the chitd command's table.
func printServiceAccounts(out io.Writer, answer proto.Message) error {
	var all []*adminv1.ServiceAccount
	switch answer := answer.(type) {
	case *adminv1.ServiceAccount:
		all = []*adminv1.ServiceAccount{answer}
	case *adminv1.ListServiceAccountsResponse:
		all = answer.GetServiceAccounts()
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CLIENT_ID\tSCOPES\tDEFAULT_SCOPES\tAUDIENCES\tCREATED")
	for _, s := range all {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.GetClientId(), orNone(s.GetAllowedScopes()), orNone(s.GetDefaultScopes()),
			orNone(s.GetAllowedAudiences()), s.GetCreateTime().AsTime().UTC().Format(time.RFC3339))
	}
	return w.Flush()
}

func (a *adminCLI) clientCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "client", Short: "Manage OAuth clients (apps people sign in through)"}
	printSecret := func(cmd *cobra.Command) func(io.Writer, proto.Message) error {
		return func(w io.Writer, answer proto.Message) error {
			var secret string
			var client *adminv1.Client
			switch answer := answer.(type) {
			case *adminv1.CreateClientResponse:
				secret, client = answer.GetClientSecret(), answer.GetClient()
			case *adminv1.RotateClientSecretResponse:
				secret, client = answer.GetClientSecret(), answer.GetClient()
			}
			fmt.Fprintf(w, "client_id: %s\n", client.GetClientId())
			if secret == "" {
				fmt.Fprintln(w, "public client: no secret; it must use PKCE")
				return nil
			}
			fmt.Fprintf(w, "client_secret: %s\n", secret)
			fmt.Fprintln(cmd.ErrOrStderr(), "Store the secret now: it is not kept and cannot be shown again.")
			return nil
		}
	}

	var redirectURIs, createScopes, createDefaults, createAudiences []string
	var confidential bool
	create := &cobra.Command{
		Use:     "create NAME --redirect-uri URI... [--confidential] [--scope S]... [--default-scope S]... [--audience A]...",
		Short:   "Register an OAuth client: its redirect URIs, whether it keeps a secret, and what may be obtained through it",
		Example: "  chit admin client create dashboard --redirect-uri https://dash.example.com/callback --confidential --scope openid --scope reports:read",
		Args:    cobra.ExactArgs(1),
	}
	create.RunE = func(cmd *cobra.Command, args []string) error {
		return a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
			return admin.CreateClient(ctx, &adminv1.CreateClientRequest{ClientId: args[0], RedirectUris: redirectURIs, Confidential: confidential,
				AllowedScopes: createScopes, DefaultScopes: createDefaults, AllowedAudiences: createAudiences})
		}, printSecret(cmd))(cmd, args)
	}
	create.Flags().StringArrayVar(&redirectURIs, "redirect-uri", nil, "a redirect URI (repeat for more); https, or http on a loopback IP")
	create.Flags().BoolVar(&confidential, "confidential", false, "the client keeps a secret (a server-side app); without it, a public client using PKCE")
	grantFlags(create, &createScopes, &createDefaults, &createAudiences)

	get := &cobra.Command{Use: "get NAME", Short: "Show a client", Args: cobra.ExactArgs(1)}
	get.RunE = func(cmd *cobra.Command, args []string) error {
		return a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
			resp, err := admin.GetClient(ctx, &adminv1.GetClientRequest{ClientId: args[0]})
			return resp.GetClient(), err
		}, printClients)(cmd, args)
	}

	var pageSize int32
	list := &cobra.Command{Use: "list", Short: "List clients by id (every page)", Args: cobra.NoArgs}
	list.RunE = a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
		items, err := everyPage(func(token string) ([]*adminv1.Client, string, error) {
			page, err := admin.ListClients(ctx, &adminv1.ListClientsRequest{PageSize: pageSize, PageToken: token})
			return page.GetClients(), page.GetNextPageToken(), err
		})
		return &adminv1.ListClientsResponse{Clients: items}, err
	}, printClients)
	list.Flags().Int32Var(&pageSize, "page-size", 0, "clients fetched per call (default: the server's, 50)")

	var scopes, defaults, audiences []string
	setGrants := &cobra.Command{
		Use:   "set-grants NAME [--scope S]... [--default-scope S]... [--audience A]...",
		Short: "Replace what may be obtained through a client; if anything is removed, tokens issued through it before stop working",
		Args:  cobra.ExactArgs(1),
	}
	setGrants.RunE = func(cmd *cobra.Command, args []string) error {
		return a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
			resp, err := admin.SetClientGrants(ctx, &adminv1.SetClientGrantsRequest{ClientId: args[0], AllowedScopes: scopes,
				DefaultScopes: defaults, AllowedAudiences: audiences})
			return resp.GetClient(), err
		}, printClients)(cmd, args)
	}
	grantFlags(setGrants, &scopes, &defaults, &audiences)

	rotate := &cobra.Command{
		Use:   "rotate-secret NAME",
		Short: "Give a confidential client a new secret and print it once; the old one stops at once",
		Args:  cobra.ExactArgs(1),
	}
	rotate.RunE = func(cmd *cobra.Command, args []string) error {
		return a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
			return admin.RotateClientSecret(ctx, &adminv1.RotateClientSecretRequest{ClientId: args[0]})
		}, printSecret(cmd))(cmd, args)
	}

	remove := &cobra.Command{Use: "delete NAME", Short: "Delete a client: logins through it end", Args: cobra.ExactArgs(1)}
	remove.RunE = func(cmd *cobra.Command, args []string) error {
		return a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
			return admin.DeleteClient(ctx, &adminv1.DeleteClientRequest{ClientId: args[0]})
		}, func(w io.Writer, _ proto.Message) error {
			_, err := fmt.Fprintf(w, "deleted client %s\n", args[0])
			return err
		})(cmd, args)
	}

	cmd.AddCommand(create, get, list, setGrants, rotate, remove)
	return cmd
}

// printClients prints clients as the chitd command's table.
func printClients(out io.Writer, answer proto.Message) error {
	var all []*adminv1.Client
	switch answer := answer.(type) {
	case *adminv1.Client:
		all = []*adminv1.Client{answer}
	case *adminv1.ListClientsResponse:
		all = answer.GetClients()
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTYPE\tREDIRECT_URIS\tSCOPES\tAUDIENCES\tCREATED")
	for _, c := range all {
		kind := "public"
		if c.GetConfidential() {
			kind = "confidential"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", c.GetClientId(), kind, orNone(c.GetRedirectUris()), orNone(c.GetAllowedScopes()),
			orNone(c.GetAllowedAudiences()), c.GetCreateTime().AsTime().UTC().Format(time.RFC3339))
	}
	return w.Flush()
}

func (a *adminCLI) providerCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "provider", Short: "Manage resource providers (AuthProviders)"}
	get := &cobra.Command{Use: "get ID", Short: "Show a provider", Args: cobra.ExactArgs(1)}
	get.RunE = func(cmd *cobra.Command, args []string) error {
		return a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
			resp, err := admin.GetProvider(ctx, &adminv1.GetProviderRequest{Id: args[0]})
			return resp.GetProvider(), err
		}, printProviders)(cmd, args)
	}
	list := &cobra.Command{Use: "list", Short: "List providers and whether they have been claimed (every page)", Args: cobra.NoArgs}
	list.RunE = a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
		items, err := everyPage(func(token string) ([]*adminv1.Provider, string, error) {
			page, err := admin.ListProviders(ctx, &adminv1.ListProvidersRequest{PageToken: token})
			return page.GetProviders(), page.GetNextPageToken(), err
		})
		return &adminv1.ListProvidersResponse{Providers: items}, err
	}, printProviders)
	remove := &cobra.Command{Use: "delete ID", Short: "Delete a provider; its refresh token and key stop working", Args: cobra.ExactArgs(1)}
	remove.RunE = func(cmd *cobra.Command, args []string) error {
		return a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
			return admin.DeleteProvider(ctx, &adminv1.DeleteProviderRequest{Id: args[0]})
		}, func(w io.Writer, _ proto.Message) error {
			_, err := fmt.Fprintf(w, "deleted provider %s\n", args[0])
			return err
		})(cmd, args)
	}
	cmd.AddCommand(get, list, remove)
	return cmd
}

func printProviders(out io.Writer, answer proto.Message) error {
	var all []*adminv1.Provider
	switch answer := answer.(type) {
	case *adminv1.Provider:
		all = []*adminv1.Provider{answer}
	case *adminv1.ListProvidersResponse:
		all = answer.GetProviders()
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tCLAIMED\tREGISTERED_BY\tKID\tCREATED")
	for _, p := range all {
		fmt.Fprintf(w, "%s\t%v\t%s\t%s\t%s\n", p.GetId(), p.GetClaimed(), orDash(p.GetRegisteredBy()), orDash(p.GetKeyId()), stamp(p.GetCreateTime()))
	}
	return w.Flush()
}

func (a *adminCLI) keysCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "List and rotate the server's signing keys"}
	list := &cobra.Command{Use: "list", Short: "List signing keys with their state (next, active, retired)", Args: cobra.NoArgs}
	list.RunE = a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
		items, err := everyPage(func(token string) ([]*adminv1.SigningKey, string, error) {
			page, err := admin.ListSigningKeys(ctx, &adminv1.ListSigningKeysRequest{PageToken: token})
			return page.GetSigningKeys(), page.GetNextPageToken(), err
		})
		return &adminv1.ListSigningKeysResponse{SigningKeys: items}, err
	}, printSigningKeys)
	var force bool
	rotate := &cobra.Command{
		Use:   "rotate [--force]",
		Short: "Activate the next key, retire the active one and publish a new next key",
		Long: `Activate the next signing key, retire the active one and publish a new next
key. The server that answers signs with the new key at once, the others within
30 seconds. The next key must have been published for at least 5 minutes (the
JWKS cache time), so that no verifier meets an unknown kid; --force skips that
check.`,
		Args: cobra.NoArgs,
	}
	rotate.RunE = a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
		return admin.RotateSigningKeys(ctx, &adminv1.RotateSigningKeysRequest{Force: force})
	}, printSigningKeys)
	rotate.Flags().BoolVar(&force, "force", false, "rotate even if the next key was published less than 5 minutes ago")
	cmd.AddCommand(list, rotate)
	return cmd
}

func printSigningKeys(out io.Writer, answer proto.Message) error {
	var all []*adminv1.SigningKey
	switch answer := answer.(type) {
	case *adminv1.ListSigningKeysResponse:
		all = answer.GetSigningKeys()
	case *adminv1.RotateSigningKeysResponse:
		all = answer.GetSigningKeys()
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KID\tALG\tSTATE\tCREATED\tACTIVATED\tRETIRED\tENCRYPTED")
	for _, k := range all {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%v\n", k.GetKeyId(), k.GetAlgorithm(), k.GetState(),
			stamp(k.GetCreateTime()), stamp(k.GetActivateTime()), stamp(k.GetRetireTime()), k.GetEncrypted())
	}
	return w.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// stamp is a time for a table: RFC 3339 in UTC, or "-" when unset.
func stamp(at *timestamppb.Timestamp) string {
	if at == nil {
		return "-"
	}
	return at.AsTime().UTC().Format(time.RFC3339)
}

func (a *adminCLI) loginCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "login", Short: "See and end the logins (refresh-token families) a subject holds"}
	list := &cobra.Command{Use: "list SUBJECT", Short: "List a subject's live logins (every page)", Args: cobra.ExactArgs(1)}
	list.RunE = func(cmd *cobra.Command, args []string) error {
		return a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
			items, err := everyPage(func(token string) ([]*adminv1.Login, string, error) {
				page, err := admin.ListLogins(ctx, &adminv1.ListLoginsRequest{Subject: args[0], PageToken: token})
				return page.GetLogins(), page.GetNextPageToken(), err
			})
			return &adminv1.ListLoginsResponse{Logins: items}, err
		}, printLogins)(cmd, args)
	}
	var all bool
	revoke := &cobra.Command{
		Use:   "revoke SUBJECT (LOGIN_ID | --all)",
		Short: "End one login of a subject, or all of them with --all",
		Long: `End one login of a subject (its id from chit admin login list), or all of them
with --all. Ids are random and may start with '-': put -- before such an id.`,
		Example: "  chit admin login revoke alice -- -Qx3...",
		Args:    cobra.RangeArgs(1, 2),
	}
	revoke.RunE = func(cmd *cobra.Command, args []string) error {
		if all == (len(args) == 2) {
			return errors.New("name one login id, or pass --all to end every login of the subject")
		}
		return a.run(func(ctx context.Context, admin adminv1.AdminServiceClient) (proto.Message, error) {
			if all {
				return admin.RevokeLogins(ctx, &adminv1.RevokeLoginsRequest{Subject: args[0]})
			}
			return admin.RevokeLogin(ctx, &adminv1.RevokeLoginRequest{Subject: args[0], LoginId: args[1]})
		}, func(w io.Writer, _ proto.Message) error {
			if all {
				_, err := fmt.Fprintf(w, "ended every login of %s\n", args[0])
				return err
			}
			_, err := fmt.Fprintf(w, "ended login %s of %s\n", args[1], args[0])
			return err
		})(cmd, args)
	}
	revoke.Flags().BoolVar(&all, "all", false, "end every login of the subject and refuse its access tokens issued before")
	cmd.AddCommand(list, revoke)
	return cmd
}

func printLogins(out io.Writer, answer proto.Message) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "LOGIN_ID\tCLIENT\tSCOPES\tLAST_REFRESH\tIDLE_EXPIRES\tEXPIRES")
	for _, l := range answer.(*adminv1.ListLoginsResponse).GetLogins() {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", l.GetLoginId(), orDash(l.GetClientId()), orNone(l.GetScopes()),
			stamp(l.GetRefreshTime()), stamp(l.GetIdleExpireTime()), stamp(l.GetExpireTime()))
	}
	return w.Flush()
}

// everyPage follows a list's next_page_token from the first page to the
// last and returns every item.
func everyPage[T any](page func(token string) (items []T, next string, err error)) ([]T, error) {
	var all []T
	for token := ""; ; {
		items, next, err := page(token)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		token = next
	}
}

func checkOutput(output string) error {
	if output != "table" && output != "json" {
		return fmt.Errorf("--output must be table or json, not %q", output)
	}
	return nil
}

// printAnswer prints a call's answer as output says: JSON with the proto
// field names, or print's table.
func printAnswer(w io.Writer, output string, answer proto.Message, print func(io.Writer, proto.Message) error) error {
	if output != "json" {
		return print(w, answer)
	}
	encoded, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}.Marshal(answer)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(encoded))
	return err
}
