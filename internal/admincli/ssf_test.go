package admincli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/admincli"
)

// capturingConn records each call's request and answers with answer
// (when it is of the call's reply type) or an empty reply.
type capturingConn struct {
	methods  []string
	requests []proto.Message
	answer   proto.Message
}

func (c *capturingConn) Invoke(_ context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	c.methods = append(c.methods, method)
	c.requests = append(c.requests, proto.Clone(args.(proto.Message)))
	if c.answer != nil && proto.MessageName(c.answer) == proto.MessageName(reply.(proto.Message)) {
		proto.Merge(reply.(proto.Message), c.answer)
	}
	return nil
}

func (c *capturingConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	panic("no Admin API call streams")
}

// runSSF runs `admin ARGS...` over conn with stdin and returns what it
// printed.
func runSSF(t *testing.T, conn *capturingConn, stdin string, args ...string) (string, error) {
	t.Helper()
	root := &cobra.Command{Use: "admin", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(admincli.Commands(admincli.Config{Program: "admin", Connect: func(cmd *cobra.Command) (adminv1.AdminServiceClient, context.Context, func(), error) {
		return adminv1.NewAdminServiceClient(conn), cmd.Context(), func() {}, nil
	}})...)
	var out bytes.Buffer
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// ssf create sends what its flags say, and takes the push stream's
// Authorization value from a file, a variable or standard input, never
// from an argument.
func TestSSFCreate(t *testing.T) {
	authFile := filepath.Join(t.TempDir(), "receiver.auth")
	if err := os.WriteFile(authFile, []byte("Bearer from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSF_TEST_AUTHORIZATION", "Bearer from-the-environment")
	push := []string{"ssf", "create", "siem", "--push", "https://siem.example/ssf", "--audience", "https://siem.example"}
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		want  *adminv1.CreateSecurityEventStreamRequest
	}{
		{"push without authorization", append(push, "--description", "the SIEM",
			"--event-type", "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
			"--event-type", "https://schemas.openid.net/secevent/caep/event-type/credential-change"), "",
			&adminv1.CreateSecurityEventStreamRequest{Id: "siem", Description: "the SIEM", Delivery: "push", EndpointUrl: "https://siem.example/ssf",
				Audience: "https://siem.example", EventTypes: []string{"https://schemas.openid.net/secevent/caep/event-type/session-revoked",
					"https://schemas.openid.net/secevent/caep/event-type/credential-change"}}},
		{"push with --authorization-file", append(push, "--authorization-file", authFile), "",
			&adminv1.CreateSecurityEventStreamRequest{Id: "siem", Delivery: "push", EndpointUrl: "https://siem.example/ssf",
				Audience: "https://siem.example", Authorization: "Bearer from-a-file"}},
		{"push with --authorization-env", append(push, "--authorization-env", "SSF_TEST_AUTHORIZATION"), "",
			&adminv1.CreateSecurityEventStreamRequest{Id: "siem", Delivery: "push", EndpointUrl: "https://siem.example/ssf",
				Audience: "https://siem.example", Authorization: "Bearer from-the-environment"}},
		{"push with --authorization-stdin", append(push, "--authorization-stdin"), "Bearer from-stdin\n",
			&adminv1.CreateSecurityEventStreamRequest{Id: "siem", Delivery: "push", EndpointUrl: "https://siem.example/ssf",
				Audience: "https://siem.example", Authorization: "Bearer from-stdin"}},
		{"poll", []string{"ssf", "create", "gateway", "--poll", "--receiver", "api-gateway", "--audience", "https://gateway.example"}, "",
			&adminv1.CreateSecurityEventStreamRequest{Id: "gateway", Delivery: "poll", Receiver: "api-gateway", Audience: "https://gateway.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := &capturingConn{}
			if _, err := runSSF(t, conn, tc.stdin, tc.args...); err != nil {
				t.Fatal(err)
			}
			if len(conn.requests) != 1 || !proto.Equal(conn.requests[0], tc.want) {
				t.Fatalf("sent %v, want %v", conn.requests, tc.want)
			}
		})
	}
}

// ssf create refuses, before any call, what cannot make a stream, and
// never takes the Authorization value as an argument.
func TestSSFCreateRefuses(t *testing.T) {
	emptyFile := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(emptyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSF_TEST_EMPTY", "")
	push := []string{"ssf", "create", "siem", "--push", "https://siem.example/ssf", "--audience", "a"}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"neither push nor poll", []string{"ssf", "create", "siem", "--audience", "a"}, "--push URL"},
		{"both push and poll", append(push, "--poll"), "not both"},
		{"a receiver for push", append(push, "--receiver", "svc"), "--receiver is for a poll stream"},
		{"an authorization for poll", []string{"ssf", "create", "gw", "--poll", "--receiver", "svc", "--audience", "a",
			"--authorization-env", "HOME"}, "for a push stream"},
		{"no audience", []string{"ssf", "create", "siem", "--push", "https://siem.example/ssf"}, "audience"},
		{"the authorization as an argument", append(push, "--authorization", "Bearer on-argv"), "unknown flag"},
		{"two ways to the authorization", append(push, "--authorization-env", "HOME", "--authorization-stdin"), "authorization"},
		{"an empty authorization file", append(push, "--authorization-file", emptyFile), "empty"},
		{"an empty authorization variable", append(push, "--authorization-env", "SSF_TEST_EMPTY"), "empty"},
		{"an unset authorization variable", append(push, "--authorization-env", "SSF_TEST_UNSET_VARIABLE"), "not set"},
		{"empty standard input", append(push, "--authorization-stdin"), "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := &capturingConn{}
			_, err := runSSF(t, conn, "", tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
			}
			if len(conn.methods) != 0 {
				t.Fatalf("it called %v", conn.methods)
			}
		})
	}
}

