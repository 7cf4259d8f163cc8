package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

func (s *Store) GetLoginFailures(ctx context.Context, key string) (storage.LoginFailures, error) {
	var failures storage.LoginFailures
	var last sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT failures, last_failure_at FROM login_failures WHERE key = ?`, key).Scan(&failures.Count, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.LoginFailures{}, nil
	}
	failures.LastFailureAt = fromUnix(last)
	return failures, err
}

func (s *Store) ReserveLoginAttempt(ctx context.Context, key string, at time.Time, forgetAfter time.Duration, allow func(storage.LoginFailures) bool) (storage.LoginFailures, bool, error) {
	var before storage.LoginFailures
	allowed := false
	// The writer's transaction orders concurrent attempts: each reads the
	// count every earlier one left.
	err := s.updateRecord(ctx, func(tx *transaction) (*storage.SubjectRevocation, error) {
		var last sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT failures, last_failure_at FROM login_failures WHERE key = ?`, key).Scan(&before.Count, &last)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
		before.LastFailureAt = fromUnix(last)
		if before.Count > 0 && before.LastFailureAt.Before(at.Add(-forgetAfter)) {
			before = storage.LoginFailures{}
		}
		if allowed = allow(before); !allowed {
			return nil, nil
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO login_failures (key, failures, last_failure_at) VALUES (?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, last_failure_at = excluded.last_failure_at`,
			key, before.Count+1, toUnix(at))
		return nil, err
	})
	return before, allowed && err == nil, err
}

func (s *Store) ReleaseLoginAttempts(ctx context.Context, key string, n int) error {
	_, err := s.writer.ExecContext(ctx, `UPDATE login_failures SET failures = max(failures - ?, 0) WHERE key = ? AND failures > 0`, n, key)
	return err
}

func (s *Store) ResetLoginFailures(ctx context.Context, key string) error {
	_, err := s.writer.ExecContext(ctx, `DELETE FROM login_failures WHERE key = ?`, key)
	return err
}

func (s *Store) DeleteStaleLoginFailures(ctx context.Context, cutoff time.Time) (int, error) {
	return s.deleteInBatches(ctx, "login_failures", `last_failure_at < ?`, toUnix(cutoff))
}
