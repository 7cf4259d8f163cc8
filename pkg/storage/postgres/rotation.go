package postgres

import (
	"bytes"
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chit-auth/chit/pkg/storage"
)

// Refresh-token rotations are committed in groups, as on SQLite: each
// commit waits for its WAL flush, so one statement per rotation caps a
// connection at one rotation per flush. Committers instead take every
// rotation waiting when they are free and apply them in one UPDATE, whose
// one commit answers them all; none is answered before it is durable.
// Exactly one of concurrent rotations of a token wins, on every replica:
// the UPDATE's guard is re-checked against the row's committed version
// once a concurrent writer's lock is released.

// maxRotationBatch bounds one group's statement.
const maxRotationBatch = 256

// rotationCommitters is how many groups may commit at once.
const rotationCommitters = 4

// rotation is one RotateRefreshToken call waiting for its group.
type rotation struct {
	oldHash   []byte
	successor storage.RefreshToken
	sealed    []byte
	result    chan error
}

// errStoreClosed answers a rotation asked of a closed store.
var errStoreClosed = errors.New("postgres: store is closed")

// rotationGroups runs the committers of a store.
type rotationGroups struct {
	requests chan *rotation
	closing  chan struct{}
	stop     sync.Once
	done     sync.WaitGroup
}

func (s *Store) startRotationCommitters() {
	s.rotations = &rotationGroups{requests: make(chan *rotation), closing: make(chan struct{})}
	for range rotationCommitters {
		s.rotations.done.Go(s.commitRotations)
	}
}

func (s *Store) stopRotationCommitters() {
	s.rotations.stop.Do(func() { close(s.rotations.closing) })
	s.rotations.done.Wait()
}

func (s *Store) RotateRefreshToken(ctx context.Context, oldHash []byte, successor storage.RefreshToken, sealedSuccessor []byte) error {
	r := &rotation{oldHash: oldHash, successor: successor, sealed: sealedSuccessor, result: make(chan error, 1)}
	select {
	case s.rotations.requests <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.rotations.closing:
		return errStoreClosed
	}
	// Once handed over, the outcome is the group's: a caller that gave up
	// now could not tell a committed rotation from a lost one.
	return <-r.result
}

// commitRotations runs until the store closes. The channel is unbuffered,
// so a rotation is either taken here or its caller is still free to leave.
func (s *Store) commitRotations() {
	for {
		select {
		case first := <-s.rotations.requests:
			batch := []*rotation{first}
		gather:
			for len(batch) < maxRotationBatch {
				select {
				case r := <-s.rotations.requests:
					batch = append(batch, r)
				default:
					break gather
				}
			}
			s.commitBatch(batch)
		case <-s.rotations.closing:
			return
		}
	}
}

// rotateLogins rotates each row of the arrays in one statement (see
// rotateOne) and returns the indexes that won.
const rotateLogins = `UPDATE refresh_tokens r SET hash = v.new_hash, previous_hash = r.hash, previous_rotated_at = v.issued_at,
	sealed_successor = v.sealed, generation = v.generation, role = v.role, scope = v.scope, client_id = v.client_id,
	audience = v.audience, issued_at = v.issued_at, expires_at = v.expires_at, login_salt = v.login_salt, replaced_by = NULL
	FROM unnest($1::int[], $2::bytea[], $3::bytea[], $4::bigint[], $5::bytea[], $6::bigint[], $7::text[], $8::text[], $9::text[],
		$10::text[], $11::bigint[], $12::bytea[])
		AS v(idx, old_hash, new_hash, issued_at, sealed, generation, role, scope, client_id, audience, expires_at, login_salt)
	WHERE r.hash = v.old_hash AND r.rotated_at IS NULL AND r.generation = v.generation - 1
	RETURNING v.idx`

