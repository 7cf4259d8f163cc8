package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the "sqlite" driver, for measuring the file

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/postgres"
	"github.com/chit-auth/chit/internal/storage/sqlite"
	"github.com/chit-auth/chit/internal/tokens"
)

// growthCommand measures what a login costs the store as it rotates, and
// whether rotation slows as logins accumulate. It drives the token core in
// this process, on each backend: no transport, so only the store and the
// core are measured.
//
//  1. One store: `logins` logins rotate 100 times each, then on to
//     `rotations` times each; after each, rotations per second and the
//     store's bytes per login (SQLite: after a checkpoint, (page_count -
//     freelist_count) x page_size; PostgreSQL: after VACUUM,
//     pg_total_relation_size of the tables).
//  2. Two more stores per backend, one holding 100 live logins and one
//     100,000 (seeded through the store, then settled: a checkpoint or
//     VACUUM ANALYZE), rotate in turns with every other store of this run:
//     rotations per second at 100 and at 100,000 logins, on each backend,
//     in one run.
func growthCommand(args []string) error {
	flags := flag.NewFlagSet("chit-bench growth", flag.ContinueOnError)
	out := flags.String("out", "growth.md", "where to write the Markdown report")
	postgresDSN := flags.String("postgres", os.Getenv("CHIT_BENCH_POSTGRES_DSN"), "also run on this PostgreSQL (default $CHIT_BENCH_POSTGRES_DSN; empty: SQLite only); each store is a schema of its own, dropped afterwards")
	logins := flags.Int("logins", 32, "logins rotating at once in the growth phase (one caller each)")
	rotations := flags.Int("rotations", 10_000, "rotations per login at the end of the growth phase")
	live := flags.Int("live", 100_000, "logins in the large store of the throughput phase")
	duration := flags.Duration("duration", 4*time.Second, "how long each store of the throughput phase is counted")
	turn := flags.Duration("turn", 500*time.Millisecond, "how long each store of the throughput phase runs at a time")
	only := flags.String("only", "", "run one backend only (sqlite or postgres), for profiling; the comparison needs both")
	cpuProfile := flags.String("cpuprofile", "", "write this process's CPU profile here (the core and, on SQLite, the store run in it)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		file, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer file.Close()
		if err := pprof.StartCPUProfile(file); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	backends := []string{"sqlite"}
	if *postgresDSN != "" {
		backends = append(backends, "postgres")
	}
	if *only != "" {
		if *only != "sqlite" && (*only != "postgres" || *postgresDSN == "") {
			return fmt.Errorf("--only %q: want sqlite, or postgres with --postgres", *only)
		}
		backends = []string{*only}
	}
	ctx := context.Background()
	var doc strings.Builder
	fmt.Fprintf(&doc, "# Chit: storage as logins rotate\n\nMachine: %d cores (%s/%s). The token core runs in the load generator on each store (no\n"+
		"transport). Reproduce with `make bench-growth` (in bench/: `go run ./cmd/chit-bench growth`).\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)

	fmt.Fprintf(&doc, "\n## Bytes per login\n\n%d logins, one caller each, rotate 100 times each, then on to %d times each. Bytes: SQLite after a\n"+
		"checkpoint, (page_count - freelist_count) x page_size; PostgreSQL after VACUUM, pg_total_relation_size of the tables\n"+
		"(VACUUM also runs every 2s during the rotations, standing in for autovacuum).\n\n", *logins, *rotations)
	doc.WriteString("| backend | rotations per login | rotations/s | bytes per login |\n|---|---|---|---|\n")
	growth := map[string][2]float64{}
	for _, backend := range backends {
		points, err := measureGrowth(ctx, backend, *postgresDSN, *logins, []int{100, *rotations})
		if err != nil {
			return fmt.Errorf("%s: %w", backend, err)
		}
		for _, p := range points {
			fmt.Fprintf(&doc, "| %s | %d | %.0f | %.0f |\n", backend, p.rotations, p.rate, p.bytesPerLogin)
			fmt.Printf("%s: %d rotations per login: %.0f/s, %.0f bytes per login\n", backend, p.rotations, p.rate, p.bytesPerLogin)
		}
		growth[backend] = [2]float64{points[0].bytesPerLogin, points[1].bytesPerLogin}
	}

	fmt.Fprintf(&doc, "\n## Rotation throughput with 100 and with %d live logins\n\nEach store rotates %d logins (one caller each); the stores take turns of %v until each has been\ncounted for %v. After seeding, each store settles as it would on its own (SQLite: a checkpoint;\nPostgreSQL: VACUUM ANALYZE, which autovacuum would otherwise run during the turns).\n\n",
		*live, *logins, *turn, *duration)
	doc.WriteString("| backend | live logins | rotations/s | p50 | p99 |\n|---|---|---|---|---|\n")
	var callers []caller
	var names [][2]string
	for _, backend := range backends {
		for _, count := range []int{100, *live} {
			rotator, cleanup, err := newRotator(ctx, backend, *postgresDSN, *logins)
			if err != nil {
				return fmt.Errorf("%s: %w", backend, err)
			}
			defer cleanup()
			fmt.Printf("%s: seeding %d logins\n", backend, count)
			if err := rotator.seed(ctx, count-*logins); err != nil {
				return fmt.Errorf("%s: seed: %w", backend, err)
			}
			// The store settles as it would on its own after a bulk load
			// (a checkpoint on SQLite; VACUUM ANALYZE on PostgreSQL, which
			// autovacuum would otherwise run during the turns it measures).
			if _, err := rotator.bytes(ctx); err != nil {
				return fmt.Errorf("%s: settle: %w", backend, err)
			}
			callers = append(callers, caller{rotator.call, *logins})
			names = append(names, [2]string{backend, fmt.Sprint(count)})
		}
	}
	measured := takeTurns(callers, limits{warmup: time.Second, duration: *duration, turn: *turn}, 0)
	rates := map[string]float64{}
	for i, r := range measured {
		fmt.Fprintf(&doc, "| %s | %s | %.0f | %v | %v |\n", names[i][0], names[i][1], r.rate, r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond))
		rates[names[i][0]+"/"+names[i][1]] = r.rate
	}

	doc.WriteString("\nTargets:\n\n")
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**not met**"
	}
	for _, backend := range backends {
		g := growth[backend]
		fmt.Fprintf(&doc, "- %s, bytes per login after %d rotations / after 100: %.2f (target at most 2): %s\n", backend, *rotations, g[1]/g[0], mark(g[1] <= 2*g[0]))
		small, large := rates[backend+"/100"], rates[fmt.Sprintf("%s/%d", backend, *live)]
		fmt.Fprintf(&doc, "- %s, rotations at %d logins / at 100: %.2f (target at least 0.90): %s\n", backend, *live, large/small, mark(large >= 0.9*small))
	}
	if len(backends) == 2 {
		pg, lite := rates["postgres/100"], rates["sqlite/100"]
		// Here SQLite runs inside the measuring process and PostgreSQL
		// beside it on the same cores; the target compares the two behind
		// chitd, as clients see them (make bench, bench/results.md).
		fmt.Fprintf(&doc, "- PostgreSQL / SQLite rotations at 100 logins, the core alone: %.2f (for information: PostgreSQL's server shares"+
			" the cores with the core here; the target, at least 1.00, is measured behind chitd by `make bench`, in bench/results.md)\n", pg/lite)
	}
	fmt.Print(doc.String())
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(*out, []byte(doc.String()), 0o644)
}

