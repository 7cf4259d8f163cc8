package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chit-auth/chit/internal/storage"
)

func (s *Store) GetLoginFailures(ctx context.Context, key string) (storage.LoginFailures, error) {
	var failures storage.LoginFailures
	var last *int64
	err := s.pool.QueryRow(ctx, `SELECT failures, last_failure_at FROM login_failures WHERE key = $1`, key).Scan(&failures.Count, &last)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.LoginFailures{}, nil
	}
	failures.LastFailureAt = fromUnix(last)
	return failures, err
}

func (s *Store) ReserveLoginAttempt(ctx context.Context, key string, at time.Time, forgetAfter time.Duration, allow func(storage.LoginFailures) bool) (storage.LoginFailures, bool, error) {
	var before storage.LoginFailures
	allowed := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// The row exists before it is locked, so that concurrent first
		// attempts queue on it too.
		if _, err := tx.Exec(ctx, `INSERT INTO login_failures (key, failures, last_failure_at) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING`,
			key, toUnix(at)); err != nil {
			return err
		}
		var last *int64
		if err := tx.QueryRow(ctx, `SELECT failures, last_failure_at FROM login_failures WHERE key = $1 FOR UPDATE`, key).
			Scan(&before.Count, &last); err != nil {
			return err
		}
		before.LastFailureAt = fromUnix(last)
		if before.Count == 0 || before.LastFailureAt.Before(at.Add(-forgetAfter)) {
			before = storage.LoginFailures{}
		}
		if allowed = allow(before); !allowed {
			return nil
		}
		_, err := tx.Exec(ctx, `UPDATE login_failures SET failures = $1, last_failure_at = $2 WHERE key = $3`, before.Count+1, toUnix(at), key)
		return err
	})
	return before, allowed && err == nil, err
}

func (s *Store) ReleaseLoginAttempts(ctx context.Context, key string, n int) error {
	_, err := s.pool.Exec(ctx, `UPDATE login_failures SET failures = GREATEST(failures - $1, 0) WHERE key = $2 AND failures > 0`, n, key)
	return err
}

func (s *Store) ResetLoginFailures(ctx context.Context, key string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM login_failures WHERE key = $1`, key)
	return err
}

func (s *Store) DeleteStaleLoginFailures(ctx context.Context, cutoff time.Time) (int, error) {
	return deleteInBatches(ctx, s.pool, "login_failures", "key", `last_failure_at < $1`, toUnix(cutoff))
}
