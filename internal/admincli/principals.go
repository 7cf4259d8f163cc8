package admincli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/envflag"
	"github.com/chit-auth/chit/internal/secretin"
)

// grantFlags are what an operator grants a principal: repeatable --scope,
// --default-scope and (for service accounts and clients) --audience. No
// environment variable sets them: CHIT_AUDIENCE is the server's own
// audience, and a grant taken from the environment would be one nobody
// typed.
type grantFlags struct {
	scopes, defaults, audiences []string
}

func (g *grantFlags) register(cmd *cobra.Command, withAudience bool, defaultScopes ...string) {
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

// exchangeFlags are a service account's token exchange policy.
type exchangeFlags struct {
	audiences     []string
	impersonation bool
}

func (e *exchangeFlags) register(cmd *cobra.Command) {
	flags := cmd.Flags()
	flags.StringSliceVar(&e.audiences, "allow-token-exchange", nil, "audiences it may exchange tokens addressed to it for (RFC 8693; comma-separated or repeated)")
	flags.BoolVar(&e.impersonation, "allow-impersonation", false, "its exchanged tokens carry no act claim naming it (impersonation, not delegation)")
	envflag.NoEnv(flags, "allow-token-exchange", "allow-impersonation")
}

// exchangeLine says what a service account may exchange for.
func exchangeLine(account *adminv1.ServiceAccount) string {
	audiences := account.GetTokenExchangeAudiences()
	switch {
	case len(audiences) == 0:
		return "none"
	case account.GetTokenExchangeImpersonation():
		return strings.Join(audiences, ",") + " (impersonation)"
	}
	return strings.Join(audiences, ",") + " (delegation)"
}

// grantsLine says what a principal may now obtain.
func grantsLine(allowed, defaults, audiences []string) string {
	text := "scopes: " + OrNone(allowed) + "; defaults: " + OrNone(defaults)
	if len(audiences) > 0 {
		text += "; audiences: " + strings.Join(audiences, " ")
	}
	return text
}

// profileFlags are what an operator says about a person: --email,
// --email-verified, --display-name and repeatable --group. On set-profile
// only the flags given change (the request's update_mask); an empty --group
// alone removes every group. No environment variable sets them, as for
// grants.
type profileFlags struct {
	email, displayName string
	emailVerified      bool
	groups             []string
}

func (p *profileFlags) register(cmd *cobra.Command) {
	flags := cmd.Flags()
	flags.StringVar(&p.email, "email", "", "their email address, the email claim (scope email)")
	flags.BoolVar(&p.emailVerified, "email-verified", false, "the address is known to be theirs: email_verified is true")
	flags.StringVar(&p.displayName, "display-name", "", "their full name, the name claim (scope profile)")
	flags.StringArrayVar(&p.groups, "group", nil, "a group they belong to, in the groups claim (scope groups; repeat for more)")
	envflag.NoEnv(flags, "email", "email-verified", "display-name", "group")
}

// groupList is --group as given, without the empty value that stands for
// no group at all.
func (p *profileFlags) groupList() []string {
	return slices.DeleteFunc(slices.Clone(p.groups), func(group string) bool { return group == "" })
}

// mask names the profile fields whose flags were given, in the API's names.
func (p *profileFlags) mask(cmd *cobra.Command) []string {
	var paths []string
	for flag, field := range map[string]string{"email": "email", "email-verified": "email_verified", "display-name": "display_name", "group": "groups"} {
		if cmd.Flags().Changed(flag) {
			paths = append(paths, field)
		}
	}
	slices.Sort(paths)
	return paths
}

// profileLine says what a person's tokens may say about them.
func profileLine(user *adminv1.User) string {
	email := OrDash(user.GetEmail())
	if user.GetEmailVerified() {
		email += " (verified)"
	}
	return "email: " + email + "; display name: " + OrDash(user.GetDisplayName()) + "; groups: " + OrNone(user.GetGroups())
}

func (t *tree) userCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage people who sign in with a password"}

	var passwordStdin bool
	var role string
	var createGrants grantFlags
	var createProfile profileFlags
	create := &cobra.Command{
		Use:   "create NAME --password-stdin [--role user|admin] [--scope S]... [--default-scope S]... [--email E [--email-verified]] [--display-name N] [--group G]...",
		Short: "Create a user; the password is read from standard input",
		Long: `Create a user. People may always obtain the OpenID Connect scopes (openid,
profile, email, groups, offline_access) through clients that allow them;
--scope grants more, and --default-scope names what a token carries when none
is asked for. --email, --display-name and --group are what their ID tokens and
userinfo say about them, as those scopes ask.`,
		Example: "  printf '%s' \"$PASSWORD\" |" + t.example("user create alice --password-stdin --scope reports:read --default-scope reports:read \\\n    --email alice@example.com --email-verified --display-name 'Alice Liddell' --group readers"),
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
		return run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.User, error) {
			resp, err := admin.CreateUser(ctx, &adminv1.CreateUserRequest{Name: args[0], Password: password, Role: strings.ToUpper(role),
				AllowedScopes: createGrants.scopes, DefaultScopes: createGrants.defaults,
				Email: createProfile.email, EmailVerified: createProfile.emailVerified, DisplayName: createProfile.displayName, Groups: createProfile.groupList()})
			return resp.GetUser(), err
		}, func(_ *cobra.Command, w io.Writer, _ []string, user *adminv1.User) error {
			_, err := fmt.Fprintf(w, "created user %s with role %s (%s; %s)\n", user.GetName(), user.GetRole(),
				grantsLine(user.GetAllowedScopes(), user.GetDefaultScopes(), nil), profileLine(user))
			return err
		})(cmd, args)
	}
	create.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	create.Flags().StringVar(&role, "role", "user", "user or admin")
	createGrants.register(create, false)
	createProfile.register(create)

	get := getCommand(t, "get NAME", "Show a user", func(ctx context.Context, admin adminv1.AdminServiceClient, name string) (*adminv1.User, error) {
		resp, err := admin.GetUser(ctx, &adminv1.GetUserRequest{Name: name})
		return resp.GetUser(), err
	}, printUsers)
	list := listCommand(t, "list", "List users by name", cobra.NoArgs,
		func(ctx context.Context, admin adminv1.AdminServiceClient, _ []string, size int32, token string) ([]*adminv1.User, string, error) {
			page, err := admin.ListUsers(ctx, &adminv1.ListUsersRequest{PageSize: size, PageToken: token})
			return page.GetUsers(), page.GetNextPageToken(), err
		}, func(users []*adminv1.User) *adminv1.ListUsersResponse {
			return &adminv1.ListUsersResponse{Users: users}
		}, printUsers)

	setRole := &cobra.Command{
		Use:   "set-role NAME user|admin",
		Short: "Change a user's role; their access tokens issued before stop working",
		Args:  cobra.ExactArgs(2),
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.User, error) {
			resp, err := admin.SetUserRole(ctx, &adminv1.SetUserRoleRequest{Name: args[0], Role: strings.ToUpper(args[1])})
			return resp.GetUser(), err
		}, func(_ *cobra.Command, w io.Writer, _ []string, user *adminv1.User) error {
			_, err := fmt.Fprintf(w, "user %s now has role %s\n", user.GetName(), user.GetRole())
			return err
		}),
	}

	var grants grantFlags
	setGrants := &cobra.Command{
		Use:     "set-grants NAME [--scope S]... [--default-scope S]...",
		Short:   "Replace the scopes a user may obtain; if any is removed, their access tokens issued before stop working",
		Example: t.example("user set-grants alice --scope reports:read --scope reports:write --default-scope reports:read"),
		Args:    cobra.ExactArgs(1),
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.User, error) {
			resp, err := admin.SetUserScopes(ctx, &adminv1.SetUserScopesRequest{Name: args[0], AllowedScopes: grants.scopes, DefaultScopes: grants.defaults})
			return resp.GetUser(), err
		}, func(_ *cobra.Command, w io.Writer, _ []string, user *adminv1.User) error {
			_, err := fmt.Fprintf(w, "user %s: %s\n", user.GetName(), grantsLine(user.GetAllowedScopes(), user.GetDefaultScopes(), nil))
			return err
		}),
	}
	grants.register(setGrants, false)

	var profile profileFlags
	setProfile := &cobra.Command{
		Use:   "set-profile NAME [--email E] [--email-verified[=false]] [--display-name N] [--group G]...",
		Short: "Change what a user's ID tokens and userinfo say about them; only the flags given change",
		Long: `Change a user's email, display name or groups. Only the flags given change:
--email '' or --display-name '' removes one, --group '' alone removes every
group, and --group replaces the groups with those given. A new --email is
unverified unless --email-verified is given too. Tokens issued before keep
what they said; userinfo and the next ID token say the new values.`,
		Example: t.example("user set-profile alice --email alice@example.org --email-verified --group readers --group writers"),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			paths := profile.mask(cmd)
			if len(paths) == 0 {
				return errors.New("give at least one of --email, --email-verified, --display-name, --group")
			}
			return run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.User, error) {
				resp, err := admin.SetUserProfile(ctx, &adminv1.SetUserProfileRequest{Name: args[0], Email: profile.email, EmailVerified: profile.emailVerified,
					DisplayName: profile.displayName, Groups: profile.groupList(), UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}})
				return resp.GetUser(), err
			}, func(_ *cobra.Command, w io.Writer, _ []string, user *adminv1.User) error {
				_, err := fmt.Fprintf(w, "user %s: %s\n", user.GetName(), profileLine(user))
				return err
			})(cmd, args)
		},
	}
	profile.register(setProfile)

	remove := deleteCommand(t, "user", "delete NAME", "Delete a user: their logins end and their access tokens stop working",
		func(ctx context.Context, admin adminv1.AdminServiceClient, name string) (proto.Message, error) {
			return admin.DeleteUser(ctx, &adminv1.DeleteUserRequest{Name: name})
		})
	cmd.AddCommand(create, get, list, setRole, setGrants, setProfile, remove)
	return cmd
}

