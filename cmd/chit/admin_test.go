package main

import (
	"crypto/tls"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/admincli"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

// loginAs signs in through the browser as name and returns the flags that
// point chit at the server and the stored login.
func loginAs(t *testing.T, e *servertest.Env, name, password string) []string {
	t.Helper()
	credentials := filepath.Join(t.TempDir(), "credentials.json")
	common := []string{"--server", e.Server.GRPCAddr(), "--credentials", credentials}
	browser := func(authorizeURL string) error {
		b := e.NewBrowser(t)
		page := b.Open(t, authorizeURL)
		b.Submit(t, page, url.Values{"username": {name}, "password": {password}, "action": {"sign-in"}})
		return nil
	}
	if out, err := run(t, browser, e.Clock.Now, "", append([]string{"login"}, common...)...); err != nil {
		t.Fatalf("login: %q, %v", out, err)
	}
	return common
}

// chit admin drives a real server with the stored login of an admin: every
// user verb, in tables and in JSON.
func TestAdminUserCommands(t *testing.T) {
	e := servertest.Start(t)
	if err := e.Directory().CreateUser(t.Context(), "root", "root's long password", accounts.RoleAdmin, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	common := loginAs(t, e, "root", "root's long password")
	chit := func(stdin string, args ...string) (string, error) {
		t.Helper()
		return run(t, nil, e.Clock.Now, stdin, append(append([]string{"admin"}, args...), common...)...)
	}

	out, err := chit("carol's long password\n", "user", "create", "carol", "--password-stdin", "--scope", "reports:read", "--default-scope", "reports:read")
	if err != nil || !strings.Contains(out, "carol") || !strings.Contains(out, "reports:read") {
		t.Fatalf("user create: %q, %v", out, err)
	}
	if _, err := e.Directory().AuthenticateUser(t.Context(), "", "carol", "carol's long password"); err != nil {
		t.Fatalf("carol cannot sign in with the password given on stdin: %v", err)
	}
	out, err = chit("", "user", "list", "--page-size", "1")
	if err != nil || !strings.Contains(out, "NAME") || !strings.Contains(out, "carol") || !strings.Contains(out, servertest.UserName) ||
		!strings.Contains(out, "root") {
		t.Fatalf("user list (pages of one): %q, %v", out, err)
	}
	out, err = chit("", "user", "set-role", "carol", "admin", "--output", "json")
	var user struct{ Name, Role string }
	if err != nil || json.Unmarshal([]byte(out), &user) != nil || user.Name != "carol" || user.Role != "ADMIN" {
		t.Fatalf("user set-role --output json: %q, %v", out, err)
	}
	out, err = chit("", "user", "set-grants", "carol", "--scope", "reports:write")
	if err != nil || !strings.Contains(out, "reports:write") || strings.Contains(out, "reports:read") {
		t.Fatalf("user set-grants: %q, %v", out, err)
	}
	out, err = chit("", "user", "get", "carol", "-o", "json")
	var got struct {
		Name          string
		AllowedScopes []string `json:"allowed_scopes"`
	}
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || got.Name != "carol" || len(got.AllowedScopes) != 1 {
		t.Fatalf("user get -o json: %q, %v", out, err)
	}
	if out, err = chit("", "user", "delete", "carol"); err != nil || !strings.Contains(out, "deleted user carol") {
		t.Fatalf("user delete: %q, %v", out, err)
	}
	if _, err = chit("", "user", "get", "carol"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("user get after delete: %v", err)
	}
	if _, err = chit("", "user", "create", "dave"); err == nil || !strings.Contains(err.Error(), "--password-stdin") {
		t.Fatalf("user create without --password-stdin: %v", err)
	}
	if _, err = chit("", "user", "list", "--output", "yaml"); err == nil || !strings.Contains(err.Error(), "--output") {
		t.Fatalf("--output yaml: %v", err)
	}
}

// chit admin user create and set-profile carry the profile over the wire;
// get -o json shows it.
func TestAdminUserProfileCommands(t *testing.T) {
	e := servertest.Start(t)
	if err := e.Directory().CreateUser(t.Context(), "root", "root's long password", accounts.RoleAdmin, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	common := loginAs(t, e, "root", "root's long password")
	chit := func(stdin string, args ...string) (string, error) {
		t.Helper()
		return run(t, nil, e.Clock.Now, stdin, append(append([]string{"admin"}, args...), common...)...)
	}
	out, err := chit("carol's long password\n", "user", "create", "carol", "--password-stdin", "--email", "carol@example.com",
		"--display-name", "Carol C.", "--group", "ops")
	if err != nil || !strings.Contains(out, "email: carol@example.com;") || !strings.Contains(out, "groups: ops") {
		t.Fatalf("user create with a profile: %q, %v", out, err)
	}
	if out, err = chit("", "user", "set-profile", "carol", "--email-verified", "--group", "ops", "--group", "payments"); err != nil ||
		!strings.Contains(out, "carol@example.com (verified)") || !strings.Contains(out, "groups: ops payments") {
		t.Fatalf("user set-profile: %q, %v", out, err)
	}
	out, err = chit("", "user", "get", "carol", "-o", "json")
	var got struct {
		Email         string
		EmailVerified bool   `json:"email_verified"`
		DisplayName   string `json:"display_name"`
		Groups        []string
	}
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || got.Email != "carol@example.com" || !got.EmailVerified ||
		got.DisplayName != "Carol C." || !slices.Equal(got.Groups, []string{"ops", "payments"}) {
		t.Fatalf("user get -o json: %q, %v", out, err)
	}
	if _, err = chit("", "user", "set-profile", "carol", "--email", "carol"); err == nil || !strings.Contains(err.Error(), "email:") {
		t.Fatalf("user set-profile with a bad email: %v", err)
	}
}

// chit admin service: the secret printed once works, rotation with an
// overlap keeps the old one working, delete ends both.
func TestAdminServiceCommands(t *testing.T) {
	e := servertest.Start(t)
	if err := e.Directory().CreateUser(t.Context(), "root", "root's long password", accounts.RoleAdmin, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	common := loginAs(t, e, "root", "root's long password")
	chit := func(args ...string) (string, error) {
		t.Helper()
		return run(t, nil, e.Clock.Now, "", append(append([]string{"admin", "service"}, args...), common...)...)
	}
	secretOf := func(out string) string {
		for _, line := range strings.Split(out, "\n") {
			if secret, ok := strings.CutPrefix(line, "client_secret: "); ok {
				return secret
			}
		}
		t.Fatalf("no secret in %q", out)
		return ""
	}
	works := func(secret string) bool {
		_, err := e.Directory().AuthenticateService(t.Context(), "reports", secret)
		return err == nil
	}

	out, err := chit("create", "reports", "--scope", "inventory:read", "--audience", "inventory")
	if err != nil {
		t.Fatalf("service create: %q, %v", out, err)
	}
	first := secretOf(out)
	if !works(first) {
		t.Fatal("the printed secret does not work")
	}
	out, err = chit("list")
	if err != nil || !strings.Contains(out, "reports") || !strings.Contains(out, "inventory") || strings.Contains(out, "chit_cs_") {
		t.Fatalf("service list: %q, %v", out, err)
	}
	out, err = chit("set-grants", "reports", "--scope", "inventory:write", "-o", "json")
	if err != nil || !strings.Contains(out, `"inventory:write"`) || strings.Contains(out, "inventory:read") {
		t.Fatalf("service set-grants: %q, %v", out, err)
	}
	out, err = chit("rotate-secret", "reports", "--overlap", "1h")
	if err != nil || !strings.Contains(out, "previous secret works until") {
		t.Fatalf("service rotate-secret: %q, %v", out, err)
	}
	second := secretOf(out)
	if !works(first) || !works(second) {
		t.Fatal("during the overlap both secrets must work")
	}
	if out, err = chit("get", "reports"); err != nil || !strings.Contains(out, "reports") {
		t.Fatalf("service get: %q, %v", out, err)
	}
	if out, err = chit("delete", "reports"); err != nil || !strings.Contains(out, "deleted service reports") {
		t.Fatalf("service delete: %q, %v", out, err)
	}
	if works(first) || works(second) {
		t.Fatal("a deleted account's secrets work")
	}
}

// chit admin client: a confidential client's secret is printed once and
// rotates; a public client has none.
func TestAdminClientCommands(t *testing.T) {
	e := servertest.Start(t)
	if err := e.Directory().CreateUser(t.Context(), "root", "root's long password", accounts.RoleAdmin, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	common := loginAs(t, e, "root", "root's long password")
	chit := func(args ...string) (string, error) {
		t.Helper()
		return run(t, nil, e.Clock.Now, "", append(append([]string{"admin", "client"}, args...), common...)...)
	}
	out, err := chit("create", "dashboard", "--redirect-uri", "https://dash.example/cb", "--confidential", "--scope", "openid")
	if err != nil || !strings.Contains(out, "client_secret: chit_cs_") {
		t.Fatalf("client create: %q, %v", out, err)
	}
	secret := strings.TrimSpace(out[strings.Index(out, "chit_cs_"):])
	if _, err := e.Directory().AuthenticateClient(t.Context(), "dashboard", secret); err != nil {
		t.Fatalf("the printed secret does not authenticate: %v", err)
	}
	if out, err = chit("create", "mobile", "--redirect-uri", "http://127.0.0.1/cb"); err != nil || !strings.Contains(out, "public client") {
		t.Fatalf("public client create: %q, %v", out, err)
	}
	if out, err = chit("list"); err != nil || !strings.Contains(out, "confidential") || !strings.Contains(out, "mobile") {
		t.Fatalf("client list: %q, %v", out, err)
	}
	if out, err = chit("rotate-secret", "dashboard"); err != nil || !strings.Contains(out, "client_secret: chit_cs_") {
		t.Fatalf("client rotate-secret: %q, %v", out, err)
	}
	if _, err := e.Directory().AuthenticateClient(t.Context(), "dashboard", secret); err == nil {
		t.Fatal("the replaced secret still authenticates")
	}
	if _, err = chit("rotate-secret", "mobile"); err == nil || !strings.Contains(err.Error(), "public") {
		t.Fatalf("rotating a public client's secret: %v", err)
	}
	if out, err = chit("set-grants", "dashboard", "--scope", "openid", "--scope", "profile", "-o", "json"); err != nil || !strings.Contains(out, `"profile"`) {
		t.Fatalf("client set-grants: %q, %v", out, err)
	}
	if out, err = chit("get", "mobile"); err != nil || !strings.Contains(out, "public") {
		t.Fatalf("client get: %q, %v", out, err)
	}
	if out, err = chit("delete", "mobile"); err != nil || !strings.Contains(out, "deleted client mobile") {
		t.Fatalf("client delete: %q, %v", out, err)
	}
}

// chit admin keys and provider: list, rotate, delete.
func TestAdminKeysAndProviderCommands(t *testing.T) {
	e := servertest.Start(t)
	if err := e.Directory().CreateUser(t.Context(), "root", "root's long password", accounts.RoleAdmin, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	common := loginAs(t, e, "root", "root's long password")
	chit := func(args ...string) (string, error) {
		t.Helper()
		return run(t, nil, e.Clock.Now, "", append(append([]string{"admin"}, common...), args...)...)
	}
	out, err := chit("keys", "list")
	if err != nil || !strings.Contains(out, "active") || !strings.Contains(out, "next") {
		t.Fatalf("keys list: %q, %v", out, err)
	}
	if _, err = chit("keys", "rotate"); err == nil || !strings.Contains(err.Error(), "force") {
		t.Fatalf("keys rotate too soon: %v", err)
	}
	if out, err = chit("keys", "rotate", "--force"); err != nil || !strings.Contains(out, "retired") {
		t.Fatalf("keys rotate --force: %q, %v", out, err)
	}
	if out, err = chit("provider", "list"); err != nil || !strings.Contains(out, "CLAIMED") {
		t.Fatalf("provider list: %q, %v", out, err)
	}
	if _, err = chit("provider", "delete", "nobody"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("provider delete nobody: %v", err)
	}

	// root's own login, made by loginAs, is listed and can be ended.
	out, err = chit("login", "list", "root", "-o", "json")
	var logins struct {
		Logins []struct {
			LoginID string `json:"login_id"`
		}
	}
	if err != nil || json.Unmarshal([]byte(out), &logins) != nil || len(logins.Logins) != 1 {
		t.Fatalf("login list: %q, %v", out, err)
	}
	if _, err = chit("login", "revoke", "root"); err == nil || !strings.Contains(err.Error(), "--all") {
		t.Fatalf("login revoke without an id or --all: %v", err)
	}
	if out, err = chit("login", "revoke", servertest.UserName, "--all"); err != nil || !strings.Contains(out, "ended every login") {
		t.Fatalf("login revoke --all: %q, %v", out, err)
	}
	if out, err = chit("login", "revoke", "root", "--", logins.Logins[0].LoginID); err != nil || !strings.Contains(out, "ended login") {
		t.Fatalf("login revoke ID: %q, %v", out, err)
	}
}

// A person without the ADMIN role is told so, and nothing changes.
func TestAdminCommandsRefuseAUser(t *testing.T) {
	e := servertest.Start(t)
	common := loginAs(t, e, servertest.UserName, servertest.UserPassword)
	_, err := run(t, nil, e.Clock.Now, "", append([]string{"admin", "user", "delete", servertest.UserName}, common...)...)
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("user delete by a USER: %v", err)
	}
	if _, err := e.Directory().GetUser(t.Context(), servertest.UserName); err != nil {
		t.Fatalf("the refused delete removed the user: %v", err)
	}
}

// Without a stored login, chit admin says how to get one.
func TestAdminCommandsNeedALogin(t *testing.T) {
	e := servertest.Start(t)
	_, err := run(t, nil, e.Clock.Now, "", "admin", "user", "list", "--server", e.Server.GRPCAddr(),
		"--credentials", filepath.Join(t.TempDir(), "none.json"))
	if err == nil || !strings.Contains(err.Error(), "chit login") {
		t.Fatalf("without a login: %v", err)
	}
}

// Against a TLS server, chit connects with --ca-file (admin calls
// included), and refuses a server its CA did not sign.
func TestCommandsOverTLS(t *testing.T) {
	pki := servertest.NewPKI(t)
	servertest.ClientTLS = &tls.Config{RootCAs: pki.Pool, MinVersion: tls.VersionTLS12}
	t.Cleanup(func() { servertest.ClientTLS = nil })
	e := servertest.Start(t, func(cfg *server.Config) {
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{pki.Server}, MinVersion: tls.VersionTLS12}
	})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pki.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, nil, time.Now, servertest.UserPassword+"\n", "token", "--server", e.Server.GRPCAddr(), "--ca-file", caFile,
		"--user", servertest.UserName, "--password-stdin")
	if err != nil || !strings.HasPrefix(out, "eyJ") {
		t.Fatalf("token over TLS: %q, %v", out, err)
	}
	// The system's CAs do not know the test CA: --tls alone is refused.
	if _, err := run(t, nil, time.Now, servertest.UserPassword+"\n", "token", "--server", e.Server.GRPCAddr(), "--tls",
		"--user", servertest.UserName, "--password-stdin", "--timeout", "3s"); err == nil {
		t.Fatal("a server signed by an unknown CA was trusted")
	}
	if _, err := run(t, nil, time.Now, "", "admin", "user", "list", "--server", e.Server.GRPCAddr(), "--ca-file", filepath.Join(t.TempDir(), "none.pem"),
		"--credentials", filepath.Join(t.TempDir(), "c.json")); err == nil || !strings.Contains(err.Error(), "--ca-file") {
		t.Fatalf("a missing --ca-file: %v", err)
	}
}

// chit api-key: right after chit login a person makes a key, which a
// program exchanges; the key is listed without its secret and revoked; an
// admin sees and revokes anyone's; a login that is not recent is told what
// to do.
func TestAPIKeyCommands(t *testing.T) {
	e := servertest.Start(t)
	if err := e.Directory().CreateUser(t.Context(), "root", "root's long password", accounts.RoleAdmin, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	alice := loginAs(t, e, servertest.UserName, servertest.UserPassword)
	chit := func(common []string, args ...string) (string, error) {
		t.Helper()
		return run(t, nil, e.Clock.Now, "", append(append([]string{}, common...), args...)...)
	}
	out, err := chit(alice, "api-key", "create", "ci", "--days", "30")
	if err != nil || !strings.Contains(out, "key: chit_ak_") {
		t.Fatalf("api-key create: %q, %v", out, err)
	}
	key := strings.TrimSpace(strings.SplitN(out[strings.Index(out, "chit_ak_"):], "\n", 2)[0])
	exchanged, err := authv1.NewAuthServiceClient(e.Conn).Token(t.Context(), &authv1.TokenRequest{Credential: &authv1.TokenRequest_ApiKeyCredential{
		ApiKeyCredential: &authv1.ApiKeyCredential{ApiKey: key}}})
	if err != nil || checkToken(t, e, exchanged.GetAccessToken()).GetSubject() != servertest.UserName {
		t.Fatalf("exchanging the printed key: %v", err)
	}
	out, err = chit(alice, "api-key", "list", "-o", "json")
	var listed struct {
		APIKeys []struct{ ID, Name string } `json:"api_keys"`
	}
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed.APIKeys) != 1 || listed.APIKeys[0].Name != "ci" || strings.Contains(out, "chit_ak_") {
		t.Fatalf("api-key list: %q, %v", out, err)
	}
	if _, err = chit(alice, "api-key", "create", "long", "--days", "400"); err == nil || !strings.Contains(err.Error(), "--days") {
		t.Fatalf("api-key create --days 400: %v", err)
	}
	root := loginAs(t, e, "root", "root's long password")
	if out, err = chit(root, "admin", "api-key", "list", servertest.UserName); err != nil || !strings.Contains(out, listed.APIKeys[0].ID) {
		t.Fatalf("admin api-key list: %q, %v", out, err)
	}
	if out, err = chit(alice, "api-key", "revoke", "--", listed.APIKeys[0].ID); err != nil || !strings.Contains(out, "revoked API key") {
		t.Fatalf("api-key revoke: %q, %v", out, err)
	}
	if _, err = chit(root, "admin", "api-key", "revoke", "--", listed.APIKeys[0].ID); err == nil || !strings.Contains(err.Error(), "no API key") {
		t.Fatalf("admin api-key revoke of a revoked key: %v", err)
	}
	// Eleven minutes on, the stored login is no recent sign-in.
	e.Clock.Advance(11 * time.Minute)
	if _, err = chit(alice, "api-key", "create", "late"); err == nil || !strings.Contains(err.Error(), "chit login") {
		t.Fatalf("api-key create long after chit login: %v", err)
	}
}

// Stored tokens go to the server that issued them only, and never in plain
// text to another machine: a mistyped or hostile --server received an
// admin's bearer token (and, once it expired, the refresh token).
func TestStoredTokensStayWithTheirServer(t *testing.T) {
	e := servertest.Start(t)
	other := servertest.Start(t)
	common := loginAs(t, e, servertest.UserName, servertest.UserPassword)
	credentials := common[3]
	for _, args := range [][]string{
		{"whoami"}, {"token"}, {"logout"}, {"admin", "user", "list"}, {"api-key", "list"},
	} {
		_, err := run(t, nil, e.Clock.Now, "", append(args, "--server", other.Server.GRPCAddr(), "--credentials", credentials)...)
		if err == nil || !strings.Contains(err.Error(), "stored login is for "+e.Server.GRPCAddr()) {
			t.Errorf("%v against another server: %v", args, err)
		}
	}
	if _, err := os.Stat(credentials); err != nil {
		t.Fatalf("a refused logout removed the credentials: %v", err)
	}
	_, err := run(t, nil, e.Clock.Now, "", "whoami", "--server", "chit.example.com:9090", "--credentials", credentials)
	if err == nil || !strings.Contains(err.Error(), "plain text") {
		t.Fatalf("plain text to another machine: %v", err)
	}
	for _, local := range []string{"localhost:9090", "127.0.0.1:9090", "[::1]:9090"} {
		if !loopback(local) {
			t.Errorf("%s is this machine", local)
		}
	}
	if loopback("10.0.0.1:9090") || loopback("chit.example.com:9090") {
		t.Error("another machine counted as this one")
	}
}

// chit admin is the Admin API's one tree (admincli), which chitd mounts
// too (cmd/chitd checks the same of its operator commands): every verb is
// reachable from both CLIs, with the same flags.
func TestAdminCommandsAreTheAdminTree(t *testing.T) {
	canonical := &cobra.Command{Use: "admin"}
	canonical.AddCommand(admincli.Commands(admincli.Config{Program: "chit admin"})...)
	admin, _, err := (&cli{}).command().Find([]string{"admin"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := admincli.Shape(admin), admincli.Shape(canonical); !slices.Equal(got, want) || len(want) < 30 {
		t.Fatalf("chit admin differs from the Admin API's tree:\n got %q\nwant %q", got, want)
	}
}
