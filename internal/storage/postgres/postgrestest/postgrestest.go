// Package postgrestest gives each test its own empty schema on the
// PostgreSQL server named by CHIT_TEST_POSTGRES_DSN, and skips tests when it
// is unset.
package postgrestest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/chit-auth/chit/internal/testenv"
)

// DSNEnv names the variable that points the tests at a PostgreSQL server;
// without it they are skipped.
const DSNEnv = "CHIT_TEST_POSTGRES_DSN"

// FreshDSN creates an empty schema for one test and returns a DSN that
// uses it, so tests and concurrent CI runs never see each other's rows.
func FreshDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(DSNEnv)
	if dsn == "" {
		testenv.Missing(t, DSNEnv+" is not set (a PostgreSQL DSN; the PostgreSQL backend tests need it)")
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to %s: %v", DSNEnv, err)
	}
	defer admin.Close(ctx)
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	schema := "chit_test_" + hex.EncodeToString(suffix)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		_, _ = conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return dsn + " search_path=" + schema
	}
	query := u.Query()
	query.Set("search_path", schema)
	u.RawQuery = query.Encode()
	return u.String()
}