// printSecret prints a secret the server made, once: with the client id on
// standard output (the secret last, alone on its line) and a reminder on
// standard error.
func printSecret(cmd *cobra.Command, w io.Writer, clientID, secret string, previousUntil string) error {
	fmt.Fprintf(w, "client_id: %s\n", clientID)
	if previousUntil != "" {
		fmt.Fprintf(w, "previous secret works until: %s\n", previousUntil)
	}
	_, err := fmt.Fprintf(w, "client_secret: %s\n", secret)
	fmt.Fprintln(cmd.ErrOrStderr(), "Store the secret now: it is not kept and cannot be shown again.")
	return err
}

func (t *tree) serviceCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "service", Short: "Manage service accounts (client credentials)"}
	printAccountSecret := func(cmd *cobra.Command, w io.Writer, account *adminv1.ServiceAccount, secret string) error {
		until := ""
		if expires := account.GetPreviousSecretExpireTime(); expires != nil {
			until = Stamp(expires)
		}
		return printSecret(cmd, w, account.GetClientId(), secret, until)
	}

	var createGrants grantFlags
	var createExchange exchangeFlags
	var createDPoP bool
	create := &cobra.Command{
		Use:   "create NAME [--scope S]... [--default-scope S]... [--audience A]... [--allow-token-exchange AUD[,AUD]] [--allow-impersonation] [--require-dpop]",
		Short: "Create a service account and print its client id and secret once",
		Long: `Create a service account. Its tokens have the subject service:NAME and carry
only scopes granted with --scope; --audience lets it ask for tokens minted for
another service (the audience field of Token, resource on /oauth2/token).
--allow-token-exchange lets it exchange tokens addressed to it (aud NAME) for
tokens addressed to those audiences (RFC 8693); their act claim names it,
unless --allow-impersonation. With --require-dpop its tokens are issued only
with a DPoP proof (RFC 9449) and bound to its key.`,
		Example: t.example("service create billing --scope inventory:read --default-scope inventory:read --audience inventory"),
		Args:    cobra.ExactArgs(1),
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.CreateServiceAccountResponse, error) {
			return admin.CreateServiceAccount(ctx, &adminv1.CreateServiceAccountRequest{ClientId: args[0], AllowedScopes: createGrants.scopes,
				DefaultScopes: createGrants.defaults, AllowedAudiences: createGrants.audiences,
				TokenExchangeAudiences: createExchange.audiences, TokenExchangeImpersonation: createExchange.impersonation,
				RequireDpop: createDPoP})
		}, func(cmd *cobra.Command, w io.Writer, _ []string, created *adminv1.CreateServiceAccountResponse) error {
			return printAccountSecret(cmd, w, created.GetServiceAccount(), created.GetClientSecret())
		}),
	}
	createGrants.register(create, true)
	createExchange.register(create)
	create.Flags().BoolVar(&createDPoP, requireDPoPFlag, false, requireDPoPUsage)
	envflag.NoEnv(create.Flags(), requireDPoPFlag)

	get := getCommand(t, "get NAME", "Show a service account", func(ctx context.Context, admin adminv1.AdminServiceClient, id string) (*adminv1.ServiceAccount, error) {
		resp, err := admin.GetServiceAccount(ctx, &adminv1.GetServiceAccountRequest{ClientId: id})
		return resp.GetServiceAccount(), err
	}, printServiceAccounts)
	list := listCommand(t, "list", "List service accounts by client id", cobra.NoArgs,
		func(ctx context.Context, admin adminv1.AdminServiceClient, _ []string, size int32, token string) ([]*adminv1.ServiceAccount, string, error) {
			page, err := admin.ListServiceAccounts(ctx, &adminv1.ListServiceAccountsRequest{PageSize: size, PageToken: token})
			return page.GetServiceAccounts(), page.GetNextPageToken(), err
		}, func(all []*adminv1.ServiceAccount) *adminv1.ListServiceAccountsResponse {
			return &adminv1.ListServiceAccountsResponse{ServiceAccounts: all}
		}, printServiceAccounts)

	var grants grantFlags
	setGrants := &cobra.Command{
		Use:     "set-grants NAME [--scope S]... [--default-scope S]... [--audience A]...",
		Short:   "Replace what a service account may obtain; if anything is removed, its access tokens issued before stop working",
		Example: t.example("service set-grants billing --scope inventory:read --audience inventory"),
		Args:    cobra.ExactArgs(1),
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.ServiceAccount, error) {
			resp, err := admin.SetServiceAccountGrants(ctx, &adminv1.SetServiceAccountGrantsRequest{ClientId: args[0], AllowedScopes: grants.scopes,
				DefaultScopes: grants.defaults, AllowedAudiences: grants.audiences})
			return resp.GetServiceAccount(), err
		}, func(_ *cobra.Command, w io.Writer, _ []string, account *adminv1.ServiceAccount) error {
			_, err := fmt.Fprintf(w, "service %s: %s\n", account.GetClientId(), grantsLine(account.GetAllowedScopes(), account.GetDefaultScopes(), account.GetAllowedAudiences()))
			return err
		}),
	}
	grants.register(setGrants, true)

	var exchange exchangeFlags
	setExchange := &cobra.Command{
		Use:   "set-token-exchange NAME [--allow-token-exchange AUD[,AUD]] [--allow-impersonation]",
		Short: "Replace the audiences a service account may exchange tokens for (RFC 8693); none ends its exchanges",
		Long: `Replace a service account's token exchange policy: the audiences it may
exchange tokens addressed to it for, and whether it impersonates (its tokens
then carry no act claim naming it). Without --allow-token-exchange it may no
longer exchange. If anything is removed, or impersonation changes, the tokens
it obtained before (exchanged, and its own) stop working.`,
		Example: t.example("service set-token-exchange gateway --allow-token-exchange inventory,ledger"),
		Args:    cobra.ExactArgs(1),
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.ServiceAccount, error) {
			resp, err := admin.SetServiceAccountTokenExchange(ctx, &adminv1.SetServiceAccountTokenExchangeRequest{ClientId: args[0],
				TokenExchangeAudiences: exchange.audiences, TokenExchangeImpersonation: exchange.impersonation})
			return resp.GetServiceAccount(), err
		}, func(_ *cobra.Command, w io.Writer, _ []string, account *adminv1.ServiceAccount) error {
			_, err := fmt.Fprintf(w, "service %s: token exchange %s\n", account.GetClientId(), exchangeLine(account))
			return err
		}),
	}
	exchange.register(setExchange)

	var requireDPoP bool
	setDPoP := &cobra.Command{
		Use:   "set-dpop NAME --require=true|false",
		Short: "Say whether a service account's tokens are issued only with a DPoP proof (RFC 9449) and bound to its key",
		Long: `Say whether a service account's tokens are issued only with a DPoP proof
(RFC 9449) and bound to its key: with --require=true a client credentials
request without a valid DPoP proof is refused, and its access tokens name the
proof's key (cnf.jkt), so a stolen token is of no use without the private key.
--require=false goes back to bearer tokens. Token requests from then on follow
it; tokens issued before keep working until they expire.`,
		Example: t.example("service set-dpop billing --require=true"),
		Args:    cobra.ExactArgs(1),
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.ServiceAccount, error) {
			resp, err := admin.SetServiceAccountDpop(ctx, &adminv1.SetServiceAccountDpopRequest{ClientId: args[0], RequireDpop: requireDPoP})
			return resp.GetServiceAccount(), err
		}, func(_ *cobra.Command, w io.Writer, _ []string, account *adminv1.ServiceAccount) error {
			_, err := fmt.Fprintf(w, "service %s: require DPoP %t\n", account.GetClientId(), account.GetRequireDpop())
			return err
		}),
	}
	setDPoP.Flags().BoolVar(&requireDPoP, "require", false, requireDPoPUsage)
	envflag.NoEnv(setDPoP.Flags(), "require")
	// Either way is a choice to write out: a bare set-dpop must not turn
	// the requirement off.
	_ = setDPoP.MarkFlagRequired("require")

	var overlap time.Duration
	rotate := &cobra.Command{
		Use:   "rotate-secret NAME [--overlap DURATION]",
		Short: "Give a service account a new secret and print it once",
		Long: `Give a service account a new secret. The secret it replaces keeps working for
--overlap (default none: it stops at once, as after a leak), so the services
that use it can move to the new one without a gap; at most 168h.`,
		Example: t.example("service rotate-secret billing --overlap 1h"),
		Args:    cobra.ExactArgs(1),
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.RotateServiceAccountSecretResponse, error) {
			return admin.RotateServiceAccountSecret(ctx, &adminv1.RotateServiceAccountSecretRequest{ClientId: args[0], Overlap: durationpb.New(overlap)})
		}, func(cmd *cobra.Command, w io.Writer, _ []string, rotated *adminv1.RotateServiceAccountSecretResponse) error {
			return printAccountSecret(cmd, w, rotated.GetServiceAccount(), rotated.GetClientSecret())
		}),
	}
	rotate.Flags().DurationVar(&overlap, "overlap", 0, "how long the replaced secret keeps working")

	remove := deleteCommand(t, "service", "delete NAME", "Delete a service account; its secrets stop working",
		func(ctx context.Context, admin adminv1.AdminServiceClient, id string) (proto.Message, error) {
			return admin.DeleteServiceAccount(ctx, &adminv1.DeleteServiceAccountRequest{ClientId: id})
		})
	cmd.AddCommand(create, get, list, setGrants, setExchange, setDPoP, rotate, remove)
	return cmd
}

