package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/storage/postgres/postgrestest"
)

// testKEK encrypts the replicas' private keys.
const testKEK = "CHIT_KEY_ENCRYPTION_KEY=QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="

// replica is one chitd process.
type replica struct {
	cmd      *exec.Cmd
	grpcAddr string
	httpAddr string
	auth     authv1.AuthServiceClient
}

func buildChitd(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "chitd-test-"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "chitd")
		built.output, built.err = exec.Command("go", append(append([]string{"build"}, raceFlags...), "-o", built.path, ".")...).CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("build chitd: %v\n%s", built.err, built.output)
	}
	return built.path
}

// built is chitd as buildChitd builds it: once per test process (a build
// links for seconds even from the cache), removed by TestMain.
var built struct {
	once   sync.Once
	dir    string
	path   string
	output []byte
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// startReplica runs chitd serve on ephemeral ports and reads the addresses
// from its first log line.
func startReplica(t *testing.T, binary, dsn string) *replica {
	t.Helper()
	return startServer(t, binary, "--db", dsn)
}

// startServer runs chitd serve with flags (the store's: --db, or
// --data-dir; and any others) on ephemeral ports.
func startServer(t *testing.T, binary string, flags ...string) *replica {
	t.Helper()
	args := append([]string{"serve"}, flags...)
	cmd := exec.Command(binary, append(args, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--issuer", "http://chit.test", "--insecure-dev", "--log-format", "json", "--key-check-interval", "1s",
		"--argon2-memory", "8192", "--argon2-iterations", "1")...)
	cmd.Env = append(os.Environ(), testKEK)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	r := &replica{cmd: cmd}
	ready, exited := make(chan struct{}), make(chan struct{})
	var output strings.Builder
	go func() {
		defer close(exited)
		scanner := bufio.NewScanner(stderr)
		for scanner.Scan() {
			output.WriteString(scanner.Text() + "\n")
			var line map[string]any
			if json.Unmarshal(scanner.Bytes(), &line) == nil && line["msg"] == "chitd serving" {
				r.grpcAddr, _ = line["grpc"].(string)
				r.httpAddr, _ = line["http"].(string)
				close(ready)
				_, _ = io.Copy(io.Discard, stderr)
				return
			}
		}
	}()
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("replica exited before serving:\n%s", output.String())
	case <-time.After(60 * time.Second):
		t.Fatal("replica did not start")
	}
	conn, err := grpc.NewClient(r.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r.auth = authv1.NewAuthServiceClient(conn)
	return r
}

func login(t *testing.T, r *replica) *authv1.TokenResponse {
	t.Helper()
	resp, err := r.auth.Token(context.Background(), &authv1.TokenRequest{Credential: &authv1.TokenRequest_PasswordCredential{
		PasswordCredential: &authv1.PasswordCredential{Username: "alice", Password: "wonderland"}}})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// chainLoad is logins refreshing in a loop on one server, each until a call
// fails (the server or its database is gone): what tests of a crash check.
type chainLoad struct {
	wg sync.WaitGroup
	mu sync.Mutex
	// current is each chain's last answered refresh token; answered, how
	// many rotations it was answered; ended, the error that ended it.
	current  []string
	answered []int
	ended    []error
	// running is closed once every chain has been answered
	// rotationsBeforeCrash times: a crash before that would prove little.
	running     chan struct{}
	chainsAhead int
}

// rotationsBeforeCrash is how many answered rotations each chain has before
// a test crashes its server.
const rotationsBeforeCrash = 5

// startChainLoad logs n chains in on r and starts refreshing them.
func startChainLoad(t *testing.T, r *replica, n int) *chainLoad {
	t.Helper()
	l := &chainLoad{current: make([]string, n), answered: make([]int, n), ended: make([]error, n), running: make(chan struct{})}
	for i := range n {
		l.current[i] = login(t, r).GetRefreshToken()
	}
	for i := range n {
		l.wg.Go(func() {
			for {
				l.mu.Lock()
				token := l.current[i]
				l.mu.Unlock()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err := r.auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: token})
				cancel()
				l.mu.Lock()
				if err != nil {
					l.ended[i] = err
					l.mu.Unlock()
					return
				}
				l.current[i] = resp.GetRefreshToken()
				l.answered[i]++
				if l.answered[i] == rotationsBeforeCrash {
					if l.chainsAhead++; l.chainsAhead == len(l.current) {
						close(l.running)
					}
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

// waitRunning returns once every chain has been answered
// rotationsBeforeCrash times, and fails the test if one ends first.
func (l *chainLoad) waitRunning(t *testing.T) {
	t.Helper()
	ended := make(chan struct{})
	go func() { l.wg.Wait(); close(ended) }()
	select {
	case <-l.running:
	case <-ended:
		t.Fatalf("a chain ended before every chain was answered %d times: %v", rotationsBeforeCrash, l.ended)
	}
}

// wait waits for every chain to end, and fails the test if one was never
// answered (the test would prove nothing about it).
func (l *chainLoad) wait(t *testing.T) {
	t.Helper()
	l.wg.Wait()
	for i := range l.current {
		if l.answered[i] == 0 {
			t.Fatalf("chain %d: no rotation was answered before the crash, so the test proves nothing (ended by %v)", i, l.ended[i])
		}
	}
}

func jwksHas(t *testing.T, r *replica, kid string) bool {
	t.Helper()
	resp, err := http.Get("http://" + r.httpAddr + "/.well-known/jwks.json")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(raw), `"`+kid+`"`)
}

// TestThreeReplicasOnOnePostgreSQL runs three chitd processes on one
// database and checks they behave as one server.
func TestThreeReplicasOnOnePostgreSQL(t *testing.T) {
	dsn := postgrestest.FreshDSN(t)
	if testing.Short() {
		t.Skip("starts three processes")
	}
	binary := buildChitd(t)
	if out, err := exec.Command(binary, "migrate", "--db", dsn).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v %s", err, out)
	}
	create := exec.Command(binary, "user", "create", "alice", "--password-stdin", "--db", dsn, "--argon2-memory", "8192", "--argon2-iterations", "1")
	create.Stdin = strings.NewReader("wonderland\n")
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("user create: %v %s", err, out)
	}
	replicas := []*replica{startReplica(t, binary, dsn), startReplica(t, binary, dsn), startReplica(t, binary, dsn)}
	ctx := context.Background()

	t.Run("a token from one verifies on all", func(t *testing.T) {
		token := login(t, replicas[0])
		for i, r := range replicas {
			md := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token.GetAccessToken())
			if _, err := r.auth.CheckToken(md, &authv1.CheckTokenRequest{}); err != nil {
				t.Errorf("replica %d: %v", i, err)
			}
		}
	})

	t.Run("one refresh token presented to all at once rotates once", func(t *testing.T) {
		token := login(t, replicas[0])
		var wg sync.WaitGroup
		results := make([]string, 9)
		errs := make([]error, 9)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := replicas[i%3].auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: token.GetRefreshToken()})
				results[i], errs[i] = resp.GetRefreshToken(), err
			}()
		}
		wg.Wait()
		for i := range results {
			if errs[i] != nil || results[i] != results[0] {
				t.Fatalf("call %d on replica %d: %q, %v; want the one successor %q", i, i%3, results[i], errs[i], results[0])
			}
		}
	})

	t.Run("a key rotated on one is published by all", func(t *testing.T) {
		rotate := exec.Command(binary, "keys", "rotate", "--force", "--db", dsn)
		rotate.Env = append(os.Environ(), testKEK)
		out, err := rotate.CombinedOutput()
		if err != nil {
			t.Fatalf("keys rotate: %v %s", err, out)
		}
		list, _ := exec.Command(binary, "keys", "list", "--db", dsn).CombinedOutput()
		var nextKid string
		for _, line := range strings.Split(string(list), "\n") {
			if fields := strings.Fields(line); len(fields) > 2 && fields[2] == "next" {
				nextKid = fields[0]
			}
		}
		if nextKid == "" {
			t.Fatalf("no next key after rotation:\n%s", list)
		}
		// The documented bound is --key-check-interval (1s here); allow for a
		// loaded machine.
		deadline := time.Now().Add(30 * time.Second)
		for i, r := range replicas {
			for !jwksHas(t, r, nextKid) {
				if time.Now().After(deadline) {
					t.Fatalf("replica %d does not publish the new next key", i)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	})

	t.Run("a replica killed mid-load loses no answered rotation", func(t *testing.T) {
		load := startChainLoad(t, replicas[0], 6)
		load.waitRunning(t)
		if err := replicas[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		load.wait(t)
		for i, token := range load.current {
			next, err := replicas[1].auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: token})
			if err != nil {
				t.Fatalf("chain %d: the last answered refresh token does not work on another replica: %v", i, err)
			}
			if _, err := replicas[2].auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: next.GetRefreshToken()}); err != nil {
				t.Fatalf("chain %d: its successor does not work: %v", i, err)
			}
		}
	})
}

