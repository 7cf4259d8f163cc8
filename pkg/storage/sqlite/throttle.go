package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/chit-auth/chit/pkg/storage"
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

func (s *Store) RecordLoginFailure(ctx context.Context, key string, at time.Time, forgetAfter time.Duration) (storage.LoginFailures, error) {
	var failures storage.LoginFailures
	var last sql.NullInt64
	// One statement, so concurrent failures on several replicas all count.
	err := s.writer.QueryRowContext(ctx, `INSERT INTO login_failures (key, failures, last_failure_at) VALUES (?, 1, ?)
		ON CONFLICT (key) DO UPDATE SET
			failures = CASE WHEN login_failures.last_failure_at < ? THEN 1 ELSE login_failures.failures + 1 END,
			last_failure_at = excluded.last_failure_at
		RETURNING failures, last_failure_at`,
		key, toUnix(at), toUnix(at.Add(-forgetAfter))).Scan(&failures.Count, &last)
	failures.LastFailureAt = fromUnix(last)
	return failures, err
}

func (s *Store) ResetLoginFailures(ctx context.Context, key string) error {
	_, err := s.writer.ExecContext(ctx, `DELETE FROM login_failures WHERE key = ?`, key)
	return err
}

func (s *Store) DeleteStaleLoginFailures(ctx context.Context, cutoff time.Time) (int, error) {
	return s.deleteInBatches(ctx, "login_failures", `last_failure_at < ?`, toUnix(cutoff))
}
