package grpcapi

import (
	"context"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"google.golang.org/grpc/metadata"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/storage/sqlite"
	"github.com/chit-auth/chit/internal/storage/sqlite/sqlitetest"
	"github.com/chit-auth/chit/internal/tokens"
)

// The local operator's mark is read by the gatekeeper of chitd's channel
// alone: the server's gatekeepers ignore it even if it reached a call's
// context, and the local one admits nothing else.
func TestOnlyTheLocalGatekeeperReadsTheLocalOperator(t *testing.T) {
	marked := WithLocalOperator(context.Background(), "alice")
	store, err := sqlite.Open(t.Context(), sqlitetest.Dir(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	signingKeys, err := keys.Load(t.Context(), store, jwa.ES256, &keys.Sealer{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	network := NewGatekeeper(Config{}, Dependencies{Tokens: tokens.NewService(tokens.Config{}, tokens.Dependencies{Keys: signingKeys, Store: store, Now: time.Now})})
	if _, err := network.authorize(marked, adminv1.AdminService_CreateUser_FullMethodName); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("the server's gatekeeper on a marked call: %v, want Unauthenticated", err)
	}

	local := NewLocalGatekeeper()
	ctx, err := local.authorize(marked, adminv1.AdminService_CreateUser_FullMethodName)
	if caller, ok := CallerFrom(ctx); err != nil || !ok || caller.Subject != "local-operator:alice" {
		t.Fatalf("the local gatekeeper on a marked admin call: %+v, %v", caller, err)
	}
	bearer := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer anything"))
	if _, err := local.authorize(bearer, adminv1.AdminService_ListUsers_FullMethodName); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("the local gatekeeper on an unmarked call: %v, want Unauthenticated", err)
	}
	if _, err := local.authorize(marked, authv1.AuthService_CreateApiKey_FullMethodName); chiterr.KindOf(err) != chiterr.PermissionDenied {
		t.Fatalf("the local gatekeeper on a call that is not an admin's: %v, want PermissionDenied", err)
	}
	if _, err := local.authorize(marked, "/chit.admin.v1.AdminService/Backdoor"); chiterr.KindOf(err) != chiterr.PermissionDenied {
		t.Fatalf("the local gatekeeper on an unlisted method: %v, want PermissionDenied", err)
	}
	if got := WithLocalOperator(context.Background(), "").Value(localOperatorKey{}).(tokens.Claims).Subject; got != LocalOperatorSubject {
		t.Fatalf("the local operator without an OS user is %q", got)
	}
}
