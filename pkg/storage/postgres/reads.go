package postgres

import (
	"context"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/chit-auth/chit/pkg/storage"
)

// The reads every refresh makes (the login's record, its user, its client)
// are batched as rotations are: each costs a round trip, and on a busy
// server most of a refresh's time on PostgreSQL went to the round trips of
// its reads, not to the rows. A reader takes every read of its kind waiting
// when it is free and answers them all from one query (key = ANY($1)); a
// read asked while the server is idle goes alone, at once. A read is only
// answered by a query that started after it was asked, so it sees every
// write committed before it.

// readersPerKind is how many queries of one kind may run at once: one, so
// that reads waiting meanwhile share the next query.
const readersPerKind = 1

// maxReadBatch bounds one query's keys.
const maxReadBatch = 256

// readTimeout bounds one batched query: no caller's context governs it.
const readTimeout = 30 * time.Second

// read is one point read waiting for its batch.
type read[V any] struct {
	key    string
	result chan readResult[V]
}

type readResult[V any] struct {
	value V
	err   error
}

// batchedReads runs the readers of one kind of row, found by a text key.
type batchedReads[V any] struct {
	requests chan *read[V]
	closing  chan struct{}
	done     sync.WaitGroup
	// fetch reads the rows of keys, which are distinct; a key without a
	// row is missing from the answer.
	fetch func(ctx context.Context, keys []string) (map[string]V, error)
}

func newBatchedReads[V any](fetch func(ctx context.Context, keys []string) (map[string]V, error)) *batchedReads[V] {
	b := &batchedReads[V]{requests: make(chan *read[V]), closing: make(chan struct{}), fetch: fetch}
	for range readersPerKind {
		b.done.Go(b.serve)
	}
	return b
}

func (b *batchedReads[V]) stop() {
	close(b.closing)
	b.done.Wait()
}

// get reads key's row; storage.ErrNotFound when there is none.
func (b *batchedReads[V]) get(ctx context.Context, key string) (V, error) {
	var zero V
	// A key PostgreSQL cannot hold as text names no row, and must not
	// fail the query of the reads batched with it.
	if !utf8.ValidString(key) || strings.ContainsRune(key, 0) {
		return zero, storage.ErrNotFound
	}
	r := &read[V]{key: key, result: make(chan readResult[V], 1)}
	select {
	case b.requests <- r:
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-b.closing:
		return zero, errStoreClosed
	}
	// A read changes nothing: its caller may leave without its answer.
	select {
	case res := <-r.result:
		return res.value, res.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

func (b *batchedReads[V]) serve() {
	for {
		select {
		case first := <-b.requests:
			batch := []*read[V]{first}
		gather:
			for len(batch) < maxReadBatch {
				select {
				case r := <-b.requests:
					batch = append(batch, r)
				default:
					break gather
				}
			}
			b.answer(batch)
		case <-b.closing:
			return
		}
	}
}

func (b *batchedReads[V]) answer(batch []*read[V]) {
	keys := make([]string, 0, len(batch))
	seen := make(map[string]bool, len(batch))
	for _, r := range batch {
		if !seen[r.key] {
			seen[r.key] = true
			keys = append(keys, r.key)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	rows, err := b.fetch(ctx, keys)
	cancel()
	for _, r := range batch {
		switch value, found := rows[r.key]; {
		case err != nil:
			r.result <- readResult[V]{err: err}
		case !found:
			r.result <- readResult[V]{err: storage.ErrNotFound}
		default:
			r.result <- readResult[V]{value: value}
		}
	}
}

// fetchRows runs query (whose $1 is the keys) and maps each row scanned to
// its key.
func fetchRows[V any](s *Store, query string, scan func(pgx.Row) (V, error), keyOf func(V) string) func(context.Context, []string) (map[string]V, error) {
	return func(ctx context.Context, keys []string) (map[string]V, error) {
		rows, err := s.pool.Query(ctx, query, keys)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		found := make(map[string]V, len(keys))
		for rows.Next() {
			value, err := scan(rows)
			if err != nil {
				return nil, err
			}
			found[keyOf(value)] = value
		}
		return found, rows.Err()
	}
}

// loginRecord is a login's record as read: its current token and the one
// before.
type loginRecord struct {
	current  storage.RefreshToken
	previous storage.PreviousRefreshToken
}

// reads holds a store's batched reads.
type reads struct {
	users   *batchedReads[storage.User]
	clients *batchedReads[storage.Client]
	logins  *batchedReads[loginRecord]
}

func (s *Store) startReads() {
	s.reads = reads{
		users: newBatchedReads(fetchRows(s, `SELECT `+userColumns+` FROM users WHERE name = ANY($1)`, scanUser,
			func(u storage.User) string { return u.Name })),
		clients: newBatchedReads(fetchRows(s, `SELECT `+clientColumns+` FROM clients WHERE id = ANY($1)`, scanClient,
			func(c storage.Client) string { return c.ID })),
		logins: newBatchedReads(fetchRows(s, `SELECT `+refreshLoginReadColumns+` FROM refresh_logins
			WHERE family_id = ANY($1) AND `+notRevoked("refresh_logins"),
			func(row pgx.Row) (loginRecord, error) {
				current, previous, err := scanRefreshRecord(row)
				return loginRecord{current, previous}, err
			},
			func(r loginRecord) string { return r.current.FamilyID })),
	}
}

func (s *Store) stopReads() {
	s.reads.users.stop()
	s.reads.clients.stop()
	s.reads.logins.stop()
}
