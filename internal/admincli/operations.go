package admincli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
)

func (t *tree) providerCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "provider", Short: "Manage resource providers (AuthProviders)"}
	get := getCommand(t, "get ID", "Show a provider", func(ctx context.Context, admin adminv1.AdminServiceClient, id string) (*adminv1.Provider, error) {
		resp, err := admin.GetProvider(ctx, &adminv1.GetProviderRequest{Id: id})
		return resp.GetProvider(), err
	}, printProviders)
	list := listCommand(t, "list", "List providers and whether they have been claimed", cobra.NoArgs,
		func(ctx context.Context, admin adminv1.AdminServiceClient, _ []string, size int32, token string) ([]*adminv1.Provider, string, error) {
			page, err := admin.ListProviders(ctx, &adminv1.ListProvidersRequest{PageSize: size, PageToken: token})
			return page.GetProviders(), page.GetNextPageToken(), err
		}, func(all []*adminv1.Provider) *adminv1.ListProvidersResponse {
			return &adminv1.ListProvidersResponse{Providers: all}
		}, printProviders)
	remove := deleteCommand(t, "provider", "delete ID", "Delete a provider; its refresh token and key stop working at once",
		func(ctx context.Context, admin adminv1.AdminServiceClient, id string) (proto.Message, error) {
			return admin.DeleteProvider(ctx, &adminv1.DeleteProviderRequest{Id: id})
		})
	cmd.AddCommand(get, list, remove)
	return cmd
}

func (t *tree) keysCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "List and rotate the server's signing keys"}
	list := listCommand(t, "list", "List signing keys with their state (next, active, retired)", cobra.NoArgs,
		func(ctx context.Context, admin adminv1.AdminServiceClient, _ []string, size int32, token string) ([]*adminv1.SigningKey, string, error) {
			page, err := admin.ListSigningKeys(ctx, &adminv1.ListSigningKeysRequest{PageSize: size, PageToken: token})
			return page.GetSigningKeys(), page.GetNextPageToken(), err
		}, func(all []*adminv1.SigningKey) *adminv1.ListSigningKeysResponse {
			return &adminv1.ListSigningKeysResponse{SigningKeys: all}
		}, printSigningKeys)
	var force bool
	rotate := &cobra.Command{
		Use:   "rotate [--force]",
		Short: "Activate the next key, retire the active one and publish a new next key",
		Long: `Activate the next signing key, retire the active one and publish a new next
key. Running servers sign with the new key within 30 seconds (the one that
answers a chit admin call at once). The next key must have been published for
at least 5 minutes (the JWKS cache time), so that no verifier meets an unknown
kid; --force skips that check.`,
		Args: cobra.NoArgs,
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, _ []string) (*adminv1.RotateSigningKeysResponse, error) {
			return admin.RotateSigningKeys(ctx, &adminv1.RotateSigningKeysRequest{Force: force})
		}, func(_ *cobra.Command, w io.Writer, _ []string, rotated *adminv1.RotateSigningKeysResponse) error {
			fmt.Fprintln(w, "rotated: the former next key signs now; a new next key is published")
			return printSigningKeys(w, rotated.GetSigningKeys())
		}),
	}
	rotate.Flags().BoolVar(&force, "force", false, "rotate even if the next key was published less than 5 minutes ago")
	cmd.AddCommand(list, rotate)
	return cmd
}

