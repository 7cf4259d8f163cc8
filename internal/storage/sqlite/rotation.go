package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/chit-auth/chit/internal/storage"
)

// Refresh-token rotations are committed in groups. Each commit waits for an
// fsync (synchronous=FULL), and SQLite has one writer, so one transaction per
// rotation caps rotations at one per fsync however many callers wait. A
// committer goroutine instead takes every rotation that is waiting when it
// is free, applies each inside its own savepoint, and commits them together:
// one fsync answers them all, and none is answered before it is durable.

// maxRotationBatch bounds one group commit, so that the writer is not held
// for long by a single transaction.
const maxRotationBatch = 256

// rotation is one RotateRefreshToken call waiting for its group commit.
type rotation struct {
	oldHash   []byte
	successor storage.RefreshToken
	sealed    []byte
	result    chan error
}

// errStoreClosed answers a rotation asked of a closed store.
var errStoreClosed = errors.New("sqlite: store is closed")

func (s *Store) RotateRefreshToken(ctx context.Context, oldHash []byte, successor storage.RefreshToken, sealedSuccessor []byte) error {
	r := &rotation{oldHash: oldHash, successor: successor, sealed: sealedSuccessor, result: make(chan error, 1)}
	if s.onRotationQueued != nil {
		s.onRotationQueued()
	}
	select {
	case s.rotations <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closing:
		return errStoreClosed
	}
	// Once handed over, the outcome is the group's: a caller that gave up
	// now could not tell a committed rotation from a lost one.
	return <-r.result
}

// commitRotations runs until the store closes. The channel is unbuffered,
// so a rotation is either taken here or its caller is still free to leave.
func (s *Store) commitRotations() {
	defer close(s.committerDone)
	for {
		select {
		case first := <-s.rotations:
			batch := []*rotation{first}
		gather:
			for len(batch) < maxRotationBatch {
				select {
				case r := <-s.rotations:
					batch = append(batch, r)
				default:
					break gather
				}
			}
			s.commitBatch(batch)
		case <-s.closing:
			return
		}
	}
}

// commitBatch applies batch in one transaction and answers each rotation.
// A refused rotation (ErrConflict, ErrNotFound, ErrAlreadyExists) is rolled
// back to its savepoint and does not affect the others; any other error
// fails the whole group, and nothing of it is stored.
func (s *Store) commitBatch(batch []*rotation) {
	// No caller's context governs the group: one caller leaving must not
	// fail the others.
	ctx := context.Background()
	outcomes := make([]error, len(batch))
	err := func() error {
		tx, err := s.writer.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		for i, r := range batch {
			outcome, err := rotateInSavepoint(ctx, tx, r)
			if err != nil {
				return err
			}
			outcomes[i] = outcome
		}
		return tx.commit(ctx)
	}()
	s.groupCommits.Add(1)
	for i, r := range batch {
		if err != nil {
			r.result <- err
		} else {
			r.result <- outcomes[i]
		}
	}
}

// rotateInSavepoint returns the rotation's outcome, or an error that must
// fail the whole transaction.
func rotateInSavepoint(ctx context.Context, tx *transaction, r *rotation) (outcome, err error) {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT rotation`); err != nil {
		return nil, err
	}
	outcome = rotate(ctx, tx, r)
	if outcome != nil {
		if !refused(outcome) {
			return nil, outcome
		}
		if _, err := tx.ExecContext(ctx, `ROLLBACK TO rotation`); err != nil {
			return nil, err
		}
	}
	if _, err := tx.ExecContext(ctx, `RELEASE rotation`); err != nil {
		return nil, err
	}
	return outcome, nil
}

func refused(err error) bool {
	return errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrAlreadyExists)
}

// rotateLogin replaces a login's current token in its one record: the
// record's size does not grow with its rotations, and no index covers what
// changes. The guard (the old hash still current, of the generation before
// the successor's) is what makes one of many concurrent rotations win: they
// are applied one after another, in one group or in several, and only the
// first still finds the old token current.
const rotateLogin = `UPDATE refresh_logins SET hash = ?, previous_hash = hash, previous_rotated_at = ?, sealed_successor = ?,
	generation = ?, role = ?, scope = ?, audience = ?, issued_at = ?, expires_at = ?
	WHERE family_id = ? AND hash = ? AND generation = ?`

// rotateOneTokenRecord marks a token stored before logins kept one record
// as rotated, keeping its row (so the token is recognised as reuse until it
// expires: it carries no MAC); its successor then starts the login's record.
const rotateOneTokenRecord = `UPDATE refresh_tokens SET rotated_at = ?, replaced_by = ?, sealed_successor = ?
	WHERE hash = ? AND family_id = ? AND rotated_at IS NULL AND generation = 0`

func rotate(ctx context.Context, tx *transaction, r *rotation) error {
	next := r.successor
	if next.Generation == 1 {
		result, err := tx.ExecContext(ctx, rotateOneTokenRecord, toUnix(next.IssuedAt), next.Hash, r.sealed, r.oldHash, next.FamilyID)
		if err != nil {
			return err
		}
		if err := lostRotation(ctx, tx, r, result); err != nil {
			return err
		}
		return insertRefreshToken(ctx, tx, next)
	}
	result, err := tx.ExecContext(ctx, rotateLogin,
		next.Hash, toUnix(next.IssuedAt), r.sealed, int64(next.Generation), next.Role, next.Scope, next.Audience,
		toUnix(next.IssuedAt), toUnix(next.ExpiresAt), next.FamilyID, r.oldHash, int64(next.Generation)-1)
	if err != nil {
		return err
	}
	return lostRotation(ctx, tx, r, result)
}

// lostRotation tells why a rotation's guarded UPDATE changed nothing: the
// token is not current any more (ErrConflict), or unknown (ErrNotFound).
func lostRotation(ctx context.Context, tx *transaction, r *rotation, result sql.Result) error {
	if n, err := result.RowsAffected(); err != nil || n > 0 {
		return err
	}
	var exists int
	var err error
	if r.successor.Generation == 1 {
		err = tx.QueryRowContext(ctx, `SELECT 1 FROM refresh_tokens WHERE hash = ? AND family_id = ?`, r.oldHash, r.successor.FamilyID).Scan(&exists)
	} else {
		err = tx.QueryRowContext(ctx, `SELECT 1 FROM refresh_logins WHERE family_id = ? AND (hash = ? OR previous_hash = ?)`,
			r.successor.FamilyID, r.oldHash, r.oldHash).Scan(&exists)
	}
	if err != nil {
		return notFound(err)
	}
	return storage.ErrConflict
}
