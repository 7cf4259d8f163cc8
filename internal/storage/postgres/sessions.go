package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chit-auth/chit/internal/storage"
)

const sessionColumns = `id, secret_hash, subject, auth_time, amr, client_ids, created_at, last_used_at, idle_expires_at, expires_at, ended_at`

func scanSession(row pgx.Row) (storage.Session, error) {
	var session storage.Session
	var amr, clients string
	var authTime, created, used, idle, expires, ended *int64
	if err := row.Scan(&session.ID, &session.SecretHash, &session.Subject, &authTime, &amr, &clients, &created, &used, &idle, &expires, &ended); err != nil {
		return storage.Session{}, notFound(err)
	}
	session.AMR, session.ClientIDs = splitList(amr), splitList(clients)
	session.AuthTime, session.CreatedAt, session.LastUsedAt = fromUnix(authTime), fromUnix(created), fromUnix(used)
	session.IdleExpiresAt, session.ExpiresAt, session.EndedAt = fromUnix(idle), fromUnix(expires), fromUnix(ended)
	return session, nil
}

func (s *Store) CreateSession(ctx context.Context, session storage.Session, keep int) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		now := toUnix(session.CreatedAt)
		// One subject's sign-ins on several replicas queue here, so that
		// each counts the others' sessions.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, $2))`, session.Subject, int64(sessionsLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE subject = $1 AND (ended_at IS NOT NULL OR idle_expires_at <= $2 OR expires_at <= $2)`,
			session.Subject, now); err != nil {
			return err
		}
		if err := s.insert(ctx, tx, `INSERT INTO sessions (`+sessionColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING`,
			session.ID, session.SecretHash, session.Subject, toUnix(session.AuthTime), joinList(session.AMR), joinList(session.ClientIDs),
			now, toUnix(session.LastUsedAt), toUnix(session.IdleExpiresAt), toUnix(session.ExpiresAt), toUnix(session.EndedAt)); err != nil {
			return err
		}
		// What is left of the subject's sessions is live: the newest keep stay.
		_, err := tx.Exec(ctx, `UPDATE sessions SET ended_at = $1, idle_expires_at = LEAST(idle_expires_at, $1)
			WHERE subject = $2 AND ended_at IS NULL AND id NOT IN (
				SELECT id FROM sessions WHERE subject = $2 AND ended_at IS NULL ORDER BY created_at DESC, id DESC LIMIT $3)`,
			now, session.Subject, keep)
		return err
	})
}

// sessionsLock seeds the advisory locks that serialize one subject's
// session starts.
const sessionsLock = 0x63686974_73657373

func (s *Store) GetSession(ctx context.Context, id string) (storage.Session, error) {
	return scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = $1`, id))
}

func (s *Store) UpdateSession(ctx context.Context, id string, update func(*storage.Session) error) (storage.Session, error) {
	var changed storage.Session
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		session, err := scanSession(tx.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		changed = session
		changed.AMR, changed.ClientIDs = append([]string(nil), session.AMR...), append([]string(nil), session.ClientIDs...)
		if err := update(&changed); err != nil {
			return err
		}
		changed.ID, changed.SecretHash, changed.Subject, changed.CreatedAt = session.ID, session.SecretHash, session.Subject, session.CreatedAt
		_, err = tx.Exec(ctx, `UPDATE sessions SET auth_time = $1, amr = $2, client_ids = $3, last_used_at = $4, idle_expires_at = $5,
			expires_at = $6, ended_at = $7 WHERE id = $8`,
			toUnix(changed.AuthTime), joinList(changed.AMR), joinList(changed.ClientIDs), toUnix(changed.LastUsedAt),
			toUnix(changed.IdleExpiresAt), toUnix(changed.ExpiresAt), toUnix(changed.EndedAt), id)
		return err
	})
	if err != nil {
		return storage.Session{}, err
	}
	return changed, nil
}

func (s *Store) ListSessions(ctx context.Context, subject string, now time.Time, page storage.Page) ([]storage.Session, error) {
	return list(ctx, s.pool, scanSession, `SELECT `+sessionColumns+` FROM sessions
		WHERE subject = $1 AND id > $2 AND ended_at IS NULL AND idle_expires_at > $3 AND expires_at > $3 ORDER BY id LIMIT $4`,
		subject, page.After, toUnix(now), pageLimit(page))
}

func (s *Store) EndSessions(ctx context.Context, subject string, endedAt time.Time) (int, error) {
	return deleteWhere(ctx, s.pool, `UPDATE sessions SET ended_at = $1, idle_expires_at = LEAST(idle_expires_at, $1)
		WHERE subject = $2 AND ended_at IS NULL AND idle_expires_at > $1 AND expires_at > $1`, toUnix(endedAt), subject)
}

func (s *Store) DeleteExpiredSessions(ctx context.Context, cutoff time.Time) (int, error) {
	// An ended session's idle expiry is its end: one condition covers both.
	return deleteInBatches(ctx, s.pool, "sessions", "id", `idle_expires_at < $1`, toUnix(cutoff))
}
