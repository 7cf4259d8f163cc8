package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/pkg/server/servertest"
)

func run(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCommand()
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestTokenPrintsAWorkingAccessToken(t *testing.T) {
	e := servertest.Start(t)
	out, err := run(t, servertest.UserPassword+"\n", "token", "--server", e.Server.GRPCAddr(), "--user", servertest.UserName, "--password-stdin")
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(out)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	claims, err := authv1.NewAuthServiceClient(e.Conn).CheckToken(ctx, &authv1.CheckTokenRequest{})
	if err != nil || claims.GetSubject() != servertest.UserName {
		t.Fatalf("printed token %q: %v, %v", token, claims, err)
	}
}

func TestTokenErrorsAreReadable(t *testing.T) {
	e := servertest.Start(t)
	_, err := run(t, "wrong password\n", "token", "--server", e.Server.GRPCAddr(), "--user", servertest.UserName, "--password-stdin")
	if err == nil || !strings.Contains(err.Error(), "invalid username or password") {
		t.Fatalf("wrong password: %v", err)
	}
	// A port nothing listens on: the listener of a stopped test server is gone,
	// so use the reserved port 1 on loopback.
	_, err = run(t, "pw\n", "token", "--server", "127.0.0.1:1", "--user", "alice", "--password-stdin", "--timeout", "5s")
	if err == nil || !strings.Contains(err.Error(), "cannot reach the Chit server") {
		t.Fatalf("unreachable server: %v", err)
	}
	_, err = run(t, "", "token", "--user", "alice")
	if err == nil || !strings.Contains(err.Error(), "--password-stdin") {
		t.Fatalf("missing --password-stdin: %v", err)
	}
}
