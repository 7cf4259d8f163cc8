package postgres

import (
	"context"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/chit-auth/chit/internal/storage"
)

// The reads every refresh makes (the login's record, its user, its client)
// are batched as rotations are: each costs a round trip, and on a busy
// server most of a refresh's time on PostgreSQL went to the round trips of
// its reads, not to the rows. The reader takes every read waiting when it is
// free and answers them all in one round trip: one query per kind of row
// (key = ANY($1)), sent together. A read asked while the server is idle goes
// alone, at once. A read is only answered by queries sent after it was
// asked, so it sees every write committed before it.

// maxReadBatch bounds the reads of one round trip.
const maxReadBatch = 256

// readTimeout bounds one round trip: no caller's context governs it.
const readTimeout = 30 * time.Second

// rowKind is one kind of row read by a text key.
type rowKind struct {
	// query reads the rows whose keys are in $1 (distinct keys).
	query string
	// scan reads one row and its key.
	scan func(pgx.Rows) (key string, value any, err error)
}

// read is one point read waiting for its round trip.
type read struct {
	kind   *rowKind
	key    string
	result chan readResult
}

type readResult struct {
	value any
	err   error
}

// reader sends the reads of a store.
type reader struct {
	store    *Store
	requests chan *read
	closing  chan struct{}
	done     sync.WaitGroup
}

func newReader(s *Store) *reader {
	r := &reader{store: s, requests: make(chan *read), closing: make(chan struct{})}
	r.done.Go(r.serve)
	return r
}

func (r *reader) stop() {
	close(r.closing)
	r.done.Wait()
}