func (t *tree) loginCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "login", Short: "See and end the logins (refresh-token families) a subject holds"}
	list := listCommand(t, "list SUBJECT", "List a subject's live logins", cobra.ExactArgs(1),
		func(ctx context.Context, admin adminv1.AdminServiceClient, args []string, size int32, token string) ([]*adminv1.Login, string, error) {
			page, err := admin.ListLogins(ctx, &adminv1.ListLoginsRequest{Subject: args[0], PageSize: size, PageToken: token})
			return page.GetLogins(), page.GetNextPageToken(), err
		}, func(all []*adminv1.Login) *adminv1.ListLoginsResponse {
			return &adminv1.ListLoginsResponse{Logins: all}
		}, printLogins)
	var all bool
	revoke := &cobra.Command{
		Use:   "revoke SUBJECT (LOGIN_ID | --all)",
		Short: "End one login of a subject, or all of them with --all",
		Long: `End one login of a subject (its id from login list), or all of them with
--all. Ids are random and may start with '-': put -- before such an id.`,
		Example: t.example("login revoke alice -- -Qx3..."),
		Args:    cobra.RangeArgs(1, 2),
	}
	revoke.RunE = func(cmd *cobra.Command, args []string) error {
		if all == (len(args) == 2) {
			return errors.New("name one login id, or pass --all to end every login of the subject")
		}
		return run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (proto.Message, error) {
			if all {
				return admin.RevokeLogins(ctx, &adminv1.RevokeLoginsRequest{Subject: args[0]})
			}
			return admin.RevokeLogin(ctx, &adminv1.RevokeLoginRequest{Subject: args[0], LoginId: args[1]})
		}, func(_ *cobra.Command, w io.Writer, args []string, _ proto.Message) error {
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

func (t *tree) sessionCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "session", Short: "See and end the sign-in sessions (signed-in browsers) of a user"}
	list := listCommand(t, "list USER", "List a user's live sign-in sessions", cobra.ExactArgs(1),
		func(ctx context.Context, admin adminv1.AdminServiceClient, args []string, size int32, token string) ([]*adminv1.Session, string, error) {
			page, err := admin.ListSessions(ctx, &adminv1.ListSessionsRequest{Name: args[0], PageSize: size, PageToken: token})
			return page.GetSessions(), page.GetNextPageToken(), err
		}, func(all []*adminv1.Session) *adminv1.ListSessionsResponse {
			return &adminv1.ListSessionsResponse{Sessions: all}
		}, printSessions)
	var all bool
	end := &cobra.Command{
		Use:   "end USER (SESSION_ID | --all)",
		Short: "End one sign-in session of a user, or all of them with --all",
		Long: `End one sign-in session of a user (its id from session list), or all of
them with --all: those browsers see the password form on their next sign-in.
The user's logins (refresh tokens) go on; login revoke --all ends those, and
the sessions with them. Ids are random and may start with '-': put -- before
such an id.`,
		Example: t.example("session end alice -- -Qx3..."),
		Args:    cobra.RangeArgs(1, 2),
	}
	end.RunE = func(cmd *cobra.Command, args []string) error {
		if all == (len(args) == 2) {
			return errors.New("name one session id, or pass --all to end every sign-in session of the user")
		}
		return run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.EndSessionsResponse, error) {
			req := &adminv1.EndSessionsRequest{Name: args[0]}
			if !all {
				req.SessionId = args[1]
			}
			return admin.EndSessions(ctx, req)
		}, func(_ *cobra.Command, w io.Writer, args []string, ended *adminv1.EndSessionsResponse) error {
			_, err := fmt.Fprintf(w, "ended %d sign-in session(s) of %s\n", ended.GetEnded(), args[0])
			return err
		})(cmd, args)
	}
	end.Flags().BoolVar(&all, "all", false, "end every sign-in session of the user")
	cmd.AddCommand(list, end)
	return cmd
}

func (t *tree) apiKeyCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "api-key", Short: "See and revoke the API keys of any person or service account"}
	list := listCommand(t, "list SUBJECT", "List a subject's API keys (never their secrets)", cobra.ExactArgs(1),
		func(ctx context.Context, admin adminv1.AdminServiceClient, args []string, size int32, token string) ([]*authv1.ApiKey, string, error) {
			page, err := admin.ListApiKeys(ctx, &adminv1.ListApiKeysRequest{Subject: args[0], PageSize: size, PageToken: token})
			return page.GetApiKeys(), page.GetNextPageToken(), err
		}, func(all []*authv1.ApiKey) *adminv1.ListApiKeysResponse {
			return &adminv1.ListApiKeysResponse{ApiKeys: all}
		}, PrintAPIKeys)
	revoke := &cobra.Command{Use: "revoke [--] ID", Short: "Revoke an API key; the tokens it gave stop working", Args: cobra.ExactArgs(1),
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.RevokeApiKeyResponse, error) {
			return admin.RevokeApiKey(ctx, &adminv1.RevokeApiKeyRequest{Id: args[0]})
		}, func(_ *cobra.Command, w io.Writer, args []string, _ *adminv1.RevokeApiKeyResponse) error {
			_, err := fmt.Fprintf(w, "revoked API key %s\n", args[0])
			return err
		})}
	cmd.AddCommand(list, revoke)
	return cmd
}
