package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/admincli"
	"github.com/chit-auth/chit/internal/clilogin"
)

// apiKeyCommand is `chit api-key`: the signed-in person's own API keys.
func (c *cli) apiKeyCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "api-key",
		Short: "Make, list and revoke your own API keys",
		Long: `API keys are long-lived credentials for scripts and CI: a program exchanges one
for a short-lived access token (Token with api_key_credential, or /oauth2/token
with grant_type urn:chit:params:oauth:grant-type:api-key). Making one needs a
recent sign-in (chit login within 10 minutes) whose token carries the key's
scopes: chit login --scope "openid offline_access reports:read", then
chit api-key create ci --scope reports:read.`,
	}
	cmd.PersistentFlags().StringVarP(&output, "output", "o", "table", "table or json")

	// call runs body with the AuthService and the stored login's token.
	call := func(cmd *cobra.Command, body func(ctx context.Context, auth authv1.AuthServiceClient) (proto.Message, error), print func(io.Writer, proto.Message) error) error {
		if err := admincli.CheckOutput(output); err != nil {
			return err
		}
		auth, ctx, done, err := c.session(cmd)
		if err != nil {
			return err
		}
		defer done()
		token, err := clilogin.ValidAccessToken(ctx, auth, c.credentialsPath, c.serverAddr, c.now())
		if err != nil {
			return c.explain(err)
		}
		answer, err := body(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), auth)
		if status.Code(err) == codes.PermissionDenied && strings.Contains(status.Convert(err).Message(), "recent sign-in") {
			return fmt.Errorf("%w; run chit login and try again", c.explain(err))
		}
		if err != nil {
			return c.explain(err)
		}
		return admincli.PrintAnswer(cmd.OutOrStdout(), output, answer, print)
	}

	var scopes []string
	var days int
	create := &cobra.Command{
		Use:     "create NAME [--scope S]... [--days N]",
		Short:   "Make an API key and print it once",
		Example: "  chit login && chit api-key create ci --scope reports:read --days 30",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if days < 1 || days > 365 {
				return errors.New("--days must be between 1 and 365")
			}
			return call(cmd, func(ctx context.Context, auth authv1.AuthServiceClient) (proto.Message, error) {
				return auth.CreateApiKey(ctx, &authv1.CreateApiKeyRequest{Name: args[0], Scopes: scopes,
					Ttl: durationpb.New(time.Duration(days) * 24 * time.Hour)})
			}, func(w io.Writer, answer proto.Message) error {
				created := answer.(*authv1.CreateApiKeyResponse)
				fmt.Fprintf(w, "id: %s\nkey: %s\nexpires: %s\n", created.GetApiKey().GetId(), created.GetKey(), admincli.Stamp(created.GetApiKey().GetExpireTime()))
				fmt.Fprintln(cmd.ErrOrStderr(), "Store the key now: it is not kept and cannot be shown again.")
				return nil
			})
		},
	}
	create.Flags().StringArrayVar(&scopes, "scope", nil, "a scope its tokens may carry, within your login's (repeat for more; default: your default scopes your login carries)")
	create.Flags().IntVar(&days, "days", 90, "how many days the key lasts (at most 365)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List your API keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, func(ctx context.Context, auth authv1.AuthServiceClient) (proto.Message, error) {
				items, err := admincli.EveryPage(func(token string) ([]*authv1.ApiKey, string, error) {
					page, err := auth.ListApiKeys(ctx, &authv1.ListApiKeysRequest{PageToken: token})
					return page.GetApiKeys(), page.GetNextPageToken(), err
				})
				return &authv1.ListApiKeysResponse{ApiKeys: items}, err
			}, func(w io.Writer, answer proto.Message) error {
				return admincli.PrintAPIKeys(w, answer.(*authv1.ListApiKeysResponse).GetApiKeys())
			})
		},
	}

	revoke := &cobra.Command{
		Use:   "revoke [--] ID",
		Short: "Revoke one of your API keys; the tokens it gave stop working",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, func(ctx context.Context, auth authv1.AuthServiceClient) (proto.Message, error) {
				return auth.RevokeApiKey(ctx, &authv1.RevokeApiKeyRequest{Id: args[0]})
			}, func(w io.Writer, _ proto.Message) error {
				_, err := fmt.Fprintf(w, "revoked API key %s\n", args[0])
				return err
			})
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
