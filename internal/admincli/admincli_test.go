package admincli_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/admincli"
)

// recordingConn answers every call with an empty reply and records its
// method.
type recordingConn struct{ methods []string }

func (c *recordingConn) Invoke(_ context.Context, method string, _, _ any, _ ...grpc.CallOption) error {
	c.methods = append(c.methods, method)
	return nil
}

func (c *recordingConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	panic("no Admin API call streams")
}

// Every AdminService RPC is reached by a command of the tree, and every
// command of the tree is one of these invocations: a verb added to the
// API without a command, or a command without its invocation here, fails.
func TestEveryAdminCallHasACommand(t *testing.T) {
	invocations := [][]string{
		{"user", "create", "alice", "--password-stdin"}, {"user", "get", "alice"}, {"user", "list"},
		{"user", "set-role", "alice", "admin"}, {"user", "set-grants", "alice"},
		{"user", "set-profile", "alice", "--group", "ops"}, {"user", "delete", "alice"},
		{"service", "create", "billing"}, {"service", "get", "billing"}, {"service", "list"}, {"service", "set-grants", "billing"},
		{"service", "set-token-exchange", "billing", "--allow-token-exchange", "inventory,ledger"},
		{"service", "set-dpop", "billing", "--require=true"},
		{"service", "rotate-secret", "billing"}, {"service", "delete", "billing"},
		{"client", "create", "dash"}, {"client", "get", "dash"}, {"client", "list"}, {"client", "update", "dash", "--pkce", "optional"},
		{"client", "set-grants", "dash"}, {"client", "set-origins", "dash"},
		{"client", "set-logout", "dash", "--post-logout-redirect-uri", "https://dash.example/bye"},
		{"client", "rotate-secret", "dash"}, {"client", "delete", "dash"},
		{"provider", "get", "p"}, {"provider", "list"}, {"provider", "delete", "p"},
		{"keys", "list"}, {"keys", "rotate"},
		{"login", "list", "alice"}, {"login", "revoke", "alice", "L"}, {"login", "revoke", "alice", "--all"},
		{"session", "list", "alice"}, {"session", "end", "alice", "S"}, {"session", "end", "alice", "--all"},
		{"api-key", "list", "alice"}, {"api-key", "revoke", "K"},
		{"federation", "create", "k8s", "--issuer", "https://kubernetes.default.svc", "--audience", "chit", "--service", "deployer", "--claim", "sub=x"},
		{"federation", "get", "k8s"}, {"federation", "list"}, {"federation", "delete", "k8s"},
		{"ssf", "create", "siem", "--push", "https://siem.example/ssf", "--audience", "https://siem.example"},
		{"ssf", "get", "siem"}, {"ssf", "list"}, {"ssf", "delete", "siem"}, {"ssf", "pause", "siem"}, {"ssf", "enable", "siem"},
		{"ssf", "verify", "siem"},
	}
	conn := &recordingConn{}
	root := &cobra.Command{Use: "admin"}
	root.AddCommand(admincli.Commands(admincli.Config{Program: "admin", Connect: func(cmd *cobra.Command) (adminv1.AdminServiceClient, context.Context, func(), error) {
		return adminv1.NewAdminServiceClient(conn), cmd.Context(), func() {}, nil
	}})...)
	invoked := map[string]bool{}
	for _, args := range invocations {
		root.SetArgs(args)
		root.SetIn(strings.NewReader("a long password\n"))
		root.SetOut(&bytes.Buffer{})
		root.SetErr(&bytes.Buffer{})
		if err := root.ExecuteContext(context.Background()); err != nil {
			t.Errorf("%v: %v", args, err)
		}
		invoked[strings.Join(args[:2], " ")] = true
	}
	for _, line := range admincli.Shape(root) {
		path := strings.Fields(line)
		if len(path) >= 2 && !strings.HasPrefix(path[1], "--") && !invoked[path[0]+" "+path[1]] {
			t.Errorf("the command %q is not invoked by this test", path[0]+" "+path[1])
		}
	}
	for _, method := range adminv1.AdminService_ServiceDesc.Methods {
		full := "/" + adminv1.AdminService_ServiceDesc.ServiceName + "/" + method.MethodName
		if !slices.Contains(conn.methods, full) {
			t.Errorf("no command calls %s", full)
		}
	}
}

// Shape sees a verb's flags and skips what one CLI marks as its own.
func TestShapeSkipsWhatIsLocalOnly(t *testing.T) {
	root := &cobra.Command{Use: "chitd"}
	root.AddCommand(admincli.Commands(admincli.Config{Program: "chitd"})...)
	create, _, _ := root.Find([]string{"user", "create"})
	create.Flags().Int("argon2-memory", 0, "")
	keys, _, _ := root.Find([]string{"keys"})
	keys.AddCommand(&cobra.Command{Use: "encrypt", Annotations: map[string]string{admincli.LocalOnly: "true"}})
	before := admincli.Shape(root)
	if !slices.Contains(before, "user create --argon2-memory --default-scope --display-name --email --email-verified --group --password-stdin --role --scope") {
		t.Fatalf("Shape misses a flag: %v", before)
	}
	admincli.MarkLocalOnly(create, "argon2-memory")
	after := admincli.Shape(root)
	if !slices.Contains(after, "user create --default-scope --display-name --email --email-verified --group --password-stdin --role --scope") || slices.ContainsFunc(after, func(line string) bool { return strings.Contains(line, "encrypt") }) {
		t.Fatalf("Shape shows what is local only: %v", after)
	}
}
