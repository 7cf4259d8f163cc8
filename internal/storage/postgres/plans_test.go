package postgres

import (
	"context"
	"net/url"
	"testing"

	"github.com/chit-auth/chit/internal/storage/postgres/postgrestest"
)

// Connections plan Chit's prepared statements once (a generic plan) unless
// the DSN chooses otherwise: custom plans re-planned every batched read and
// rotation.
func TestConnectionsUseGenericPlansUnlessTheDSNSays(t *testing.T) {
	ctx := context.Background()
	dsn := postgrestest.FreshDSN(t)
	withMode := func(mode string) string {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		query := u.Query()
		query.Set("plan_cache_mode", mode)
		u.RawQuery = query.Encode()
		return u.String()
	}
	for _, tc := range []struct{ dsn, want string }{
		{dsn, "force_generic_plan"},
		{withMode("auto"), "auto"},
	} {
		store, err := Open(ctx, tc.dsn)
		if err != nil {
			t.Fatal(err)
		}
		var mode string
		err = store.pool.QueryRow(ctx, `SHOW plan_cache_mode`).Scan(&mode)
		store.Close()
		if err != nil || mode != tc.want {
			t.Errorf("plan_cache_mode = %q (%v), want %q", mode, err, tc.want)
		}
	}
}
