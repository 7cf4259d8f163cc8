package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/testenv"
	"github.com/chit-auth/chit/internal/tokens"
)

// privatePostgreSQL is a PostgreSQL cluster of one test's own: the test can
// crash it without disturbing the shared server other tests run against.
type privatePostgreSQL struct {
	bin  string // directory of initdb, pg_ctl and postgres
	root string // holds the data directory, the log and the socket
	port int
	// owner is the OS user the server runs as: the current one, or postgres
	// when the current one is root, since PostgreSQL refuses to run as root.
	owner *user.User
}

func (p *privatePostgreSQL) dataDir() string { return filepath.Join(p.root, "data") }
func (p *privatePostgreSQL) logFile() string { return filepath.Join(p.root, "postgres.log") }

func (p *privatePostgreSQL) dsn() string {
	return "postgres://postgres@127.0.0.1:" + strconv.Itoa(p.port) + "/postgres?sslmode=disable"
}

// newestPostgreSQLBin finds the bin directory of the newest PostgreSQL
// installed side by side (as Debian and Ubuntu do), or else of the one on
// PATH; "" when there is none.
func newestPostgreSQLBin() string {
	var newest string
	var newestVersion float64
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	for _, pgCtl := range matches {
		bin := filepath.Dir(pgCtl)
		version, err := strconv.ParseFloat(filepath.Base(filepath.Dir(bin)), 64)
		if err == nil && version > newestVersion {
			newest, newestVersion = bin, version
		}
	}
	if newest == "" {
		if pgCtl, err := exec.LookPath("pg_ctl"); err == nil {
			newest = filepath.Dir(pgCtl)
		}
	}
	return newest
}