// get reads the row of kind whose key is key; storage.ErrNotFound when
// there is none.
func get[V any](ctx context.Context, r *reader, kind *rowKind, key string) (V, error) {
	var zero V
	// A key PostgreSQL cannot hold as text names no row, and must not fail
	// the reads sent with it.
	if !utf8.ValidString(key) || strings.ContainsRune(key, 0) {
		return zero, storage.ErrNotFound
	}
	request := &read{kind: kind, key: key, result: make(chan readResult, 1)}
	select {
	case r.requests <- request:
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-r.closing:
		return zero, errStoreClosed
	}
	// A read changes nothing: its caller may leave without its answer.
	select {
	case res := <-request.result:
		if res.err != nil {
			return zero, res.err
		}
		return res.value.(V), nil
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

func (r *reader) serve() {
	for {
		select {
		case first := <-r.requests:
			batch := []*read{first}
		gather:
			for len(batch) < maxReadBatch {
				select {
				case next := <-r.requests:
					batch = append(batch, next)
				default:
					break gather
				}
			}
			r.answer(batch)
		case <-r.closing:
			return
		}
	}
}

// answer reads batch in one round trip and answers each read.
func (r *reader) answer(batch []*read) {
	var kinds []*rowKind
	keys := map[*rowKind][]string{}
	seen := map[*rowKind]map[string]bool{}
	for _, request := range batch {
		if seen[request.kind] == nil {
			seen[request.kind] = map[string]bool{}
			kinds = append(kinds, request.kind)
		}
		if !seen[request.kind][request.key] {
			seen[request.kind][request.key] = true
			keys[request.kind] = append(keys[request.kind], request.key)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	rows, err := r.fetch(ctx, kinds, keys)
	if err != nil && ctx.Err() != nil {
		// The round trip outlived readTimeout, no caller's deadline: the
		// database is not answering.
		err = storage.Unavailable(err)
	}
	for _, request := range batch {
		switch value, found := rows[request.kind][request.key]; {
		case err != nil:
			request.result <- readResult{err: err}
		case !found:
			request.result <- readResult{err: storage.ErrNotFound}
		default:
			request.result <- readResult{value: value}
		}
	}
}

// fetch sends one query per kind, together, and returns the rows found by
// kind and key.
func (r *reader) fetch(ctx context.Context, kinds []*rowKind, keys map[*rowKind][]string) (map[*rowKind]map[string]any, error) {
	queries := &pgx.Batch{}
	for _, kind := range kinds {
		queries.Queue(kind.query, keys[kind])
	}
	results := r.store.pool.SendBatch(ctx, queries)
	defer results.Close()
	found := map[*rowKind]map[string]any{}
	for _, kind := range kinds {
		rows, err := results.Query()
		if err != nil {
			return nil, err
		}
		found[kind] = map[string]any{}
		for rows.Next() {
			key, value, err := kind.scan(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			found[kind][key] = value
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return found, results.Close()
}

// loginRecord is a login's record as read: its current token and the one
// before.
type loginRecord struct {
	current  storage.RefreshToken
	previous storage.PreviousRefreshToken
}

// loginWithUser is a login's record and its user (nil when there is none),
// read together.
type loginWithUser struct {
	login loginRecord
	user  *storage.User
}

// rowWith scans a row's first columns with a scanner made for them alone,
// and the rest into more.
type rowWith struct {
	rows pgx.Rows
	more []any
}

func (r rowWith) Scan(dest ...any) error { return r.rows.Scan(append(dest, r.more...)...) }

// prefixed qualifies each of a list of columns with table (NULL::type
// placeholders stay as they are).
func prefixed(table, columns string) string {
	parts := strings.Split(columns, ", ")
	for i, column := range parts {
		if !strings.HasPrefix(column, "NULL") {
			parts[i] = table + "." + column
		}
	}
	return strings.Join(parts, ", ")
}

// revokedByKey joins table's records to their revocation, if any, as
// "revoked". A batch's reads look up their users and revocations one key at
// a time, after the records are found (OFFSET 0 keeps each subquery from
// becoming a join). As joins, PostgreSQL read the whole of users and of
// revoked_families into a hash for a batch of a few logins, a cost that grew
// with every user and every revocation kept; as a NOT EXISTS filter, it ran
// the check on every row scanned before the key test.
func revokedByKey(table string) string {
	return `LEFT JOIN LATERAL (SELECT family_id FROM revoked_families WHERE revoked_families.family_id = ` + table +
		`.family_id OFFSET 0) revoked ON true`
}

// The kinds of rows a refresh reads.
var (
	userRows = &rowKind{
		query: `SELECT ` + userColumns + ` FROM users WHERE name = ANY($1)`,
		scan: func(rows pgx.Rows) (string, any, error) {
			user, err := scanUser(rows)
			return user.Name, user, err
		},
	}
	clientRows = &rowKind{
		query: `SELECT ` + clientColumns + ` FROM clients WHERE id = ANY($1)`,
		scan: func(rows pgx.Rows) (string, any, error) {
			client, err := scanClient(rows)
			return client.ID, client, err
		},
	}
	loginWithUserRows = &rowKind{
		query: `SELECT ` + prefixed("r", refreshLoginReadColumns) + `, ` + prefixed("u", userColumns) + ` FROM refresh_logins r
			LEFT JOIN LATERAL (SELECT ` + userColumns + ` FROM users WHERE users.name = r.subject OFFSET 0) u ON true
			` + revokedByKey("r") + ` WHERE r.family_id = ANY($1) AND revoked.family_id IS NULL`,
		scan: func(rows pgx.Rows) (string, any, error) {
			var record loginWithUser
			var user storage.User
			var name, passwordHash, role, allowed, defaults, email, displayName, groups *string
			var createdAt *int64
			var emailVerified *bool
			current, previous, err := scanRefreshRecord(rowWith{rows, []any{&name, &passwordHash, &role, &allowed, &defaults, &createdAt,
				&email, &emailVerified, &displayName, &groups}})
			record.login = loginRecord{current, previous}
			if err == nil && name != nil {
				user.Name, user.PasswordHash, user.Role, user.CreatedAt = *name, *passwordHash, *role, fromUnix(createdAt)
				user.AllowedScopes, user.DefaultScopes = splitList(*allowed), splitList(*defaults)
				user.Email, user.EmailVerified, user.DisplayName, user.Groups = *email, *emailVerified, *displayName, splitList(*groups)
				record.user = &user
			}
			return current.FamilyID, record, err
		},
	}
	loginRows = &rowKind{
		query: `SELECT ` + prefixed("r", refreshLoginReadColumns) + ` FROM refresh_logins r
			` + revokedByKey("r") + ` WHERE r.family_id = ANY($1) AND revoked.family_id IS NULL`,
		scan: func(rows pgx.Rows) (string, any, error) {
			current, previous, err := scanRefreshRecord(rows)
			return current.FamilyID, loginRecord{current, previous}, err
		},
	}
)
