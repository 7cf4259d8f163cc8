package grpcapi_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// The AuthService's grant answers, code and message: gRPC and REST (which
// calls it in process) dispatch to the grant table as /oauth2/token does,
// and encode its refusals as they always have.
func TestAuthServiceAnswersOfTheGrantTable(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	auth := authv1.NewAuthServiceClient(e.Conn)
	ctx := context.Background()
	call := func(rpc func() error) (codes.Code, string) {
		st, _ := status.FromError(rpc())
		return st.Code(), st.Message()
	}
	token := func(req *authv1.TokenRequest) func() error {
		return func() error { _, err := auth.Token(ctx, req); return err }
	}
	for _, tc := range []struct {
		name    string
		rpc     func() error
		code    codes.Code
		message string
	}{
		{"no credential", token(&authv1.TokenRequest{}), codes.InvalidArgument, "a credential is required: password_credential, client_credential, api_key_credential, federated_credential or token_exchange_credential"},
		{"client credentials without a client", token(servertest.ClientRequest("", "")), codes.InvalidArgument, "client_id and client_secret are required"},
		{"client credentials with a wrong secret", token(servertest.ClientRequest(servertest.ServiceName, "chit_cs_wrong")), codes.Unauthenticated, "invalid client credentials"},
		{"client credentials with a malformed scope", token(servertest.WithScope(servertest.ClientRequest(servertest.ServiceName, "chit_cs_wrong"), `a"b`)), codes.InvalidArgument,
			`scope "a\"b" contains a character not allowed in a scope`},
		{"a made-up API key", token(&authv1.TokenRequest{Credential: &authv1.TokenRequest_ApiKeyCredential{ApiKeyCredential: &authv1.ApiKeyCredential{ApiKey: "chit_ak_x"}}}),
			codes.Unauthenticated, "invalid API key"},
		{"a password without a username", token(servertest.PasswordRequest("", "wonderland")), codes.InvalidArgument, "username and password are required"},
		{"a refresh without its token", func() error { _, err := auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{}); return err },
			codes.InvalidArgument, "refresh_token is required"},
		{"a made-up refresh token", func() error {
			_, err := auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: "chit_rt_x"})
			return err
		}, codes.Unauthenticated, "refresh token is invalid"},
		{"the CLI's refresh without its token", func() error { _, err := auth.RefreshCli(ctx, &authv1.RefreshCliRequest{}); return err },
			codes.InvalidArgument, "refresh_token is required"},
		{"the CLI's login without its code", func() error { _, err := auth.LoginCli(ctx, &authv1.LoginCliRequest{}); return err },
			codes.InvalidArgument, "code and redirect_uri are required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, message := call(tc.rpc); code != tc.code || message != tc.message {
				t.Errorf("%s %q, want %s %q", code, message, tc.code, tc.message)
			}
		})
	}
}
