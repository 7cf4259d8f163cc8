package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/chit-auth/chit/internal/admincli"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/providers"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/postgres/postgrestest"
	"github.com/chit-auth/chit/internal/storage/sqlite"
)

// run executes chitd in-process with args and stdin, returning its output
// (standard output and error).
func run(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	out, _, err := runApart(t, stdin, args...)
	return out, err
}

// runApart executes chitd in-process with args and stdin, returning its
// output (standard output and error) and its standard output alone.
func runApart(t *testing.T, stdin string, args ...string) (all, stdout string, err error) {
	t.Helper()
	cmd := newRootCommand()
	var out, standard bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(io.MultiWriter(&out, &standard))
	cmd.SetErr(&out)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), standard.String(), err
}

// Cheap hashing keeps the test fast; the commands' logic is the same.
var fastHash = []string{"--argon2-memory", "8192", "--argon2-iterations", "1"}

func TestUserCommands(t *testing.T) {
	dir := t.TempDir()
	create := append([]string{"user", "create", "alice", "--password-stdin", "--role", "admin", "--data-dir", dir}, fastHash...)
	out, err := run(t, "wonderland\n", create...)
	if err != nil || !strings.Contains(out, "created user alice with role ADMIN") {
		t.Fatalf("user create: %q, %v", out, err)
	}
	if _, err := run(t, "wonderland\n", create...); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate user create: %v", err)
	}
	out, err = run(t, "", "user", "list", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "alice") || !strings.Contains(out, "ADMIN") {
		t.Fatalf("user list: %q, %v", out, err)
	}
	if strings.Contains(out, "argon2id") {
		t.Fatal("user list prints password hashes")
	}
	if _, err := run(t, "", "user", "delete", "alice", "--data-dir", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "", "user", "delete", "alice", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("deleting a missing user: %v", err)
	}
}

