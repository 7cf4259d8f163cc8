// Package corerules_test holds the layout's rules that no compiler checks:
// the core knows nothing of its transports.
package corerules_test

import (
	"go/build"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// core are the packages that issue, check and store tokens. Transports
// (gRPC, the REST gateway, the OAuth endpoints, the sign-in page) call them;
// they never call back into a transport, so a new transport needs no change
// here and errors are translated once, at the edge.
var core = []string{
	"accounts", "authorize", "chiterr", "grants", "keys", "logout", "passwords", "providers", "secrets", "tokens",
	"storage", "storage/sqlite", "storage/postgres", "storage/storagetest",
}

// forbidden reports whether a core package may not import path: gRPC, the
// generated API and net/http (and its subpackages) belong to transports.
func forbidden(path string) bool {
	return path == "net/http" || strings.HasPrefix(path, "net/http/") ||
		path == "google.golang.org/grpc" || strings.HasPrefix(path, "google.golang.org/grpc/") ||
		strings.HasPrefix(path, "github.com/grpc-ecosystem/") ||
		strings.HasPrefix(path, "github.com/chit-auth/chit/gen/") ||
		strings.HasPrefix(path, "github.com/chit-auth/chit/internal/grpcapi") ||
		strings.HasPrefix(path, "github.com/chit-auth/chit/internal/gateway") ||
		strings.HasPrefix(path, "github.com/chit-auth/chit/internal/oauth2http") ||
		strings.HasPrefix(path, "github.com/chit-auth/chit/internal/signinpage") ||
		strings.HasPrefix(path, "github.com/chit-auth/chit/internal/server")
}

// TestCoreImportsNoTransport checks the core's own imports (libraries it
// uses, such as jwx, may import net/http themselves; that is theirs).
func TestCoreImportsNoTransport(t *testing.T) {
	for _, dir := range core {
		pkg, err := build.Default.ImportDir(filepath.Join("..", dir), 0)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, path := range pkg.Imports {
			if forbidden(path) {
				t.Errorf("internal/%s imports %s: the core must not know its transports", dir, path)
			}
		}
	}
}

// TestTheRuleCatchesATransport makes sure the check above can fail.
func TestTheRuleCatchesATransport(t *testing.T) {
	for _, path := range []string{"net/http", "net/http/httptest", "google.golang.org/grpc/codes", "github.com/chit-auth/chit/gen/chit/auth/v1"} {
		if !forbidden(path) {
			t.Errorf("%s is not caught", path)
		}
	}
	for _, path := range []string{"net/url", "github.com/chit-auth/chit/internal/storage", "github.com/lestrrat-go/jwx/v2/jwt"} {
		if forbidden(path) {
			t.Errorf("%s is caught", path)
		}
	}
}

// TestCLILinksNoServerCore: the command-line client needs gRPC, the
// generated API and its own helpers, never the server's core or stores.
func TestCLILinksNoServerCore(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/chit-auth/chit/cmd/chit").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, core := range core {
			if dep == "github.com/chit-auth/chit/internal/"+core {
				t.Errorf("cmd/chit links %s", dep)
			}
		}
	}
}
