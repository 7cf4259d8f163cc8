package postgres

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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
	for _, tc := range []struct{ name, dsn, want string }{
		{"unset means generic plans", dsn, "force_generic_plan"},
		{"auto", withMode("auto"), "auto"},
		{"force_custom_plan", withMode("force_custom_plan"), "force_custom_plan"},
		// Empty: nothing is sent, the server's own setting stays.
		{"empty keeps the server's setting", withMode(""), "auto"},
	} {
		t.Run(tc.name, func(t *testing.T) {
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
		})
	}
}

// A batch of a refresh's reads looks up each login's user and revocation by
// key, however many users and revoked logins the store holds: planned as
// joins, PostgreSQL read the whole of users and of revoked_families (a hash
// join) for a batch of a few logins, a read whose cost grew with the store.
func TestBatchedLoginReadsLookUpByKey(t *testing.T) {
	ctx := context.Background()
	store, err := Open(ctx, postgrestest.FreshDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, seed := range []string{
		`INSERT INTO users (name, password_hash, role, created_at) SELECT 'user-' || i, 'x', 'USER', 0 FROM generate_series(1, 1000) i`,
		`INSERT INTO refresh_logins (family_id, subject, hash, generation, role, scope, issued_at, expires_at)
			SELECT 'login-' || i, 'user-' || (i % 1000), sha256(i::text::bytea), 1, 'USER', 'read', 0, 0 FROM generate_series(1, 20000) i`,
		`INSERT INTO revoked_families (family_id, revoked_at) SELECT 'revoked-' || i, 0 FROM generate_series(1, 1000) i`,
		`ANALYZE`,
	} {
		if _, err := store.pool.Exec(ctx, seed); err != nil {
			t.Fatal(err)
		}
	}
	for _, kind := range []struct {
		name  string
		query string
	}{{"a login with its user", loginWithUserRows.query}, {"a login", loginRows.query}} {
		t.Run(kind.name, func(t *testing.T) {
			// EXPLAIN EXECUTE shows the plan the prepared statement runs.
			conn, err := store.pool.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, `PREPARE planned(text[]) AS `+kind.query); err != nil {
				conn.Release()
				t.Fatal(err)
			}
			rows, err := conn.Query(ctx, `EXPLAIN EXECUTE planned('{login-1,login-2,login-3,login-4,login-5,login-6,login-7,login-8}')`)
			var plan []string
			if err == nil {
				plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
			}
			_, _ = conn.Exec(ctx, `DEALLOCATE planned`)
			conn.Release()
			if err != nil {
				t.Fatal(err)
			}
			text := strings.Join(plan, "\n")
			for _, table := range []string{"users", "revoked_families"} {
				if strings.Contains(text, "Seq Scan on "+table) {
					t.Errorf("the plan reads all of %s:\n%s", table, text)
				}
			}
		})
	}
}

// The hourly clean-up finds expired rows through the expiry index: under
// generic plans a cutoff's selectivity is a guess (a third of the table),
// for which PostgreSQL read the whole table to delete a few rows.
func TestCleanupUsesTheExpiryIndex(t *testing.T) {
	ctx := context.Background()
	store, err := Open(ctx, postgrestest.FreshDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, seed := range []string{
		`INSERT INTO api_keys (id, subject, name, scope, hash, created_at, expires_at)
			SELECT 'key-' || i, 'owner', 'key ' || i, 'read', sha256(i::text::bytea), 0, 2000000000000000000 + i FROM generate_series(1, 20000) i`,
		`ANALYZE api_keys`,
	} {
		if _, err := store.pool.Exec(ctx, seed); err != nil {
			t.Fatal(err)
		}
	}
	// pg_stat_xact_user_tables counts the scans of this connection not yet
	// reported, which changes only when a transaction ends: counted before
	// and after in one transaction, the difference is the clean-up's.
	tx, err := store.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	scans := func() (seq, index int64) {
		t.Helper()
		if err := tx.QueryRow(ctx, `SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relid = 'api_keys'::regclass`).Scan(&seq, &index); err != nil {
			t.Fatal(err)
		}
		return seq, index
	}
	seqBefore, indexBefore := scans()
	// Every key expires after this cutoff (in 2033; times are stored in
	// nanoseconds).
	if n, err := deleteInBatches(ctx, tx, "api_keys", "id", `expires_at < $1`, toUnix(time.Unix(2000000000, 0))); err != nil || n != 0 {
		t.Fatalf("deleteInBatches = %d, %v; want nothing deleted", n, err)
	}
	seq, index := scans()
	if seq != seqBefore || index == indexBefore {
		t.Fatalf("the clean-up read api_keys whole (%d sequential scans, %d index scans)", seq-seqBefore, index-indexBefore)
	}
}
