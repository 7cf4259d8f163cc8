package main

import (
	"context"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/metadata"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/admincli"
	"github.com/chit-auth/chit/internal/clilogin"
)

// adminCommand is `chit admin`: the Admin API's command tree (admincli),
// the one chitd mounts too, over gRPC with the stored login's access token.
func (c *cli) adminCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Manage a Chit server remotely (needs a login with the ADMIN role)",
		Long: `Manage what a Chit server knows through its Admin API, as the signed-in
person (chit login). The nouns and verbs are the chitd commands', which call
the same handlers in chitd's own process; every call is checked for the ADMIN
role and written to the server's audit log.`,
	}
	cmd.AddCommand(admincli.Commands(admincli.Config{Program: "chit admin", Connect: c.adminSession, Explain: c.explain})...)
	return cmd
}

// adminSession is a connection to the Admin API with the stored login's
// access token on every call, bounded by --timeout.
func (c *cli) adminSession(cmd *cobra.Command) (adminv1.AdminServiceClient, context.Context, func(), error) {
	conn, err := c.connect()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), c.timeout)
	done := func() { cancel(); conn.Close() }
	token, err := clilogin.ValidAccessToken(ctx, authv1.NewAuthServiceClient(conn), c.credentialsPath, c.serverAddr, c.now())
	if err != nil {
		done()
		return nil, nil, nil, c.explain(err)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	return adminv1.NewAdminServiceClient(conn), ctx, done, nil
}
