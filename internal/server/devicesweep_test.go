package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/device"
	"github.com/chit-auth/chit/internal/secrets"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

// The periodic clean-up deletes device authorizations once expired, and
// keeps live ones.
func TestCleanupDeletesExpiredDeviceCodes(t *testing.T) {
	e := servertest.Start(t)
	ctx := context.Background()
	auth := authv1.NewAuthServiceClient(e.Conn)
	expiring, err := auth.StartDeviceLogin(ctx, &authv1.StartDeviceLoginRequest{})
	if err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(device.DefaultCodeTTL - time.Minute)
	live, err := auth.StartDeviceLogin(ctx, &authv1.StartDeviceLoginRequest{})
	if err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(2 * time.Minute)
	e.Server.DeleteExpired(ctx)
	digest := func(userCode string) []byte {
		code, _ := device.NormalizeUserCode(userCode)
		return secrets.Digest(code)
	}
	if _, err := e.Store.GetDeviceCodeByUserCode(ctx, digest(expiring.GetUserCode())); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an expired device code was kept: %v", err)
	}
	if _, err := e.Store.GetDeviceCodeByUserCode(ctx, digest(live.GetUserCode())); err != nil {
		t.Fatalf("a live device code was deleted: %v", err)
	}
}
