package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

const sessionColumns = `id, secret_hash, subject, auth_time, amr, client_ids, created_at, last_used_at, idle_expires_at, expires_at, ended_at`

func scanSession(row rowScanner) (storage.Session, error) {
	var session storage.Session
	var amr, clients string
	var authTime, created, used, idle, expires, ended sql.NullInt64
	if err := row.Scan(&session.ID, &session.SecretHash, &session.Subject, &authTime, &amr, &clients, &created, &used, &idle, &expires, &ended); err != nil {
		return storage.Session{}, notFound(err)
	}
	session.AMR, session.ClientIDs = splitList(amr), splitList(clients)
	session.AuthTime, session.CreatedAt, session.LastUsedAt = fromUnix(authTime), fromUnix(created), fromUnix(used)
	session.IdleExpiresAt, session.ExpiresAt, session.EndedAt = fromUnix(idle), fromUnix(expires), fromUnix(ended)
	return session, nil
}

func (s *Store) CreateSession(ctx context.Context, session storage.Session, keep int) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	now := toUnix(session.CreatedAt)
	if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE subject = ? AND (ended_at IS NOT NULL OR idle_expires_at <= ? OR expires_at <= ?)`,
		session.Subject, now, now); err != nil {
		return err
	}
	result, err := tx.ExecContext(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		session.ID, session.SecretHash, session.Subject, toUnix(session.AuthTime), joinList(session.AMR), joinList(session.ClientIDs),
		now, toUnix(session.LastUsedAt), toUnix(session.IdleExpiresAt), toUnix(session.ExpiresAt), toUnix(session.EndedAt))
	if err != nil {
		return err
	}
	if err := requireOneRow(result, storage.ErrAlreadyExists); err != nil {
		return err
	}
	// What is left of the subject's sessions is live: the newest keep stay.
	if _, err := tx.ExecContext(ctx, `UPDATE sessions SET ended_at = ?, idle_expires_at = MIN(idle_expires_at, ?)
		WHERE subject = ? AND ended_at IS NULL AND id NOT IN (
			SELECT id FROM sessions WHERE subject = ? AND ended_at IS NULL ORDER BY created_at DESC, id DESC LIMIT ?)`,
		now, now, session.Subject, session.Subject, keep); err != nil {
		return err
	}
	return tx.commit(ctx)
}

func (s *Store) GetSession(ctx context.Context, id string) (storage.Session, error) {
	return scanSession(s.db.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, id))
}

func (s *Store) UpdateSession(ctx context.Context, id string, update func(*storage.Session) error) (storage.Session, error) {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return storage.Session{}, err
	}
	defer tx.Rollback()
	session, err := scanSession(tx.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, id))
	if err != nil {
		return storage.Session{}, err
	}
	changed := session
	changed.AMR, changed.ClientIDs = append([]string(nil), session.AMR...), append([]string(nil), session.ClientIDs...)
	if err := update(&changed); err != nil {
		return storage.Session{}, err
	}
	changed.ID, changed.SecretHash, changed.Subject, changed.CreatedAt = session.ID, session.SecretHash, session.Subject, session.CreatedAt
	if _, err := tx.ExecContext(ctx, `UPDATE sessions SET auth_time = ?, amr = ?, client_ids = ?, last_used_at = ?, idle_expires_at = ?,
		expires_at = ?, ended_at = ? WHERE id = ?`,
		toUnix(changed.AuthTime), joinList(changed.AMR), joinList(changed.ClientIDs), toUnix(changed.LastUsedAt),
		toUnix(changed.IdleExpiresAt), toUnix(changed.ExpiresAt), toUnix(changed.EndedAt), id); err != nil {
		return storage.Session{}, err
	}
	return changed, tx.commit(ctx)
}

func (s *Store) ListSessions(ctx context.Context, subject string, now time.Time, page storage.Page) ([]storage.Session, error) {
	at := toUnix(now)
	return listRows(ctx, s.db, scanSession, `SELECT `+sessionColumns+` FROM sessions
		WHERE subject = ? AND id > ? AND ended_at IS NULL AND idle_expires_at > ? AND expires_at > ? ORDER BY id LIMIT ?`,
		subject, page.After, at, at, pageLimit(page))
}

func (s *Store) EndSessions(ctx context.Context, subject string, endedAt time.Time) (int, error) {
	at := toUnix(endedAt)
	result, err := s.writer.ExecContext(ctx, `UPDATE sessions SET ended_at = ?, idle_expires_at = MIN(idle_expires_at, ?)
		WHERE subject = ? AND ended_at IS NULL AND idle_expires_at > ? AND expires_at > ?`, at, at, subject, at, at)
	if err != nil {
		return 0, err
	}
	n, err := result.RowsAffected()
	return int(n), err
}

func (s *Store) DeleteExpiredSessions(ctx context.Context, cutoff time.Time) (int, error) {
	// An ended session's idle expiry is its end: one condition covers both.
	return s.deleteInBatches(ctx, "sessions", `idle_expires_at < ?`, toUnix(cutoff))
}