// startPrivatePostgreSQL initialises and starts a cluster that makes every
// commit durable before answering it, and stops and removes it when the
// test ends.
func startPrivatePostgreSQL(t *testing.T) *privatePostgreSQL {
	t.Helper()
	bin := newestPostgreSQLBin()
	if bin == "" {
		testenv.Missing(t, "no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or on PATH (apt-get install postgresql)")
	}
	owner, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if owner, err = user.Lookup("postgres"); err != nil {
			testenv.Missing(t, "running as root, and there is no postgres OS user to run PostgreSQL as")
		}
		if _, err := exec.LookPath("runuser"); err != nil {
			testenv.Missing(t, "running as root, and there is no runuser to run PostgreSQL as postgres")
		}
	}
	// Not t.TempDir: its parent is private to the current user, and the
	// server may run as another.
	root, err := os.MkdirTemp("", "chit-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p := &privatePostgreSQL{bin: bin, root: root, port: freeTCPPort(t), owner: owner}
	t.Cleanup(func() {
		_ = p.command("pg_ctl", "-D", p.dataDir(), "stop", "-m", "immediate").Run()
		if t.Failed() {
			if log, err := os.ReadFile(p.logFile()); err == nil {
				t.Logf("private PostgreSQL's log:\n%s", log)
			}
		}
		_ = os.RemoveAll(root)
	})
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(owner.Uid)
	gid, _ := strconv.Atoi(owner.Gid)
	if err := os.Chown(root, uid, gid); err != nil {
		t.Fatal(err)
	}
	// --no-sync only spares initdb's own fsyncs; the server started below
	// syncs every commit.
	initdb := p.command("initdb", "-D", p.dataDir(), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p.start(t)
	return p
}

// command runs one of the PostgreSQL tools as the cluster's owner.
func (p *privatePostgreSQL) command(tool string, args ...string) *exec.Cmd {
	path := filepath.Join(p.bin, tool)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", p.owner.Username, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	// The owner may not be allowed into the test's working directory.
	cmd.Dir = p.root
	return cmd
}

// start starts the server and waits until it accepts connections; after an
// immediate stop it first recovers from its WAL.
func (p *privatePostgreSQL) start(t *testing.T) {
	t.Helper()
	// The durability settings are PostgreSQL's defaults, spelled out because
	// they are what the test relies on.
	options := "-p " + strconv.Itoa(p.port) + " -k " + p.root + " -c listen_addresses=127.0.0.1" +
		" -c fsync=on -c synchronous_commit=on -c full_page_writes=on"
	start := p.command("pg_ctl", "-D", p.dataDir(), "-l", p.logFile(), "-w", "-t", "30", "-o", options, "start")
	if out, err := start.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(p.logFile())
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

// stopImmediately kills the server as a crash would: no checkpoint, and
// nothing is written that was not already in the WAL.
func (p *privatePostgreSQL) stopImmediately(t *testing.T) {
	t.Helper()
	if out, err := p.command("pg_ctl", "-D", p.dataDir(), "stop", "-m", "immediate").CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl stop -m immediate: %v\n%s", err, out)
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestPostgreSQLStoppedImmediatelyLosesNoAnsweredRotation: a PostgreSQL
// stopped with `pg_ctl stop -m immediate` under refresh-token rotation load
// loses no rotation that was answered: after crash recovery, the last
// successor each login was answered still refreshes, and so does its own.
func TestPostgreSQLStoppedImmediatelyLosesNoAnsweredRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and crashes a PostgreSQL server")
	}
	db := startPrivatePostgreSQL(t)
	dsn := db.dsn()
	binary := buildChitd(t)
	if out, err := exec.Command(binary, "migrate", "--db", dsn).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v %s", err, out)
	}
	createAlice(t, binary, "--db", dsn)
	r := startReplica(t, binary, dsn)

	load := startChainLoad(t, r, 6)
	load.waitRunning(t)
	db.stopImmediately(t)
	stoppedAt := time.Now()
	load.wait(t)
	for i := range load.current {
		t.Logf("chain %d: %d rotations answered, then %v", i, load.answered[i], load.ended[i])
	}

	db.start(t)
	recovered := time.Now()
	// chitd's pool holds connections to the dead server: the first calls
	// may fail while it replaces them.
	deadline := recovered.Add(30 * time.Second)
	for i, token := range load.current {
		next := refreshAfterCrash(t, r, i, "its last answered refresh token", token, stoppedAt, deadline)
		refreshAfterCrash(t, r, i, "the successor of its last answered refresh token", next.GetRefreshToken(), stoppedAt, deadline)
	}
	t.Logf("restart and recovery took %v; every chain refreshed %v after the crash", recovered.Sub(stoppedAt).Round(time.Millisecond),
		time.Since(stoppedAt).Round(time.Millisecond))
}

// refreshAfterCrash refreshes token, retrying failures of a database that is
// coming back, and fails the test at once when the token is refused: then a
// rotation that was answered has been lost.
func refreshAfterCrash(t *testing.T, r *replica, chain int, what, token string, stoppedAt, deadline time.Time) *authv1.TokenResponse {
	t.Helper()
	for {
		callCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := r.auth.RefreshToken(callCtx, &authv1.RefreshTokenRequest{RefreshToken: token})
		cancel()
		if err == nil {
			return resp
		}
		if refused(err) {
			// A rotation committed at the crash but never answered leaves
			// the last answered token rotated: it answers the same successor
			// only within the grace period, and is reuse after it.
			var note string
			if since := time.Since(stoppedAt); since > tokens.DefaultRefreshGrace {
				note = " (" + since.Round(time.Millisecond).String() + " after the crash, past the refresh grace period, so an unanswered rotation would be refused too)"
			}
			t.Fatalf("chain %d: %s was refused after crash recovery, so an answered rotation was lost: %v%s", chain, what, err, note)
		}
		if time.Now().After(deadline) {
			t.Fatalf("chain %d: %s still fails after crash recovery: %v", chain, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// refused tells a refusal of the token from a failure to reach the store.
func refused(err error) bool {
	st := status.Convert(err)
	return st.Code() == codes.Unauthenticated || strings.Contains(st.Message(), "invalid") || strings.Contains(st.Message(), "reused")
}
