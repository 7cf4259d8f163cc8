package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/pkg/envflag"
	"github.com/chit-auth/chit/pkg/secretin"
)

func newRootCommand() *cobra.Command {
	var serverAddr string
	var timeout time.Duration
	root := &cobra.Command{
		Use:   "chit",
		Short: "Client for the Chit token server",
		Long: `chit gets access tokens from a Chit server over gRPC. Every flag can also be
set through the environment variable named in its help.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return envflag.Apply(cmd, "CHIT", envflag.LookupEnv)
		},
	}
	root.PersistentFlags().StringVar(&serverAddr, "server", "localhost:9090", "gRPC address of the Chit server")
	root.PersistentFlags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the server")

	var user, scope string
	var passwordStdin bool
	token := &cobra.Command{
		Use:     "token --user NAME --password-stdin",
		Short:   "Sign in with a password and print an access token",
		Example: "  printf '%s' \"$PASSWORD\" | chit token --user alice --password-stdin",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if user == "" {
				return errors.New("--user is required")
			}
			if !passwordStdin {
				return errors.New("pass the password on standard input with --password-stdin")
			}
			password, err := secretin.ReadLine(cmd.InOrStdin())
			if err != nil {
				return err
			}
			conn, err := grpc.NewClient(serverAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return fmt.Errorf("server address %q: %w", serverAddr, err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			resp, err := authv1.NewAuthServiceClient(conn).Token(ctx, &authv1.TokenRequest{
				Credential: &authv1.TokenRequest_PasswordCredential{PasswordCredential: &authv1.PasswordCredential{Username: user, Password: password}},
				Scope:      scope,
			})
			if err != nil {
				return explain(err, serverAddr)
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.GetAccessToken())
			return nil
		},
	}
	token.Flags().StringVar(&user, "user", "", "username to sign in as")
	token.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	token.Flags().StringVar(&scope, "scope", "", "space-separated scopes to request")
	root.AddCommand(token)
	envflag.Annotate(root, "CHIT")
	return root
}

// explain turns a gRPC error into a sentence for a person at a terminal.
func explain(err error, serverAddr string) error {
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("cannot reach the Chit server at %s (is it running? set --server or CHIT_SERVER)", serverAddr)
	case codes.DeadlineExceeded:
		return fmt.Errorf("the Chit server at %s did not answer in time", serverAddr)
	}
	return fmt.Errorf("%s (%s)", st.Message(), strings.ToLower(strings.ReplaceAll(st.Code().String(), "_", " ")))
}
