package server_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/testenv"
)

// findGrpcurl returns grpcurl (.ci/run installs it), or skips.
func findGrpcurl(t *testing.T) string {
	t.Helper()
	return testenv.Program(t, "grpcurl", "go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4")
}

// grpcurl, a client nobody here wrote, works through server reflection.
func TestGrpcurlThroughReflection(t *testing.T) {
	t.Parallel()
	grpcurl := findGrpcurl(t)
	e := servertest.Start(t)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(grpcurl, append([]string{"-plaintext"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("grpcurl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run(e.Server.GRPCAddr(), "list"); !strings.Contains(out, "chit.auth.v1.AuthService") || !strings.Contains(out, "chit.auth.v1.AuthProviders") {
		t.Fatalf("list:\n%s", out)
	}
	if out := run(e.Server.GRPCAddr(), "describe", "chit.auth.v1.AuthService.Token"); !strings.Contains(out, "TokenRequest") {
		t.Fatalf("describe:\n%s", out)
	}
	out := run("-d", `{"password_credential":{"username":"`+servertest.UserName+`","password":"`+servertest.UserPassword+`"}}`,
		e.Server.GRPCAddr(), "chit.auth.v1.AuthService/Token")
	if !strings.Contains(out, `"accessToken": "eyJ`) || !strings.Contains(out, `"refreshToken": "chit_rt_`) {
		t.Fatalf("Token:\n%s", out)
	}

	// The Admin API is listed and callable the same way, by an admin.
	if out := run(e.Server.GRPCAddr(), "describe", "chit.admin.v1.AdminService"); !strings.Contains(out, "rpc ListUsers") {
		t.Fatalf("describe AdminService:\n%s", out)
	}
	if err := e.Directory().CreateUser(t.Context(), "root", "root's long password", accounts.RoleAdmin, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	out = run("-d", `{"password_credential":{"username":"root","password":"root's long password"}}`, e.Server.GRPCAddr(), "chit.auth.v1.AuthService/Token")
	var admin struct{ AccessToken string }
	if err := json.Unmarshal([]byte(out), &admin); err != nil {
		t.Fatal(err)
	}
	out = run("-H", "authorization: Bearer "+admin.AccessToken, "-d", `{"page_size":1}`, e.Server.GRPCAddr(), "chit.admin.v1.AdminService/ListUsers")
	if !strings.Contains(out, `"name": "alice"`) || !strings.Contains(out, `"nextPageToken"`) {
		t.Fatalf("ListUsers:\n%s", out)
	}
}
