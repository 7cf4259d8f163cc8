package server_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/passwords"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/postgres"
	"github.com/chit-auth/chit/internal/storage/postgres/postgrestest"
	"github.com/chit-auth/chit/internal/storage/sqlite"
	"github.com/chit-auth/chit/internal/storage/sqlite/sqlitetest"
)

// freshStores are an empty store of each backend (PostgreSQL when
// CHIT_TEST_POSTGRES_DSN is set).
func forEachFreshStore(t *testing.T, test func(t *testing.T, store storage.Store)) {
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			var store storage.Store
			var err error
			if backend == servertest.Postgres {
				store, err = postgres.Open(t.Context(), postgrestest.FreshDSN(t))
			} else {
				store, err = sqlite.Open(t.Context(), sqlitetest.Dir(t))
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			test(t, store)
		})
	}
}

func localAdmin(t *testing.T, store storage.Store, logs *servertest.LockedBuffer) adminv1.AdminServiceClient {
	t.Helper()
	admin, err := server.NewLocalAdmin(server.Config{
		Logger:              slog.New(slog.NewJSONHandler(logs, nil)),
		PasswordParams:      passwords.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32},
		MaxConcurrentHashes: 1, HashQueueTimeout: time.Second,
	}, store, "alice-at-the-console")
	if err != nil {
		t.Fatal(err)
	}
	return admin
}

// chitd's commands call the Admin API's handlers in process as the local
// operator: on an empty store (no signing key, no admin) they make the
// first admin, with the handlers' validation, and each call writes the
// audit line a call over the network writes, naming the local operator.
func TestLocalAdminMakesTheFirstAdminAndIsAudited(t *testing.T) {
	forEachFreshStore(t, func(t *testing.T, store storage.Store) {
		logs := &servertest.LockedBuffer{}
		admin := localAdmin(t, store, logs)
		ctx := t.Context()
		created, err := admin.CreateUser(ctx, &adminv1.CreateUserRequest{Name: "root", Password: "root's long password", Role: "ADMIN"})
		if err != nil || created.GetUser().GetRole() != "ADMIN" {
			t.Fatalf("CreateUser on an empty store: %v, %v", created, err)
		}
		if _, err := admin.CreateUser(ctx, &adminv1.CreateUserRequest{Name: "b o b", Password: "bob's long password"}); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("CreateUser with a bad name: %v, want InvalidArgument from the handler", err)
		}
		if _, err := admin.CreateUser(ctx, &adminv1.CreateUserRequest{Name: "bob", Password: "bob's long password"}); err != nil {
			t.Fatal(err)
		}
		// Pages are followed within the process.
		first, err := admin.ListUsers(ctx, &adminv1.ListUsersRequest{PageSize: 1})
		if err != nil || len(first.GetUsers()) != 1 || first.GetNextPageToken() == "" {
			t.Fatalf("ListUsers page 1: %v, %v", first, err)
		}
		second, err := admin.ListUsers(ctx, &adminv1.ListUsersRequest{PageSize: 1, PageToken: first.GetNextPageToken()})
		if err != nil || len(second.GetUsers()) != 1 || second.GetUsers()[0].GetName() != "root" {
			t.Fatalf("ListUsers page 2: %v, %v", second, err)
		}
		if keys, err := store.ListSigningKeys(ctx); err != nil || len(keys) != 0 {
			t.Fatalf("the operator commands made signing keys: %v, %v", keys, err)
		}
		var audits []map[string]any
		for _, line := range strings.Split(logs.String(), "\n") {
			var entry map[string]any
			if json.Unmarshal([]byte(line), &entry) == nil && entry["audit"] == true {
				audits = append(audits, entry)
			}
		}
		want := []struct{ action, target, outcome string }{
			{"CreateUser", "root", "OK"}, {"CreateUser", "b o b", "InvalidArgument"}, {"CreateUser", "bob", "OK"},
			{"ListUsers", "", "OK"}, {"ListUsers", "", "OK"},
		}
		if len(audits) != len(want) {
			t.Fatalf("%d audit lines, want %d: %v", len(audits), len(want), audits)
		}
		for i, w := range want {
			a := audits[i]
			if a["actor"] != "local-operator:alice-at-the-console" || a["action"] != w.action || a["target"] != w.target || a["outcome"] != w.outcome || a["transport"] != "local" {
				t.Errorf("audit line %d = %v, want the local operator's %+v", i, a, w)
			}
		}
		if strings.Contains(logs.String(), "root's long password") {
			t.Fatal("a password reached the logs")
		}
	})
}

// The local operator is a context value that only chitd's in-process
// channel sets and only its gatekeeper reads: no header a network caller
// sends, on gRPC or REST, makes it one.
func TestNetworkCallsCannotClaimTheLocalOperator(t *testing.T) {
	e := servertest.Start(t)
	forged := map[string]string{
		"local-operator":        "root",
		"x-chit-local-operator": "true",
		"x-chit-transport":      "local",
		"x-forwarded-user":      "local-operator",
	}
	for _, authorization := range []string{"", "LocalOperator root", "Bearer local-operator", "Bearer local-operator:root"} {
		md := metadata.New(forged)
		if authorization != "" {
			md.Set("authorization", authorization)
		}
		ctx := metadata.NewOutgoingContext(context.Background(), md)
		_, err := adminv1.NewAdminServiceClient(e.Conn).CreateUser(ctx, &adminv1.CreateUserRequest{Name: "intruder", Password: "intruder's long password", Role: "ADMIN"})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("gRPC CreateUser with forged headers and authorization %q: %v, want Unauthenticated", authorization, err)
		}
		headers := map[string]string{}
		for name, value := range forged {
			headers[name] = value
		}
		if authorization != "" {
			headers["Authorization"] = authorization
		}
		code, body := servertest.RawAdmin(t, e, http.MethodPost, "/v1/admin/users", "", `{"name":"intruder","password":"intruder's long password","role":"ADMIN"}`, headers)
		if code != http.StatusUnauthorized {
			t.Errorf("REST CreateUser with forged headers and authorization %q: %d %s, want 401", authorization, code, body)
		}
	}
	if _, err := e.Directory().GetUser(t.Context(), "intruder"); err == nil {
		t.Fatal("a network caller created an admin")
	}
	for _, line := range servertest.AuditLines(e) {
		if strings.HasPrefix(line["actor"].(string), "local-operator") {
			t.Fatalf("a network call was audited as the local operator: %v", line)
		}
	}
	// A USER's valid token with the headers stays a USER's.
	alice, err := authv1.NewAuthServiceClient(e.Conn).Token(t.Context(), servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
	if err != nil {
		t.Fatal(err)
	}
	md := metadata.New(forged)
	md.Set("authorization", "Bearer "+alice.GetAccessToken())
	if _, err := adminv1.NewAdminServiceClient(e.Conn).ListUsers(metadata.NewOutgoingContext(t.Context(), md), &adminv1.ListUsersRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a USER with forged headers: %v, want PermissionDenied", err)
	}
}