// pause, enable and verify send their stream's id with the status or state
// they stand for.
func TestSSFStatusAndVerify(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want proto.Message
	}{
		{[]string{"ssf", "pause", "siem"}, &adminv1.SetSecurityEventStreamStatusRequest{Id: "siem", Status: "paused"}},
		{[]string{"ssf", "enable", "siem"}, &adminv1.SetSecurityEventStreamStatusRequest{Id: "siem", Status: "enabled"}},
		{[]string{"ssf", "verify", "siem", "--state", "check-1"}, &adminv1.VerifySecurityEventStreamRequest{Id: "siem", State: "check-1"}},
		{[]string{"ssf", "verify", "siem"}, &adminv1.VerifySecurityEventStreamRequest{Id: "siem"}},
	} {
		conn := &capturingConn{}
		if _, err := runSSF(t, conn, "", tc.args...); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if len(conn.requests) != 1 || !proto.Equal(conn.requests[0], tc.want) {
			t.Errorf("%v sent %v, want %v", tc.args, conn.requests, tc.want)
		}
	}
}

// The table shows a push stream's URL and that it has an Authorization
// value, a poll stream's receiver, and the delivery state; JSON is the
// answer with the proto's names.
func TestSSFPrint(t *testing.T) {
	created := timestamppb.New(timestamppb.Now().AsTime().Truncate(1e9))
	push := &adminv1.SecurityEventStream{Id: "siem", Delivery: "push", EndpointUrl: "https://siem.example/ssf", Audience: "https://siem.example",
		Status: "enabled", Position: "1-0-42", LastError: "HTTP 503", HasAuthorization: true, CreateTime: created}
	poll := &adminv1.SecurityEventStream{Id: "gateway", Delivery: "poll", Receiver: "api-gateway", Audience: "https://gateway.example",
		EventTypes: []string{"https://schemas.openid.net/secevent/caep/event-type/session-revoked"}, Status: "paused"}
	conn := &capturingConn{answer: &adminv1.ListSecurityEventStreamsResponse{Streams: []*adminv1.SecurityEventStream{poll, push}}}
	out, err := runSSF(t, conn, "", "ssf", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("list printed %q", out)
	}
	for _, want := range []string{"gateway", "poll", "api-gateway", "session-revoked", "paused"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("the poll stream's line %q lacks %q", lines[1], want)
		}
	}
	for _, want := range []string{"siem", "push", "https://siem.example/ssf", "set", "enabled", "1-0-42", "HTTP 503", "all"} {
		if !strings.Contains(lines[2], want) {
			t.Errorf("the push stream's line %q lacks %q", lines[2], want)
		}
	}
	conn = &capturingConn{answer: &adminv1.GetSecurityEventStreamResponse{Stream: push}}
	out, err = runSSF(t, conn, "", "ssf", "get", "siem", "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"endpoint_url": "https://siem.example/ssf"`, `"has_authorization": true`, `"position": "1-0-42"`} {
		if !strings.Contains(out, want) {
			t.Errorf("get --output json printed %s, without %s", out, want)
		}
	}
}

// The help of ssf create shows both kinds of stream and how the
// Authorization value is given.
func TestSSFCreateHelp(t *testing.T) {
	out, err := runSSF(t, &capturingConn{}, "", "ssf", "create", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"admin ssf create siem --push", "admin ssf create gateway --poll --receiver", "--authorization-file", "--authorization-env", "RFC 8935", "RFC 8936"} {
		if !strings.Contains(out, want) {
			t.Errorf("ssf create --help lacks %q", want)
		}
	}
}