const originFlagUsage = "a browser origin whose pages may call the token, revoke and userinfo endpoints (CORS), as the browser sends it: https://host[:port], or http on localhost or a loopback IP (repeat for more)"

func (t *tree) clientCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "client", Short: "Manage OAuth clients of the sign-in page and /oauth2/token"}

	var redirectURIs, createOrigins []string
	var createLogout logoutFlags
	var confidential, createDevice, createDPoP bool
	var createPKCE, createIDTokenAlg string
	var createGrants grantFlags
	create := &cobra.Command{
		Use:   "create NAME --redirect-uri URI... [--confidential [--pkce optional]] [--allowed-origin O]... [--id-token-signed-response-alg RS256] [--device-authorization] [--require-dpop] [--post-logout-redirect-uri URI]... [--backchannel-logout-uri URI] [--scope S]... [--default-scope S]... [--audience A]...",
		Short: "Register an OAuth client: its redirect URIs, whether it keeps a secret, and what may be obtained through it",
		Long: `Register an OAuth client. A public client (the default: browser and native apps)
has no secret and must use PKCE; a --confidential client gets a secret, printed
once, and authenticates with client_secret_basic or client_secret_post. A
confidential client uses PKCE too unless registered with --pkce optional (for
applications that send no code challenge, such as oauth2-proxy by default).
A loopback redirect URI (http://127.0.0.1, http://[::1] or http://localhost)
matches any port (RFC 8252). --id-token-signed-response-alg RS256 signs the
client's ID tokens with RS256 (for relying parties that verify nothing else);
by default they are signed with the server's --signing-algorithm.
--device-authorization allows the client the device flow (RFC 8628: a device
without a browser shows a code the person enters on /oauth2/device).
--require-dpop issues the client tokens only with a DPoP proof (RFC 9449),
bound to its key. What a person obtains through a client is within
both the person's and the client's scopes. Chit's own clients (chit-api,
chit-cli) need no registration.`,
		Example: t.example("client create dashboard --redirect-uri https://dash.example.com/callback --confidential \\\n    --scope openid --scope offline_access --scope reports:read"),
		Args:    cobra.ExactArgs(1),
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.CreateClientResponse, error) {
			return admin.CreateClient(ctx, &adminv1.CreateClientRequest{ClientId: args[0], RedirectUris: redirectURIs, Confidential: confidential,
				AllowedScopes: createGrants.scopes, DefaultScopes: createGrants.defaults, AllowedAudiences: createGrants.audiences, Pkce: createPKCE,
				AllowedOrigins: createOrigins, IdTokenSignedResponseAlg: createIDTokenAlg, PostLogoutRedirectUris: createLogout.postLogoutRedirectURIs,
				BackchannelLogoutUri: createLogout.backchannelLogoutURI, LogoutRevokesRefreshTokens: createLogout.revokesRefreshTokens,
				DeviceAuthorization: createDevice, RequireDpop: createDPoP})
		}, func(cmd *cobra.Command, w io.Writer, _ []string, created *adminv1.CreateClientResponse) error {
			if created.GetClientSecret() == "" {
				_, err := fmt.Fprintf(w, "created public client %s: no secret; it must use PKCE\n", created.GetClient().GetClientId())
				return err
			}
			return printSecret(cmd, w, created.GetClient().GetClientId(), created.GetClientSecret(), "")
		}),
	}
	create.Flags().StringArrayVar(&redirectURIs, "redirect-uri", nil, "a redirect URI (repeat for more); https, or http on a loopback IP")
	create.Flags().BoolVar(&confidential, "confidential", false, "the client keeps a secret (a server-side app): print one")
	create.Flags().StringArrayVar(&createOrigins, "allowed-origin", nil, originFlagUsage)
	create.Flags().StringVar(&createPKCE, "pkce", "required", pkceUsage)
	create.Flags().StringVar(&createIDTokenAlg, idTokenAlgFlag, "", idTokenAlgUsage)
	create.Flags().BoolVar(&createDevice, deviceFlag, false, deviceUsage)
	create.Flags().BoolVar(&createDPoP, requireDPoPFlag, false, requireDPoPUsage)
	// People sign in through a client for the OpenID Connect scopes
	// (accounts.PersonScopes) unless told otherwise.
	createGrants.register(create, true, "openid", "profile", "offline_access")
	createLogout.register(create)
	envflag.NoEnv(create.Flags(), "redirect-uri", "confidential", "pkce", "allowed-origin", idTokenAlgFlag, deviceFlag, requireDPoPFlag)

	var updatePKCE, updateIDTokenAlg string
	var updateDevice, updateDPoP bool
	var update *cobra.Command
	update = &cobra.Command{
		Use:   "update NAME [--pkce required|optional] [--id-token-signed-response-alg ALG] [--device-authorization=true|false] [--require-dpop=true|false]",
		Short: "Change a client's settings; those not given keep their value",
		Long: `Change a client's settings; those not given keep their value. --pkce optional
lets a confidential client sign people in without PKCE (a public client always
uses it); --id-token-signed-response-alg changes the algorithm of its ID tokens
(name the server's own algorithm to go back to it); --device-authorization
allows (=true) or refuses (=false) the client the device flow; --require-dpop=true
issues its tokens only with a DPoP proof (RFC 9449), bound to its key, and
=false goes back to bearer tokens. Requests from then on follow the new
settings.`,
		Example: t.example("client update proxy --pkce optional\nclient update kubelogin --id-token-signed-response-alg RS256"),
		Args:    cobra.ExactArgs(1),
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.Client, error) {
			req := &adminv1.UpdateClientRequest{ClientId: args[0], Pkce: updatePKCE, IdTokenSignedResponseAlg: updateIDTokenAlg}
			if update.Flags().Changed(deviceFlag) {
				req.DeviceAuthorization = &updateDevice
			}
			if update.Flags().Changed(requireDPoPFlag) {
				req.RequireDpop = &updateDPoP
			}
			resp, err := admin.UpdateClient(ctx, req)
			return resp.GetClient(), err
		}, func(_ *cobra.Command, w io.Writer, _ []string, client *adminv1.Client) error {
			_, err := fmt.Fprintf(w, "client %s: pkce %s, ID tokens signed %s, device authorization %t, require DPoP %t\n", client.GetClientId(), client.GetPkce(),
				orServerAlgorithm(client.GetIdTokenSignedResponseAlg()), client.GetDeviceAuthorization(), client.GetRequireDpop())
			return err
		}),
	}
	update.Flags().StringVar(&updatePKCE, "pkce", "", pkceUsage)
	update.Flags().StringVar(&updateIDTokenAlg, idTokenAlgFlag, "", idTokenAlgUsage+"; empty keeps it")
	update.Flags().BoolVar(&updateDevice, deviceFlag, false, deviceUsage+"; not given keeps it")
	update.Flags().BoolVar(&updateDPoP, requireDPoPFlag, false, requireDPoPUsage+"; not given keeps it")
	envflag.NoEnv(update.Flags(), "pkce", idTokenAlgFlag, deviceFlag, requireDPoPFlag)

	get := getCommand(t, "get NAME", "Show a client", func(ctx context.Context, admin adminv1.AdminServiceClient, id string) (*adminv1.Client, error) {
		resp, err := admin.GetClient(ctx, &adminv1.GetClientRequest{ClientId: id})
		return resp.GetClient(), err
	}, printClients)
	list := listCommand(t, "list", "List registered clients by client id", cobra.NoArgs,
		func(ctx context.Context, admin adminv1.AdminServiceClient, _ []string, size int32, token string) ([]*adminv1.Client, string, error) {
			page, err := admin.ListClients(ctx, &adminv1.ListClientsRequest{PageSize: size, PageToken: token})
			return page.GetClients(), page.GetNextPageToken(), err
		}, func(all []*adminv1.Client) *adminv1.ListClientsResponse {
			return &adminv1.ListClientsResponse{Clients: all}
		}, printClients)

	var grants grantFlags
	setGrants := &cobra.Command{
		Use:     "set-grants NAME [--scope S]... [--default-scope S]... [--audience A]...",
		Short:   "Replace what may be obtained through a client; if anything is removed, tokens issued through it before stop working",
		Example: t.example("client set-grants dashboard --scope openid --scope reports:read"),
		Args:    cobra.ExactArgs(1),
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.Client, error) {
			resp, err := admin.SetClientGrants(ctx, &adminv1.SetClientGrantsRequest{ClientId: args[0], AllowedScopes: grants.scopes,
				DefaultScopes: grants.defaults, AllowedAudiences: grants.audiences})
			return resp.GetClient(), err
		}, func(_ *cobra.Command, w io.Writer, _ []string, client *adminv1.Client) error {
			_, err := fmt.Fprintf(w, "client %s: %s\n", client.GetClientId(), grantsLine(client.GetAllowedScopes(), client.GetDefaultScopes(), client.GetAllowedAudiences()))
			return err
		}),
	}
	grants.register(setGrants, true)

	rotate := &cobra.Command{
		Use:   "rotate-secret NAME",
		Short: "Give a confidential client a new secret and print it once; the old one stops at once",
		Args:  cobra.ExactArgs(1),
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.RotateClientSecretResponse, error) {
			return admin.RotateClientSecret(ctx, &adminv1.RotateClientSecretRequest{ClientId: args[0]})
		}, func(cmd *cobra.Command, w io.Writer, _ []string, rotated *adminv1.RotateClientSecretResponse) error {
			return printSecret(cmd, w, rotated.GetClient().GetClientId(), rotated.GetClientSecret(), "")
		}),
	}

	var origins []string
	setOrigins := &cobra.Command{
		Use:     "set-origins NAME [--allowed-origin O]...",
		Short:   "Replace the browser origins whose pages may call the token, revoke and userinfo endpoints (CORS); none removes them",
		Example: t.example("client set-origins spa --allowed-origin https://app.example.com --allowed-origin http://localhost:5173"),
		Args:    cobra.ExactArgs(1),
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.Client, error) {
			resp, err := admin.SetClientOrigins(ctx, &adminv1.SetClientOriginsRequest{ClientId: args[0], AllowedOrigins: origins})
			return resp.GetClient(), err
		}, func(_ *cobra.Command, w io.Writer, _ []string, client *adminv1.Client) error {
			_, err := fmt.Fprintf(w, "client %s: origins %s\n", client.GetClientId(), OrNone(client.GetAllowedOrigins()))
			return err
		}),
	}
	setOrigins.Flags().StringArrayVar(&origins, "allowed-origin", nil, originFlagUsage)
	envflag.NoEnv(setOrigins.Flags(), "allowed-origin")

	var logout logoutFlags
	setLogout := &cobra.Command{
		Use:   "set-logout NAME [--post-logout-redirect-uri URI]... [--backchannel-logout-uri URI] [--logout-revokes-refresh-tokens]",
		Short: "Replace how a client takes part in logout; a setting not given is cleared",
		Long: `Replace how a client takes part in logout (OpenID Connect RP-Initiated Logout
1.0 and Back-Channel Logout 1.0): the URIs /oauth2/logout may send the browser
back to (exact match), the URI Chit POSTs logout tokens to, and whether a
logout also revokes the refresh tokens the person holds through the client.
Every setting is replaced: one not given is cleared.`,
		Example: t.example("client set-logout dashboard --post-logout-redirect-uri https://dash.example.com/signed-out \\\n    --backchannel-logout-uri https://dash.example.com/backchannel-logout --logout-revokes-refresh-tokens"),
		Args:    cobra.ExactArgs(1),
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.Client, error) {
			resp, err := admin.SetClientLogout(ctx, &adminv1.SetClientLogoutRequest{ClientId: args[0], PostLogoutRedirectUris: logout.postLogoutRedirectURIs,
				BackchannelLogoutUri: logout.backchannelLogoutURI, LogoutRevokesRefreshTokens: logout.revokesRefreshTokens})
			return resp.GetClient(), err
		}, func(_ *cobra.Command, w io.Writer, _ []string, client *adminv1.Client) error {
			_, err := fmt.Fprintf(w, "client %s: post-logout redirect URIs %s, back-channel logout URI %s, logout revokes refresh tokens: %t\n",
				client.GetClientId(), OrNone(client.GetPostLogoutRedirectUris()), OrDash(client.GetBackchannelLogoutUri()), client.GetLogoutRevokesRefreshTokens())
			return err
		}),
	}
	logout.register(setLogout)

	remove := deleteCommand(t, "client", "delete NAME", "Delete a client; its sign-ins, refresh tokens and access tokens stop working",
		func(ctx context.Context, admin adminv1.AdminServiceClient, id string) (proto.Message, error) {
			return admin.DeleteClient(ctx, &adminv1.DeleteClientRequest{ClientId: id})
		})
	cmd.AddCommand(create, get, list, update, setGrants, setOrigins, setLogout, rotate, remove)
	return cmd
}

