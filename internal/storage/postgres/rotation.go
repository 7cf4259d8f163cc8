package postgres

import (
	"bytes"
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/chit-auth/chit/internal/storage"
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

// rotationCommitters is how many groups may commit at once. One: each
// commit waits for its WAL flush (an fsync, which costs the database server
// CPU as well as time), so fewer, larger groups answer more rotations per
// fsync. In chit-bench growth on two cores, one committer rotated 4,400
// logins/s and four 3,900/s.
const rotationCommitters = 1

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

// rotateLogins rotates each login of the arrays in one statement (see
// rotateOne) and returns the indexes that won.
const rotateLogins = `UPDATE refresh_logins r SET hash = v.new_hash, previous_hash = r.hash, previous_rotated_at = v.issued_at,
	sealed_successor = v.sealed, generation = v.generation, role = v.role, scope = v.scope, audience = v.audience,
	issued_at = v.issued_at, expires_at = v.expires_at
	FROM unnest($1::int[], $2::text[], $3::bytea[], $4::bytea[], $5::bigint[], $6::bytea[], $7::bigint[], $8::text[], $9::text[],
		$10::text[], $11::bigint[])
		AS v(idx, family_id, old_hash, new_hash, issued_at, sealed, generation, role, scope, audience, expires_at)
	WHERE r.family_id = v.family_id AND r.hash = v.old_hash AND r.generation = v.generation - 1
	RETURNING v.idx`

// commitBatch applies batch in one statement and answers each rotation. A
// statement that fails as a whole (a deadlock with another replica's
// group, say) is retried one rotation at a time, so each caller gets its
// own outcome.
func (s *Store) commitBatch(batch []*rotation) {
	// No caller's context governs the group: one caller leaving must not
	// fail the others.
	ctx := context.Background()
	outcomes := make([]error, len(batch))
	// One rotation per login goes into the statement (an UPDATE applies at
	// most one row of its source to each row it changes); another of the
	// same login, and a token from before one record per login (two
	// statements), go alone afterwards.
	var applied, alone []int
	logins := map[string]bool{}
	for i, r := range batch {
		if r.successor.Generation == 1 || logins[r.successor.FamilyID] {
			alone = append(alone, i)
			continue
		}
		logins[r.successor.FamilyID] = true
		applied = append(applied, i)
	}
	if len(applied) == 1 {
		alone = append(alone, applied[0])
		applied = nil
	}
	if len(applied) > 0 {
		s.rotateTogether(ctx, batch, applied, outcomes)
	}
	for _, i := range alone {
		outcomes[i] = s.rotateOne(ctx, batch[i])
	}
	for i, r := range batch {
		r.result <- outcomes[i]
	}
}

// rotateTogether applies the rotations of batch at applied, each of another
// login, in one statement, and sets their outcomes.
func (s *Store) rotateTogether(ctx context.Context, batch []*rotation, applied []int, outcomes []error) {
	n := len(applied)
	idx, generation, issuedAt, expiresAt := make([]int32, n), make([]int64, n), make([]*int64, n), make([]*int64, n)
	oldHashes, newHashes, sealed := make([][]byte, n), make([][]byte, n), make([][]byte, n)
	families, roles, scopes, audiences := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for j, i := range applied {
		r := batch[i]
		next := r.successor
		idx[j], families[j], oldHashes[j], newHashes[j], issuedAt[j], sealed[j] = int32(i), next.FamilyID, r.oldHash, next.Hash, toUnix(next.IssuedAt), r.sealed
		generation[j], roles[j], scopes[j], audiences[j], expiresAt[j] = int64(next.Generation), next.Role, next.Scope, next.Audience, toUnix(next.ExpiresAt)
	}
	var winners []int32
	rows, err := s.pool.Query(ctx, rotateLogins, idx, families, oldHashes, newHashes, issuedAt, sealed, generation, roles, scopes, audiences, expiresAt)
	if err == nil {
		winners, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	}
	if err != nil {
		for _, i := range applied {
			outcomes[i] = s.rotateOne(ctx, batch[i])
		}
		return
	}
	won := map[int]bool{}
	for _, i := range winners {
		won[int(i)] = true
	}
	var lost []*rotation
	for _, i := range applied {
		if !won[i] {
			lost = append(lost, batch[i])
		}
	}
	known, err := s.knownTokens(ctx, lost)
	for _, i := range applied {
		switch {
		case won[i]:
		case err != nil:
			outcomes[i] = err
		case known[batch[i]]:
			outcomes[i] = storage.ErrConflict
		default:
			outcomes[i] = storage.ErrNotFound
		}
	}
}

// rotateOneTokenRecord marks a token stored before logins kept one record
// as rotated, keeping its row (so the token is recognised as reuse until it
// expires: it carries no MAC), and stores its successor as the login's
// record, in one transaction.
func (s *Store) rotateOneTokenRecord(ctx context.Context, r *rotation) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE refresh_tokens SET rotated_at = $1, replaced_by = $2, sealed_successor = $3
			WHERE hash = $4 AND family_id = $5 AND rotated_at IS NULL AND generation = 0`,
			toUnix(r.successor.IssuedAt), r.successor.Hash, r.sealed, r.oldHash, r.successor.FamilyID)
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
	var exists bool
	err = s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE hash = $1 AND family_id = $2)`, r.oldHash, r.successor.FamilyID).Scan(&exists)
	switch {
	case err != nil:
		return err
	case exists:
		return storage.ErrConflict
	}
	return storage.ErrNotFound
}

// errLost rolls back a rotation whose guard matched nothing.
var errLost = errors.New("rotation lost")

// knownTokens reports which of rotations rotate a token its login's record
// holds, as its current token or the one before (lost to another rotation,
// not unknown).
func (s *Store) knownTokens(ctx context.Context, rotations []*rotation) (map[*rotation]bool, error) {
	known := map[*rotation]bool{}
	if len(rotations) == 0 {
		return known, nil
	}
	families := make([]string, len(rotations))
	for i, r := range rotations {
		families[i] = r.successor.FamilyID
	}
	rows, err := s.pool.Query(ctx, `SELECT family_id, hash, previous_hash FROM refresh_logins WHERE family_id = ANY($1)`, families)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var family string
		var hash, previous []byte
		if err := rows.Scan(&family, &hash, &previous); err != nil {
			return nil, err
		}
		for _, r := range rotations {
			if r.successor.FamilyID == family && (bytes.Equal(r.oldHash, hash) || bytes.Equal(r.oldHash, previous)) {
				known[r] = true
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
	tag, err := s.pool.Exec(ctx, `UPDATE refresh_logins SET hash = $1, previous_hash = hash, previous_rotated_at = $2, sealed_successor = $3,
		generation = $4, role = $5, scope = $6, audience = $7, issued_at = $2, expires_at = $8
		WHERE family_id = $9 AND hash = $10 AND generation = $11`,
		next.Hash, toUnix(next.IssuedAt), r.sealed, int64(next.Generation), next.Role, next.Scope, next.Audience,
		toUnix(next.ExpiresAt), next.FamilyID, r.oldHash, int64(next.Generation)-1)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		known, err := s.knownTokens(ctx, []*rotation{r})
		switch {
		case err != nil:
			return err
		case known[r]:
			return storage.ErrConflict
		}
		return storage.ErrNotFound
	}
	return nil
}