func TestUserCreateRefusals(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"password as no stdin flag", "wonderland", []string{"user", "create", "bob"}, "--password-stdin"},
		{"empty stdin", "", []string{"user", "create", "bob", "--password-stdin"}, "empty"},
		{"short password", "short\n", []string{"user", "create", "bob", "--password-stdin"}, "at least 8"},
		{"bad role", "wonderland\n", []string{"user", "create", "bob", "--password-stdin", "--role", "service"}, "role"},
		{"bad name", "wonderland\n", []string{"user", "create", "b o b", "--password-stdin"}, "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append(tc.args, "--data-dir", dir), fastHash...)
			if _, err := run(t, tc.stdin, args...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestServiceCommands(t *testing.T) {
	dir := t.TempDir()
	out, err := run(t, "", "service", "create", "billing", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "client_id: billing") || !strings.Contains(out, "client_secret: chit_cs_") {
		t.Fatalf("service create: %q, %v", out, err)
	}
	created := secretFrom(t, out)
	out, err = run(t, "", "service", "list", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "billing") || strings.Contains(out, "chit_cs_") {
		t.Fatalf("service list: %q, %v (it must not show secrets)", out, err)
	}
	out, err = run(t, "", "service", "rotate-secret", "billing", "--overlap", "1h", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "client_secret: chit_cs_") || secretFrom(t, out) == created {
		t.Fatalf("service rotate-secret: %q, %v", out, err)
	}
	if _, err := run(t, "", "service", "rotate-secret", "billing", "--overlap", "169h", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "overlap") {
		t.Fatalf("service rotate-secret --overlap 169h: %v", err)
	}
	if _, err := run(t, "", "service", "delete", "billing", "--data-dir", dir); err != nil {
		t.Fatal(err)
	}
}

func TestServeValidatesEveryFlagAtOnce(t *testing.T) {
	_, err := run(t, "", "serve", "--data-dir", t.TempDir(),
		"--grpc-addr", "nope", "--issuer", "ftp://x", "--access-token-ttl", "1s",
		"--signing-algorithm", "HS256", "--log-level", "loud", "--argon2-memory", "1", "--service-account-cache", "-1s")
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, want := range []string{"--grpc-addr", "--issuer", "--access-token-ttl", "--signing-algorithm", "--log-level", "--argon2-memory", "--service-account-cache"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}

// --max-header-bytes takes 16 KiB to 1 MiB; a value outside, or no number,
// is refused naming the flag before the server starts.
func TestServeBoundsMaxHeaderBytes(t *testing.T) {
	for _, tc := range []struct {
		value    string
		accepted bool
	}{
		{"65536", true}, {"16384", true}, {"1048576", true},
		{"0", false}, {"-1", false}, {"16383", false}, {"1048577", false}, {"4294967297", false}, {"64KiB", false},
	} {
		t.Run(tc.value, func(t *testing.T) {
			flags := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			flags.SetOutput(io.Discard)
			var serve serveFlags
			var hashing hashFlags
			serve.register(flags)
			hashing.register(flags)
			err := flags.Parse([]string{"--insecure-dev", "--max-header-bytes", tc.value})
			if err == nil {
				err = serve.validate(&hashing)
			}
			switch {
			case tc.accepted && err != nil:
				t.Fatalf("--max-header-bytes %s refused: %v", tc.value, err)
			case !tc.accepted && (err == nil || !strings.Contains(err.Error(), "--max-header-bytes")):
				t.Fatalf("--max-header-bytes %s: got %v, want a refusal naming the flag", tc.value, err)
			case tc.accepted && serve.serverConfig(&hashing, nil).MaxHeaderBytes != serve.maxHeaderBytes:
				t.Fatalf("--max-header-bytes %s does not reach the server's configuration", tc.value)
			}
		})
	}
	if _, err := run(t, "", "serve", "--data-dir", t.TempDir(), "--max-header-bytes", "0"); err == nil || !strings.Contains(err.Error(), "--max-header-bytes must be between 16384 (16 KiB) and 1048576 (1 MiB)") {
		t.Fatalf("serve --max-header-bytes 0: %v", err)
	}
}

// The hashing queue's timeout must end before the call's own: a sign-in
// waits for its slot within its call's time.
func TestServeRefusesAHashQueueTimeoutAsLongAsTheRequestTimeout(t *testing.T) {
	_, err := run(t, "", "serve", "--data-dir", t.TempDir(), "--request-timeout", "5s", "--hash-queue-timeout", "5s")
	if err == nil || !strings.Contains(err.Error(), "--hash-queue-timeout must be shorter than --request-timeout") {
		t.Fatalf("serve with --hash-queue-timeout 5s and --request-timeout 5s: %v", err)
	}
}

func TestServeReadsEnvironment(t *testing.T) {
	t.Setenv("CHIT_ISSUER", "not a url")
	t.Setenv("CHIT_INSECURE_DEV", "true")
	_, err := run(t, "", "serve", "--data-dir", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "--issuer") {
		t.Fatalf("CHIT_ISSUER was not applied: %v", err)
	}
}

func TestHelpNamesEnvironmentVariables(t *testing.T) {
	out, err := run(t, "", "serve", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CHIT_GRPC_ADDR", "CHIT_HTTP_ADDR", "CHIT_DATA_DIR", "CHIT_ISSUER", "default \"localhost:9090\""} {
		if !strings.Contains(out, want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
}

func TestProviderCommands(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	service := providers.NewService(providers.Config{ClaimTTL: time.Hour}, providers.Dependencies{Store: db, Sealer: &keys.Sealer{}, Now: time.Now, Random: rand.Reader})
	claimTokens, err := service.Register(ctx, providers.Caller{ServiceID: "ucloud"}, []string{"hpc", "cloud"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := service.Claim(ctx, claimTokens[:1]); err != nil {
		t.Fatal(err)
	}
	db.Close()

	out, err := run(t, "", "provider", "list", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "hpc") || !strings.Contains(out, "claimed") || !strings.Contains(out, "cloud") || !strings.Contains(out, "unclaimed") {
		t.Fatalf("provider list: %q, %v", out, err)
	}
	if _, err := run(t, "", "provider", "delete", "hpc", "--data-dir", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "", "provider", "delete", "hpc", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("deleting a missing provider: %v", err)
	}
	out, _ = run(t, "", "provider", "list", "--data-dir", dir)
	if strings.Contains(out, "hpc") {
		t.Fatalf("deleted provider still listed: %q", out)
	}
}

func TestServeRefusesBadOrchestratorNames(t *testing.T) {
	_, err := run(t, "", "serve", "--data-dir", t.TempDir(), "--orchestrators", "ucloud,bad name")
	if err == nil || !strings.Contains(err.Error(), `"bad name"`) {
		t.Fatalf("got %v", err)
	}
}

func TestServeRefusesBadTrustedProxies(t *testing.T) {
	_, err := run(t, "", "serve", "--data-dir", t.TempDir(), "--trusted-proxies", "10.0.0.0/8,lb.internal")
	if err == nil || !strings.Contains(err.Error(), `"lb.internal"`) {
		t.Fatalf("got %v", err)
	}
}

// A client's ID token algorithm is set by client create and client update,
// shown by get, and refused, naming the field, when the server has no keys
// for it.
func TestClientIDTokenAlgorithmFlag(t *testing.T) {
	dir := t.TempDir()
	if out, err := run(t, "", "client", "create", "kube", "--redirect-uri", "http://localhost:8000", "--id-token-signed-response-alg", "RS256", "--data-dir", dir); err != nil {
		t.Fatalf("client create: %q, %v", out, err)
	}
	if out, err := run(t, "", "client", "get", "kube", "--data-dir", dir); err != nil || !strings.Contains(out, "ID_TOKEN_ALG") || !strings.Contains(out, " RS256 ") {
		t.Fatalf("client get: %q, %v", out, err)
	}
	out, err := run(t, "", "client", "update", "kube", "--id-token-signed-response-alg", "ES256", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "ID tokens signed ES256") {
		t.Fatalf("client update: %q, %v", out, err)
	}
	for _, alg := range []string{"HS256", "EdDSA", "none"} {
		_, err := run(t, "", "client", "update", "kube", "--id-token-signed-response-alg", alg, "--data-dir", dir)
		if err == nil || !strings.Contains(err.Error(), "id_token_signed_response_alg") {
			t.Errorf("client update --id-token-signed-response-alg %s on an ES256 server: %v", alg, err)
		}
	}
	if _, err := run(t, "", "client", "create", "other", "--redirect-uri", "https://o.example/cb", "--id-token-signed-response-alg", "EdDSA", "--data-dir", dir); err == nil ||
		!strings.Contains(err.Error(), "id_token_signed_response_alg") {
		t.Fatalf("client create with EdDSA on an ES256 server: %v", err)
	}
}

func TestClientCommands(t *testing.T) {
	dir := t.TempDir()
	out, err := run(t, "", "client", "create", "dashboard", "--redirect-uri", "https://dash.example/cb", "--redirect-uri", "https://dash.example/cb2", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "created public client dashboard") {
		t.Fatalf("client create: %q, %v", out, err)
	}
	out, err = run(t, "", "client", "list", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "https://dash.example/cb https://dash.example/cb2") || !strings.Contains(out, "PKCE") {
		t.Fatalf("client list: %q, %v", out, err)
	}
	out, err = run(t, "", "client", "set-origins", "dashboard", "--allowed-origin", "https://dash.example", "--allowed-origin", "http://localhost:5173", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "client dashboard: origins http://localhost:5173 https://dash.example") {
		t.Fatalf("client set-origins: %q, %v", out, err)
	}
	out, err = run(t, "", "client", "create", "spa", "--redirect-uri", "https://spa.example/cb", "--allowed-origin", "https://spa.example", "--data-dir", dir)
	if err != nil {
		t.Fatalf("client create --allowed-origin: %q, %v", out, err)
	}
	if out, err = run(t, "", "client", "get", "spa", "--data-dir", dir); err != nil || !strings.Contains(out, "https://spa.example ") {
		t.Fatalf("client get shows no origin: %q, %v", out, err)
	}
	if _, err := run(t, "", "client", "create", "spa2", "--redirect-uri", "https://spa.example/cb", "--allowed-origin", "https://spa.example/", "--data-dir", dir); err == nil ||
		!strings.Contains(err.Error(), "allowed_origins") {
		t.Fatalf("client create with an origin ending in a slash: %v", err)
	}
	if _, err := run(t, "", "client", "get", "spa2", "--data-dir", dir); err == nil {
		t.Fatal("a client refused for its origins was created")
	}
	// oauth2-proxy's registration: confidential, PKCE optional, and back.
	out, err = run(t, "", "client", "create", "proxy", "--redirect-uri", "https://proxy.example/oauth2/callback", "--confidential", "--pkce", "optional", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "chit_cs_") {
		t.Fatalf("client create --pkce optional: %q, %v", out, err)
	}
	if out, err = run(t, "", "client", "get", "proxy", "--data-dir", dir); err != nil || !strings.Contains(out, "optional") {
		t.Fatalf("client get: %q, %v", out, err)
	}
	if out, err = run(t, "", "client", "update", "proxy", "--pkce", "required", "--data-dir", dir); err != nil || !strings.Contains(out, "client proxy: pkce required") {
		t.Fatalf("client update: %q, %v", out, err)
	}
	// A device client (RFC 8628): allowed at creation, kept by an update
	// that does not name it, and turned off.
	if _, err = run(t, "", "client", "create", "tv", "--redirect-uri", "https://tv.example/cb", "--device-authorization", "--data-dir", dir); err != nil {
		t.Fatalf("client create --device-authorization: %v", err)
	}
	if out, err = run(t, "", "client", "update", "tv", "--data-dir", dir); err != nil || !strings.Contains(out, "device authorization true") {
		t.Fatalf("client update without the flag: %q, %v", out, err)
	}
	if out, err = run(t, "", "client", "update", "tv", "--device-authorization=false", "--data-dir", dir); err != nil || !strings.Contains(out, "device authorization false") {
		t.Fatalf("client update --device-authorization=false: %q, %v", out, err)
	}
	// kubelogin's default redirect.
	if out, err = run(t, "", "client", "create", "kubelogin", "--redirect-uri", "http://localhost:8000", "--data-dir", dir); err != nil {
		t.Fatalf("client create with http://localhost:8000: %q, %v", out, err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no redirect", []string{"client", "create", "x"}},
		{"plain http", []string{"client", "create", "x", "--redirect-uri", "http://dash.example/cb"}},
		{"userinfo", []string{"client", "create", "x", "--redirect-uri", "https://user@dash.example/cb"}},
		// The origin goes into the sign-in page's Content-Security-Policy.
		{"a header in the host", []string{"client", "create", "x", "--redirect-uri", "https://x.example;script-src*/cb"}},
		{"a list in the host", []string{"client", "create", "x", "--redirect-uri", "https://x.example,evil.example/cb"}},
		{"reserved id", []string{"client", "create", "chit-cli", "--redirect-uri", "https://dash.example/cb"}},
		{"PKCE optional for a public client", []string{"client", "create", "x", "--redirect-uri", "https://dash.example/cb", "--pkce", "optional"}},
		{"PKCE neither required nor optional", []string{"client", "create", "x", "--redirect-uri", "https://dash.example/cb", "--confidential", "--pkce", "maybe"}},
		{"PKCE optional for a public client, by update", []string{"client", "update", "dashboard", "--pkce", "optional"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := run(t, "", append(tc.args, "--data-dir", dir)...); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := run(t, "", "client", "delete", "dashboard", "--data-dir", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "", "client", "delete", "dashboard", "--data-dir", dir); err == nil {
		t.Fatal("deleting a missing client succeeded")
	}
}

// testKeyEncryptionKey is the key encryption key of the keys commands' tests.
var testKeyEncryptionKey = bytes.Repeat([]byte{9}, 32)

// storeWithKeys makes a data directory whose signing keys are sealed by
// sealer and returns it with a file holding testKeyEncryptionKey.
func storeWithKeys(t *testing.T, sealer *keys.Sealer) (dir, keyFile string) {
	t.Helper()
	dir = t.TempDir()
	keyFile = dir + "/kek"
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(testKeyEncryptionKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := keys.Load(ctx, db, "ES256", sealer, time.Now()); err != nil {
		t.Fatal(err)
	}
	return dir, keyFile
}

func TestKeysCommands(t *testing.T) {
	sealer, _ := keys.NewSealer(testKeyEncryptionKey)
	dir, keyFile := storeWithKeys(t, sealer)

	_, out, err := runApart(t, "", "keys", "list", "--data-dir", dir)
	if err != nil || strings.Count(out, "ES256") != 2 || !strings.Contains(out, "active") || !strings.Contains(out, "next") || !strings.Contains(out, "true") {
		t.Fatalf("keys list: %q, %v", out, err)
	}
	if _, err := run(t, "", "keys", "rotate", "--data-dir", dir, "--key-encryption-key-file", keyFile); err == nil || !strings.Contains(err.Error(), "too recently") {
		t.Fatalf("rotating onto a fresh next key: %v", err)
	}
	if _, err := run(t, "", "keys", "rotate", "--force", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "no key encryption key") {
		t.Fatalf("rotating encrypted keys without the key encryption key: %v", err)
	}
	if _, err := run(t, "", "keys", "rotate", "--force", "--data-dir", dir, "--key-encryption-key-file", keyFile); err != nil {
		t.Fatalf("forced rotation: %v", err)
	}
	_, out, _ = runApart(t, "", "keys", "list", "--data-dir", dir)
	if !strings.Contains(out, "retired") || strings.Count(out, "ES256") != 3 || strings.Contains(out, "false") {
		t.Fatalf("after rotation: %q", out)
	}
	t.Setenv("CHIT_KEY_ENCRYPTION_KEY", "not base64!")
	if _, err := run(t, "", "keys", "rotate", "--force", "--data-dir", dir); err == nil {
		t.Fatal("a malformed CHIT_KEY_ENCRYPTION_KEY was accepted")
	}
}

func TestServeRequiresHTTPSIssuerUnlessInsecureDev(t *testing.T) {
	_, err := run(t, "", "serve", "--data-dir", t.TempDir(), "--issuer", "http://auth.example.com")
	if err == nil || !strings.Contains(err.Error(), "must be https") || !strings.Contains(err.Error(), "--insecure-dev") {
		t.Fatalf("http issuer without --insecure-dev: %v", err)
	}
	_, err = run(t, "", "serve", "--data-dir", t.TempDir(), "--issuer", "http://auth.example.com", "--insecure-dev", "--grpc-addr", "nope")
	if err == nil || strings.Contains(err.Error(), "must be https") {
		t.Fatalf("--insecure-dev must allow the http issuer: %v", err)
	}
	_, err = run(t, "", "serve", "--data-dir", t.TempDir(), "--issuer", "https://auth.example.com", "--tls-cert", "cert.pem")
	if err == nil || !strings.Contains(err.Error(), "--tls-cert and --tls-key go together") {
		t.Fatalf("--tls-cert alone: %v", err)
	}
}

func TestMigrateOnPostgreSQL(t *testing.T) {
	dsn := postgrestest.FreshDSN(t)
	out, err := run(t, "", "migrate", "--db", dsn)
	if err != nil || !strings.Contains(out, "migrations applied") {
		t.Fatalf("migrate: %q, %v", out, err)
	}
	if out, err := run(t, "wonderland\n", append([]string{"user", "create", "alice", "--password-stdin", "--db", dsn}, fastHash...)...); err != nil {
		t.Fatalf("user create on PostgreSQL: %q, %v", out, err)
	}
	if out, _ := run(t, "", "user", "list", "--db", dsn); !strings.Contains(out, "alice") {
		t.Fatalf("user list on PostgreSQL: %q", out)
	}
}

func TestBadDatabaseURL(t *testing.T) {
	if _, err := run(t, "", "migrate", "--db", "mysql://x"); err == nil || !strings.Contains(err.Error(), "postgres://") {
		t.Fatalf("got %v", err)
	}
}

// An operator is told when the data directory is open to other users.
func TestDataDirectoryOpenToOthersIsReported(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "", "user", "list", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "open to other users") {
		t.Fatalf("user list on a 0755 data directory: %q, %v; want a warning", out, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, _ := run(t, "", "user", "list", "--data-dir", dir); strings.Contains(out, "warning") {
		t.Fatalf("a 0700 data directory was warned about: %q", out)
	}
}

// The grant commands change what principals may obtain, as `list` shows,
// and refuse what the rules refuse; no environment variable sets a grant.
func TestGrantCommands(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CHIT_SCOPE", "leaked:from-the-environment")
	steps := []struct {
		args []string
		want string
	}{
		{append([]string{"user", "create", "alice", "--password-stdin", "--scope", "read", "--default-scope", "read", "--data-dir", dir}, fastHash...), "created user alice"},
		{[]string{"user", "set-grants", "alice", "--scope", "read", "--scope", "write", "--data-dir", dir}, "user alice: scopes: read write"},
		{[]string{"user", "set-role", "alice", "admin", "--data-dir", dir}, "now has role ADMIN"},
		{[]string{"user", "list", "--data-dir", dir}, "read write"},
		{[]string{"service", "create", "billing", "--scope", "inventory:read", "--audience", "inventory", "--data-dir", dir}, "client_secret: chit_cs_"},
		{[]string{"service", "set-grants", "billing", "--scope", "inventory:write", "--audience", "inventory", "--data-dir", dir}, "service billing: scopes: inventory:write"},
		{[]string{"service", "list", "--data-dir", dir}, "inventory:write"},
		{[]string{"client", "create", "dashboard", "--redirect-uri", "https://d.example/cb", "--confidential", "--data-dir", dir}, "client_secret: chit_cs_"},
		{[]string{"client", "set-grants", "dashboard", "--scope", "openid", "--data-dir", dir}, "client dashboard: scopes: openid"},
		{[]string{"client", "list", "--data-dir", dir}, "confidential"},
	}
	for _, step := range steps {
		out, err := run(t, "wonderland\n", step.args...)
		if err != nil || !strings.Contains(out, step.want) || strings.Contains(out, "leaked") {
			t.Fatalf("chitd %v: %q, %v; want %q and nothing from CHIT_SCOPE", step.args[:3], out, err, step.want)
		}
	}
	for _, refused := range [][]string{
		{"service", "create", "Dashboard", "--data-dir", dir},
		{"client", "create", "inventory", "--redirect-uri", "https://i.example/cb", "--data-dir", dir},
		{"service", "set-grants", "billing", "--default-scope", "not-allowed", "--data-dir", dir},
		{"user", "set-grants", "nobody", "--data-dir", dir},
	} {
		if out, err := run(t, "", refused...); err == nil {
			t.Fatalf("chitd %v was accepted: %q", refused, out)
		}
	}
}

// The profile flags set what a person's ID tokens say about them, as
// `get` and `list` show; set-profile changes only the flags given; a bad
// value is refused naming its field; no environment variable sets one.
func TestProfileCommands(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CHIT_EMAIL", "leaked@from-the-environment.example")
	t.Setenv("CHIT_GROUP", "leaked")
	steps := []struct {
		args []string
		want []string
	}{
		{append([]string{"user", "create", "alice", "--password-stdin", "--email", "alice@example.com", "--email-verified",
			"--display-name", "Alice Liddell", "--group", "readers", "--group", "ops", "--data-dir", dir}, fastHash...),
			[]string{"created user alice", "email: alice@example.com (verified)", "display name: Alice Liddell", "groups: readers ops"}},
		{[]string{"user", "get", "alice", "--data-dir", dir}, []string{"EMAIL", "VERIFIED", "DISPLAY_NAME", "GROUPS", "alice@example.com", "true", "Alice Liddell", "readers ops"}},
		{[]string{"user", "set-profile", "alice", "--group", "writers", "--data-dir", dir},
			[]string{"email: alice@example.com (verified)", "display name: Alice Liddell", "groups: writers"}},
		{[]string{"user", "set-profile", "alice", "--email", "alice@example.org", "--display-name", "", "--data-dir", dir},
			[]string{"email: alice@example.org;", "display name: -", "groups: writers"}},
		{[]string{"user", "set-profile", "alice", "--email-verified", "--group", "", "--data-dir", dir},
			[]string{"email: alice@example.org (verified)", "groups: -"}},
		{[]string{"user", "list", "--data-dir", dir}, []string{"alice@example.org", "true"}},
	}
	for _, step := range steps {
		out, err := run(t, "wonderland\n", step.args...)
		for _, want := range step.want {
			if err != nil || !strings.Contains(out, want) || strings.Contains(out, "leaked") {
				t.Fatalf("chitd %v: %q, %v; want %q and nothing from CHIT_EMAIL or CHIT_GROUP", step.args[:3], out, err, want)
			}
		}
	}
	for _, refused := range []struct {
		args    []string
		mention string
	}{
		{append([]string{"user", "create", "bob", "--password-stdin", "--email", "Bob <bob@example.com>", "--data-dir", dir}, fastHash...), "email:"},
		{append([]string{"user", "create", "bob", "--password-stdin", "--email-verified", "--data-dir", dir}, fastHash...), "email_verified:"},
		{[]string{"user", "set-profile", "alice", "--group", "a b", "--data-dir", dir}, "groups:"},
		{[]string{"user", "set-profile", "alice", "--display-name", "a\tb", "--data-dir", dir}, "display_name:"},
		{[]string{"user", "set-profile", "alice", "--data-dir", dir}, "--email"},
	} {
		if out, err := run(t, "wonderland\n", refused.args...); err == nil || !strings.Contains(err.Error(), refused.mention) {
			t.Fatalf("chitd %v: %q, %v; want refused naming %q", refused.args[:3], out, err, refused.mention)
		}
	}
}

func TestKeysEncryptCommand(t *testing.T) {
	dir, keyFile := storeWithKeys(t, &keys.Sealer{})
	if _, err := run(t, "", "keys", "encrypt", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "no key encryption key") {
		t.Fatalf("keys encrypt without a key encryption key: %v", err)
	}
	out, err := run(t, "", "keys", "encrypt", "--data-dir", dir, "--key-encryption-key-file", keyFile)
	if err != nil || !strings.Contains(out, "encrypted 4 private keys") {
		t.Fatalf("keys encrypt: %q, %v", out, err)
	}
	// The table on standard output; the audit line on standard error says
	// audit=true.
	_, out, _ = runApart(t, "", "keys", "list", "--data-dir", dir)
	if strings.Contains(out, "false") || strings.Count(out, "true") != 4 {
		t.Fatalf("after keys encrypt: %q", out)
	}
	out, err = run(t, "", "keys", "encrypt", "--data-dir", dir, "--key-encryption-key-file", keyFile)
	if err != nil || !strings.Contains(out, "encrypted 0 private keys") {
		t.Fatalf("second keys encrypt: %q, %v", out, err)
	}
}

// noErasing is a store whose erasure fails, as when another process kept
// reading the database while the server started.
type noErasing struct{ *sqlite.Store }

func (noErasing) EraseReplacedValues(context.Context) error {
	return errors.New("another connection kept reading")
}

// When a server's start encrypted the keys but could not erase their clear
// copies from the database's files, keys encrypt erases them, though no key
// is left to encrypt.
func TestKeysEncryptErasesClearCopiesAStartLeft(t *testing.T) {
	ctx := context.Background()
	dir, keyFile := storeWithKeys(t, &keys.Sealer{})
	db, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	clearProviderKey := []byte("provider private key")
	if err := db.CreateProviders(ctx, []storage.Provider{{ID: "p", ClaimTokenHash: []byte("claim"), ClaimExpiresAt: time.Now().Add(time.Hour), CreatedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if err := db.ClaimProviders(ctx, []storage.ProviderCredentials{{ProviderID: "p", KeyID: "kid-p", PublicKey: []byte("public"), PrivateKey: clearProviderKey, RefreshTokenHash: []byte("refresh")}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	// A row stored after it sits below its cell in the page, so space its
	// row frees is a hole there, not the page's free end.
	if err := db.CreateProviders(ctx, []storage.Provider{{ID: "q", ClaimTokenHash: []byte("claim-q"), ClaimExpiresAt: time.Now().Add(time.Hour), CreatedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	clearKeys := [][]byte{clearProviderKey}
	signing, _ := db.ListSigningKeys(ctx)
	for _, key := range signing {
		clearKeys = append(clearKeys, key.PrivateKey)
	}
	db.Close()
	// An older chitd, which left freed space as it was, moved the
	// provider's row.
	older, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?_pragma=secure_delete(0)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := older.ExecContext(ctx, `UPDATE providers SET key_id = key_id || ' ' WHERE id = 'p'`); err != nil {
		t.Fatal(err)
	}
	older.Close()
	if db, err = sqlite.Open(ctx, dir); err != nil {
		t.Fatal(err)
	}
	sealer, _ := keys.NewSealer(testKeyEncryptionKey)
	if encrypted, err := keys.EncryptClearKeys(ctx, noErasing{db}, sealer); encrypted != 5 || !errors.Is(err, keys.ErrClearCopiesRemain) {
		t.Fatalf("EncryptClearKeys on a store that cannot erase = %d, %v", encrypted, err)
	}
	db.Close()
	holdsClearKey := func() bool {
		files, _ := filepath.Glob(filepath.Join(dir, sqlite.FileName+"*"))
		for _, file := range files {
			raw, _ := os.ReadFile(file)
			for _, key := range clearKeys {
				if bytes.Contains(raw, key) {
					return true
				}
			}
		}
		return false
	}
	if !holdsClearKey() {
		t.Fatal("no clear copy was left to erase: the test proves nothing")
	}
	out, err := run(t, "", "keys", "encrypt", "--data-dir", dir, "--key-encryption-key-file", keyFile)
	if err != nil || !strings.Contains(out, "encrypted 0 private keys") {
		t.Fatalf("keys encrypt: %q, %v", out, err)
	}
	if holdsClearKey() {
		t.Fatal("keys encrypt left a clear key in the database's files")
	}
}

// chitd's operator commands are chit admin's: the one tree of the Admin
// API (admincli), every verb with the same flags, but what chitd adds for
// its store (LocalOnly: the hashing cost, the new key's algorithm, keys
// encrypt). cmd/chit checks the same of chit admin.
func TestOperatorCommandsAreTheAdminTree(t *testing.T) {
	admin := &cobra.Command{Use: "admin"}
	admin.AddCommand(admincli.Commands(admincli.Config{Program: "chit admin"})...)
	want := admincli.Shape(admin)
	var got []string
	for _, line := range admincli.Shape(newRootCommand()) {
		if command := strings.Fields(line)[0]; command != "serve" && command != "migrate" {
			got = append(got, line)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("chitd's operator commands differ from the Admin API's tree:\n got %q\nwant %q", got, want)
	}
	if len(want) < 30 {
		t.Fatalf("the tree has %d commands: the comparison proves little", len(want))
	}
}

// chitd's commands call the Admin API's handlers: get and client
// rotate-secret, which chitd once lacked, work on the store, and every
// command writes the handlers' audit line, naming the local operator, on
// standard error.
func TestOperatorCommandsGetRotateAndAudit(t *testing.T) {
	dir := t.TempDir()
	steps := []struct {
		args []string
		want string
	}{
		{append([]string{"user", "create", "root", "--password-stdin", "--role", "admin"}, fastHash...), "created user root with role ADMIN"},
		{[]string{"user", "get", "root"}, "ADMIN"},
		{[]string{"client", "create", "dashboard", "--redirect-uri", "https://d.example/cb", "--confidential"}, "client_secret: chit_cs_"},
		{[]string{"client", "get", "dashboard", "-o", "json"}, `"confidential": true`},
		{[]string{"service", "create", "billing"}, "client_secret: chit_cs_"},
		{[]string{"service", "get", "billing"}, "billing"},
	}
	for _, step := range steps {
		out, err := run(t, "root's long password\n", append(step.args, "--data-dir", dir)...)
		if err != nil || !strings.Contains(out, step.want) {
			t.Fatalf("chitd %v: %q, %v; want %q", step.args, out, err, step.want)
		}
	}
	_, created, _ := runApart(t, "", "client", "rotate-secret", "dashboard", "--data-dir", dir)
	out, rotated, err := runApart(t, "", "client", "rotate-secret", "dashboard", "--data-dir", dir)
	if err != nil || !strings.Contains(rotated, "client_secret: chit_cs_") || rotated == created {
		t.Fatalf("client rotate-secret: %q, %v", out, err)
	}
	if !strings.Contains(out, "msg=audit") || !strings.Contains(out, "actor=local-operator") || !strings.Contains(out, "action=RotateClientSecret") ||
		!strings.Contains(out, "target=dashboard") || !strings.Contains(out, "outcome=OK") || !strings.Contains(out, "transport=local") {
		t.Fatalf("client rotate-secret wrote no audit line of the local operator: %q", out)
	}
	if line := strings.SplitN(strings.SplitN(out, "msg=audit", 2)[1], "\n", 2)[0]; strings.Contains(line, "chit_cs_") {
		t.Fatalf("the audit line holds the secret: %q", out)
	}
	out, err = run(t, "", "client", "rotate-secret", "nobody", "--data-dir", dir)
	if err == nil || !strings.Contains(err.Error(), "not found") || !strings.Contains(out, "outcome=NotFound") {
		t.Fatalf("client rotate-secret of a missing client: %q, %v; want NotFound, audited", out, err)
	}
	t.Setenv("CHIT_LOG_FORMAT", "json")
	if out, err := run(t, "", "user", "list", "--data-dir", dir); err != nil || !strings.Contains(out, `"action":"ListUsers"`) {
		t.Fatalf("user list with CHIT_LOG_FORMAT=json: %q, %v; want a JSON audit line", out, err)
	}
}

// Boolean flags print as --name in every command's help, as in any cobra
// program, not as --name[=true|false].
func TestHelpPrintsBooleanFlagsPlainly(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		bools []string
	}{
		{[]string{"serve", "--help"}, []string{"-h, --help", "--insecure-dev", "--otlp-insecure", "--require-pkce"}},
		{[]string{"--help"}, []string{"-h, --help"}},
		{[]string{"keys", "rotate", "--help"}, []string{"--force"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := run(t, "", tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out, "[=true|false]") {
				t.Errorf("help marks boolean flags [=true|false]:\n%s", out)
			}
			for _, flag := range tc.bools {
				if !regexp.MustCompile(`(?m)^ +` + regexp.QuoteMeta(flag) + `  +\S`).MatchString(out) {
					t.Errorf("help does not list %s as a plain flag:\n%s", flag, out)
				}
			}
		})
	}
}
