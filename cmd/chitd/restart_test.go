package main

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/storage/postgres/postgrestest"
)

// createAlice creates the user login signs in, on the store flags name.
func createAlice(t *testing.T, binary string, store ...string) {
	t.Helper()
	args := append([]string{"user", "create", "alice", "--password-stdin", "--argon2-memory", "8192", "--argon2-iterations", "1"}, store...)
	create := exec.Command(binary, args...)
	create.Stdin = strings.NewReader("wonderland\n")
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("user create: %v %s", err, out)
	}
}

// stopServer ends r with signal and waits for it to exit.
func stopServer(t *testing.T, r *replica, signal syscall.Signal) {
	t.Helper()
	if err := r.cmd.Process.Signal(signal); err != nil {
		t.Fatal(err)
	}
	_ = r.cmd.Wait()
}

// A chitd on SQLite killed (SIGKILL) while its logins rotate loses no
// rotation it answered: each answer came after its group's commit was
// durable (synchronous=FULL), so the restarted server takes every last
// answered token.
func TestSQLiteServerKilledLosesNoAnsweredRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts chitd twice")
	}
	binary := buildChitd(t)
	store := []string{"--data-dir", t.TempDir()}
	createAlice(t, binary, store...)
	server := startServer(t, binary, store...)
	ctx := context.Background()
	load := startChainLoad(t, server, 8)
	load.waitRunning(t)
	stopServer(t, server, syscall.SIGKILL)
	load.wait(t)

	restarted := startServer(t, binary, store...)
	for i, token := range load.current {
		next, err := restarted.auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: token})
		if err != nil {
			t.Fatalf("chain %d: the last answered refresh token (of %d rotations) does not work after the kill: %v", i, load.answered[i], err)
		}
		if _, err := restarted.auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: next.GetRefreshToken()}); err != nil {
			t.Fatalf("chain %d: its successor does not work: %v", i, err)
		}
	}
}

// Within the grace period a just-rotated token answers the same successor,
// also from a server restarted meanwhile, on both stores: the successor is
// sealed in the store, not kept in memory.
func TestGraceAnswersSurviveARestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts chitd twice per store")
	}
	binary := buildChitd(t)
	stores := map[string]func(t *testing.T) []string{
		"sqlite": func(t *testing.T) []string { return []string{"--data-dir", t.TempDir()} },
		"postgres": func(t *testing.T) []string {
			dsn := postgrestest.FreshDSN(t)
			if out, err := exec.Command(binary, "migrate", "--db", dsn).CombinedOutput(); err != nil {
				t.Fatalf("migrate: %v %s", err, out)
			}
			return []string{"--db", dsn}
		},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			store := stores[name](t)
			createAlice(t, binary, store...)
			flags := append(store, "--refresh-grace-period", "1m")
			server := startServer(t, binary, flags...)
			ctx := context.Background()
			first := login(t, server).GetRefreshToken()
			second, err := server.auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: first})
			if err != nil {
				t.Fatal(err)
			}
			stopServer(t, server, syscall.SIGTERM)
			restarted := startServer(t, binary, flags...)
			again, err := restarted.auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: first})
			if err != nil {
				t.Fatalf("the rotated token within the grace period, after a restart: %v", err)
			}
			if again.GetRefreshToken() != second.GetRefreshToken() {
				t.Fatal("after a restart, the grace period answered another successor")
			}
			if _, err := restarted.auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: again.GetRefreshToken()}); err != nil {
				t.Fatalf("the successor after a restart: %v", err)
			}
		})
	}
}
