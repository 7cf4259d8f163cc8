package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
)

// A server on --db memory: starts with the admin its environment names,
// signs in and rotates like any other, and forgets everything when it
// exits.
func TestMemoryStoreServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts chitd twice")
	}
	binary := buildChitd(t)
	ctx := context.Background()
	signIn := func(r *replica) (*authv1.TokenResponse, error) {
		return r.auth.Token(ctx, &authv1.TokenRequest{Credential: &authv1.TokenRequest_PasswordCredential{
			PasswordCredential: &authv1.PasswordCredential{Username: "admin", Password: "dev-password"}}})
	}

	t.Setenv(DevAdminPasswordEnv, "dev-password")
	server := startServer(t, binary, "--db", MemoryStore)
	grant, err := signIn(server)
	if err != nil {
		t.Fatalf("the admin signs in: %v", err)
	}
	if _, err := server.auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: grant.GetRefreshToken()}); err != nil {
		t.Fatalf("a refresh: %v", err)
	}
	stopServer(t, server, syscall.SIGTERM)

	// Nothing outlives the process: the next server has a new admin, and the
	// first one's refresh token names nothing.
	restarted := startServer(t, binary, "--db", MemoryStore)
	if _, err := restarted.auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: grant.GetRefreshToken()}); err == nil {
		t.Fatal("a refresh token of an earlier server in memory still works")
	}
	if _, err := signIn(restarted); err != nil {
		t.Fatalf("the new server's admin signs in: %v", err)
	}
}

func TestMemoryStoreServerNeedsTheAdminPassword(t *testing.T) {
	binary := buildChitd(t)
	cmd := exec.Command(binary, "serve", "--db", MemoryStore, "--issuer", "http://chit.test", "--insecure-dev",
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	for _, variable := range os.Environ() {
		if !strings.HasPrefix(variable, DevAdminPasswordEnv+"=") {
			cmd.Env = append(cmd.Env, variable)
		}
	}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), DevAdminPasswordEnv) {
		t.Fatalf("serve --db memory: without %s: %v\n%s", DevAdminPasswordEnv, err, out)
	}
}