// commitBatch applies batch in one statement and answers each rotation. A
// statement that fails as a whole (a successor hash already taken, or a
// deadlock with another replica's group) is retried one rotation at a time,
// so each caller gets its own outcome.
func (s *Store) commitBatch(batch []*rotation) {
	// No caller's context governs the group: one caller leaving must not
	// fail the others.
	ctx := context.Background()
	if len(batch) == 1 {
		batch[0].result <- s.rotateOne(ctx, batch[0])
		return
	}
	// Of rotations of one token in the group, the first is applied; the
	// others share its fate (conflict if it won).
	first := map[string]int{}
	var applied []int
	outcomes := make([]error, len(batch))
	for i, r := range batch {
		if _, seen := first[string(r.oldHash)]; !seen {
			first[string(r.oldHash)] = i
			if r.successor.Generation == 1 {
				// A token from before one record per login: rare, and
				// two statements (rotateOne).
				outcomes[i] = s.rotateOne(ctx, r)
				continue
			}
			applied = append(applied, i)
		}
	}
	n := len(applied)
	idx, generation := make([]int32, n), make([]int64, n)
	oldHashes, newHashes, sealed, salts := make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n)
	issuedAt, expiresAt := make([]*int64, n), make([]*int64, n)
	roles, scopes, clients, audiences := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for j, i := range applied {
		r := batch[i]
		next := r.successor
		idx[j], oldHashes[j], newHashes[j], issuedAt[j], sealed[j] = int32(i), r.oldHash, next.Hash, toUnix(next.IssuedAt), r.sealed
		generation[j], roles[j], scopes[j], clients[j], audiences[j] = int64(next.Generation), next.Role, next.Scope, next.ClientID, next.Audience
		expiresAt[j], salts[j] = toUnix(next.ExpiresAt), next.LoginSalt
	}
	won := map[int]bool{}
	var err error
	if n > 0 {
		var rows pgx.Rows
		var winners []int32
		if rows, err = s.pool.Query(ctx, rotateLogins, idx, oldHashes, newHashes, issuedAt, sealed, generation, roles, scopes, clients, audiences, expiresAt, salts); err == nil {
			winners, err = pgx.CollectRows(rows, pgx.RowTo[int32])
		}
		for _, i := range winners {
			won[int(i)] = true
		}
	}
	if err != nil {
		for _, i := range applied {
			outcomes[i] = s.rotateOne(ctx, batch[i])
		}
		s.answer(batch, first, outcomes)
		return
	}
	var lost [][]byte
	for _, i := range applied {
		if !won[i] {
			lost = append(lost, batch[i].oldHash)
		}
	}
	known, err := s.knownHashes(ctx, lost)
	for _, i := range applied {
		switch {
		case won[i]:
		case err != nil:
			outcomes[i] = err
		case known[string(batch[i].oldHash)]:
			outcomes[i] = storage.ErrConflict
		default:
			outcomes[i] = storage.ErrNotFound
		}
	}
	s.answer(batch, first, outcomes)
}

// answer sends each rotation its outcome; a rotation of a token another
// rotation of the group applied shares its fate (conflict if it won).
func (s *Store) answer(batch []*rotation, first map[string]int, outcomes []error) {
	for i, r := range batch {
		if j := first[string(r.oldHash)]; j != i {
			outcomes[i] = outcomes[j]
			if outcomes[j] == nil {
				outcomes[i] = storage.ErrConflict
			}
		}
		r.result <- outcomes[i]
	}
}

// rotateOneTokenRecord marks a token stored before logins kept one record
// as rotated, keeping its row (so the token is recognised as reuse until it
// expires: it carries no MAC), and stores its successor as the login's
// record, in one transaction.
func (s *Store) rotateOneTokenRecord(ctx context.Context, r *rotation) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE refresh_tokens SET rotated_at = $1, replaced_by = $2, sealed_successor = $3
			WHERE hash = $4 AND rotated_at IS NULL AND generation = 0`, toUnix(r.successor.IssuedAt), r.successor.Hash, r.sealed, r.oldHash)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errLost
		}
		return insertRefreshToken(ctx, tx, r.successor)
	})
	if !errors.Is(err, errLost) {
		return err
	}
	return s.whyLost(ctx, r.oldHash)
}

// whyLost tells why a rotation of oldHash matched nothing: the token is not
// current any more (ErrConflict), or unknown (ErrNotFound).
func (s *Store) whyLost(ctx context.Context, oldHash []byte) error {
	known, err := s.knownHashes(ctx, [][]byte{oldHash})
	if err != nil {
		return err
	}
	if known[string(oldHash)] {
		return storage.ErrConflict
	}
	return storage.ErrNotFound
}

// errLost rolls back a rotation whose guard matched nothing.
var errLost = errors.New("rotation lost")

// knownHashes reports which of hashes a login's record holds, as its
// current token or the one before.
func (s *Store) knownHashes(ctx context.Context, hashes [][]byte) (map[string]bool, error) {
	known := map[string]bool{}
	if len(hashes) == 0 {
		return known, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT hash, previous_hash FROM refresh_tokens WHERE hash = ANY($1) OR previous_hash = ANY($1)`, hashes)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var hash, previous []byte
		if err := rows.Scan(&hash, &previous); err != nil {
			return nil, err
		}
		for _, h := range hashes {
			if bytes.Equal(h, hash) || bytes.Equal(h, previous) {
				known[string(h)] = true
			}
		}
	}
	return known, rows.Err()
}

// rotateOne replaces the login's current token in its one record, in one
// statement. Concurrent updates of the record queue on its row lock; each
// re-checks the guard against the winner's committed version, where the old
// hash is no longer current, so exactly one wins.
func (s *Store) rotateOne(ctx context.Context, r *rotation) error {
	next := r.successor
	if next.Generation == 1 {
		return s.rotateOneTokenRecord(ctx, r)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE refresh_tokens SET hash = $1, previous_hash = hash, previous_rotated_at = $2, sealed_successor = $3,
		generation = $4, role = $5, scope = $6, client_id = $7, audience = $8, issued_at = $2, expires_at = $9, login_salt = $10, replaced_by = NULL
		WHERE hash = $11 AND rotated_at IS NULL AND generation = $12`,
		next.Hash, toUnix(next.IssuedAt), r.sealed, int64(next.Generation), next.Role, next.Scope, next.ClientID, next.Audience,
		toUnix(next.ExpiresAt), next.LoginSalt, r.oldHash, int64(next.Generation)-1)
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "23505" {
		return storage.ErrAlreadyExists // the successor's hash is taken
	}
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return s.whyLost(ctx, r.oldHash)
	}
	return nil
}