type growthPoint struct {
	rotations     int
	rate          float64
	bytesPerLogin float64
}

// measureGrowth rotates logins on one fresh store up to each count of
// rotations per login and measures the store at each.
func measureGrowth(ctx context.Context, backend, dsn string, logins int, counts []int) ([]growthPoint, error) {
	r, cleanup, err := newRotator(ctx, backend, dsn, logins)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	// The store with its logins' first tokens but no rotation is the base:
	// what a login costs is what grows from there, per login.
	empty, err := r.bytes(ctx)
	if err != nil {
		return nil, err
	}
	var points []growthPoint
	done := 0
	for _, count := range counts {
		// On PostgreSQL every rotation leaves a dead row version, which
		// autovacuum reclaims; it wakes once a minute by default, longer
		// than a phase here lasts, so VACUUM stands in for it every 2s.
		stopVacuum := r.vacuumEvery(ctx, 2*time.Second)
		start := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, logins)
		for worker := range logins {
			wg.Go(func() {
				for range count - done {
					if err := r.call(ctx, worker); err != nil {
						errs[worker] = err
						return
					}
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		rate := float64(logins*(count-done)) / time.Since(start).Seconds()
		stopVacuum()
		done = count
		size, err := r.bytes(ctx)
		if err != nil {
			return nil, err
		}
		points = append(points, growthPoint{rotations: count, rate: rate, bytesPerLogin: float64(size-empty)/float64(logins) + r.bytesPerFirstToken})
	}
	return points, nil
}

// rotator is a token core on a fresh store with one login per caller, each
// rotated by its own caller.
type rotator struct {
	backend string
	store   storage.Store
	service *tokens.Service
	user    accounts.Principal
	// current is each caller's login's current refresh token.
	current []string
	// measure returns the store's bytes; bytesPerFirstToken is what one
	// login took before any rotation, measured when the callers' logins
	// were made.
	measure            func(ctx context.Context) (int64, error)
	bytesPerFirstToken float64
	// dsn is the PostgreSQL store's; empty on SQLite.
	dsn string
}

func newRotator(ctx context.Context, backend, dsn string, logins int) (*rotator, func(), error) {
	r := &rotator{backend: backend}
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	fail := func(err error) (*rotator, func(), error) {
		cleanup()
		return nil, nil, err
	}
	switch backend {
	case "postgres":
		schemaDSN, drop, err := freshSchema(ctx, dsn)
		if err != nil {
			return fail(err)
		}
		cleanups = append(cleanups, drop)
		store, err := postgres.Open(ctx, schemaDSN)
		if err != nil {
			return fail(err)
		}
		cleanups = append(cleanups, func() { store.Close() })
		r.store, r.dsn = store, schemaDSN
		r.measure = func(ctx context.Context) (int64, error) { return postgresBytes(ctx, schemaDSN) }
	default:
		dir, err := os.MkdirTemp("", "chit-growth-")
		if err != nil {
			return fail(err)
		}
		cleanups = append(cleanups, func() { os.RemoveAll(dir) })
		store, err := sqlite.Open(ctx, dir)
		if err != nil {
			return fail(err)
		}
		cleanups = append(cleanups, func() { store.Close() })
		r.store = store
		r.measure = func(ctx context.Context) (int64, error) { return sqliteBytes(ctx, filepath.Join(dir, sqlite.FileName)) }
	}
	now := time.Now()
	if err := r.store.CreateUser(ctx, storage.User{Name: "bench", PasswordHash: "unused", Role: "USER", CreatedAt: now.Add(-time.Minute)}); err != nil {
		return fail(err)
	}
	signing, err := keys.Load(ctx, r.store, "ES256", &keys.Sealer{}, now)
	if err != nil {
		return fail(err)
	}
	refreshKeys, err := keys.LoadRefreshTokenKeys(ctx, r.store, &keys.Sealer{}, now)
	if err != nil {
		return fail(err)
	}
	directory := accounts.NewDirectory(accounts.Config{}, accounts.Dependencies{Store: r.store, Now: time.Now, Random: rand.Reader})
	r.service = tokens.NewService(tokens.Config{
		Issuer: "https://chit.bench", Audience: "chit", AccessTokenTTL: 15 * time.Minute, RefreshTokenTTL: 30 * 24 * time.Hour,
		ClockSkew: 30 * time.Second, RefreshGracePeriod: 10 * time.Second, RefreshIdleTimeout: 7 * 24 * time.Hour, RevocationCacheTTL: 3 * time.Second,
	}, tokens.Dependencies{Keys: signing, RefreshKeys: refreshKeys, Store: r.store, Directory: directory, Now: time.Now, Random: rand.Reader})
	if r.user, err = directory.LookupUser(ctx, "bench"); err != nil {
		return fail(err)
	}
	before, err := r.bytes(ctx)
	if err != nil {
		return fail(err)
	}
	r.current = make([]string, logins)
	for i := range logins {
		if r.current[i], err = r.login(ctx); err != nil {
			return fail(err)
		}
	}
	after, err := r.bytes(ctx)
	if err != nil {
		return fail(err)
	}
	r.bytesPerFirstToken = float64(after-before) / float64(logins)
	return r, cleanup, nil
}

func (r *rotator) bytes(ctx context.Context) (int64, error) { return r.measure(ctx) }

// vacuumEvery runs VACUUM on a PostgreSQL store every interval until the
// returned function is called; nothing on SQLite, which updates in place.
func (r *rotator) vacuumEvery(ctx context.Context, interval time.Duration) func() {
	if r.dsn == "" {
		return func() {}
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		conn, err := pgx.Connect(ctx, r.dsn)
		if err != nil {
			return
		}
		defer conn.Close(context.Background())
		for {
			select {
			case <-stop:
				return
			case <-time.After(interval):
				_, _ = conn.Exec(ctx, `VACUUM refresh_tokens`)
			}
		}
	}()
	return func() {
		close(stop)
		<-stopped
	}
}

// login starts a login and returns its refresh token.
func (r *rotator) login(ctx context.Context) (string, error) {
	familyID, err := r.service.NewFamilyID()
	if err != nil {
		return "", err
	}
	grant, err := r.service.IssueForLogin(ctx, tokens.Login{
		Grantee:  accounts.Grantee{Principal: r.user, Client: accounts.FirstPartyClient(accounts.APIClientID)},
		FamilyID: familyID, WithRefreshToken: true, Kind: "password",
	})
	return grant.RefreshToken, err
}

// call rotates caller worker's login once.
func (r *rotator) call(ctx context.Context, worker int) error {
	grant, err := r.service.Refresh(ctx, tokens.RefreshRequest{Client: accounts.FirstPartyClient(accounts.APIClientID), RefreshToken: r.current[worker]})
	if err != nil {
		return err
	}
	r.current[worker] = grant.RefreshToken
	return nil
}

// seed adds n more live logins, through the core and the store, 32 at once.
func (r *rotator) seed(ctx context.Context, n int) error {
	const workers = 32
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if _, err := r.login(ctx); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// sqliteBytes is the database's used pages after a checkpoint.
func sqliteBytes(ctx context.Context, path string) (int64, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return 0, err
	}
	var pages, free, size int64
	for pragma, into := range map[string]*int64{"page_count": &pages, "freelist_count": &free, "page_size": &size} {
		if err := db.QueryRowContext(ctx, `PRAGMA `+pragma).Scan(into); err != nil {
			return 0, err
		}
	}
	return (pages - free) * size, nil
}

// postgresBytes is the size of the schema's tables, indexes and TOAST
// after VACUUM (with ANALYZE, which sizes nothing but leaves autovacuum
// nothing to do after a bulk load).
func postgresBytes(ctx context.Context, dsn string) (int64, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		return 0, err
	}
	var size int64
	err = conn.QueryRow(ctx, `SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'`).Scan(&size)
	return size, err
}

// freshSchema creates an empty schema on dsn's server and returns a DSN
// that uses it, and how to drop it.
func freshSchema(ctx context.Context, dsn string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(ctx)
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	schema := "chit_bench_" + hex.EncodeToString(suffix)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, err
	}
	drop := func() {
		// Bounded: a drop waiting on a lock must not hang the run's end.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			_, err = conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			conn.Close(context.Background())
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "chit-bench: schema %s left behind (drop it by hand): %v\n", schema, err)
		}
	}
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return dsn + " search_path=" + schema, drop, nil
	}
	query := u.Query()
	query.Set("search_path", schema)
	u.RawQuery = query.Encode()
	return u.String(), drop, nil
}