// idTokenAlgFlag is the client's id_token_signed_response_alg, by the name
// of OIDC Dynamic Client Registration §2.
const (
	deviceFlag      = "device-authorization"
	deviceUsage     = "allow the client the device authorization grant (RFC 8628)"
	requireDPoPFlag = "require-dpop"
	// requireDPoPUsage is RFC 9449 §5.2.1's dpop_bound_access_tokens.
	requireDPoPUsage = "tokens are issued only with a DPoP proof (RFC 9449) and bound to its key"
	idTokenAlgFlag   = "id-token-signed-response-alg"
	idTokenAlgUsage  = "the algorithm of its ID tokens: the server's --signing-algorithm (the default) or RS256"
)

// orServerAlgorithm names an empty id_token_signed_response_alg.
func orServerAlgorithm(alg string) string {
	if alg == "" {
		return "with the server's algorithm"
	}
	return alg
}

// logoutFlags are a client's logout settings (client create, set-logout).
type logoutFlags struct {
	postLogoutRedirectURIs []string
	backchannelLogoutURI   string
	revokesRefreshTokens   bool
}

func (f *logoutFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&f.postLogoutRedirectURIs, "post-logout-redirect-uri", nil,
		"where /oauth2/logout may send the browser back after a logout the client asked for (repeat for more); exact match, https or http on a loopback host")
	cmd.Flags().StringVar(&f.backchannelLogoutURI, "backchannel-logout-uri", "",
		"where Chit POSTs a logout token when a session the client took part in ends (OpenID Connect Back-Channel Logout); https or http on a loopback host")
	cmd.Flags().BoolVar(&f.revokesRefreshTokens, "logout-revokes-refresh-tokens", false,
		"a logout also revokes the refresh tokens the person holds through the client (by default they outlive the browser session)")
	envflag.NoEnv(cmd.Flags(), "post-logout-redirect-uri", "backchannel-logout-uri", "logout-revokes-refresh-tokens")
}

// pkceUsage describes --pkce.
const pkceUsage = "required, or optional: a confidential client may sign people in without PKCE"