// TestReplicasStartingAtOnceOnAnEmptyPostgreSQL starts three chitd
// processes together on a database nobody migrated: they end with one
// family of each algorithm (one active and one next ES256 key, the same for
// RS256), which all of them publish alike.
func TestReplicasStartingAtOnceOnAnEmptyPostgreSQL(t *testing.T) {
	dsn := postgrestest.FreshDSN(t)
	if testing.Short() {
		t.Skip("starts three processes")
	}
	binary := buildChitd(t)
	replicas := make([]*replica, 3)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replicas[i] = startReplica(t, binary, dsn)
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// Standard output alone: the audit line goes to standard error.
	list, err := exec.Command(binary, "keys", "list", "--db", dsn, "--output", "json").Output()
	if err != nil {
		t.Fatalf("keys list: %v %s", err, list)
	}
	var listed struct {
		SigningKeys []struct{ Algorithm, State string } `json:"signing_keys"`
	}
	if err := json.Unmarshal(list, &listed); err != nil {
		t.Fatalf("keys list: %v %s", err, list)
	}
	counts := map[string]int{}
	for _, key := range listed.SigningKeys {
		counts[key.Algorithm+" "+key.State]++
	}
	if len(counts) != 4 || counts["ES256 active"] != 1 || counts["ES256 next"] != 1 || counts["RS256 active"] != 1 || counts["RS256 next"] != 1 {
		t.Fatalf("keys by algorithm and state %v, want one active and one next of ES256 and of RS256:\n%s", counts, list)
	}
	var first string
	for i, r := range replicas {
		resp, err := http.Get("http://" + r.httpAddr + "/.well-known/jwks.json")
		if err != nil {
			t.Fatal(err)
		}
		var doc struct{ Keys []struct{ Kid string } }
		err = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if err != nil || len(doc.Keys) != 4 {
			t.Fatalf("replica %d publishes %v (%v), want the four keys", i, doc.Keys, err)
		}
		var kids []string
		for _, key := range doc.Keys {
			kids = append(kids, key.Kid)
		}
		slices.Sort(kids)
		if i == 0 {
			first = strings.Join(kids, " ")
		} else if got := strings.Join(kids, " "); got != first {
			t.Fatalf("replica %d publishes %s, replica 0 %s", i, got, first)
		}
	}
}
