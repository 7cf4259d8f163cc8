package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

// recordRevocationEvent appends event to the feed in tx, the transaction of
// the change it reports. SQLite's one writer orders the log by seq alone.
func recordRevocationEvent(ctx context.Context, tx execer, event storage.RevocationEvent) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO revocation_events (kind, family_id, subject, revoked_at, key_id, provider_id)
		VALUES (?, ?, ?, ?, ?, ?)`, event.Kind, event.FamilyID, event.Subject, event.RevokedAt.UnixNano(), event.KeyID, event.ProviderID)
	return err
}

func (s *Store) ListRevocationEvents(ctx context.Context, after storage.RevocationCursor, limit int) ([]storage.RevocationEvent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, kind, family_id, subject, revoked_at, key_id, provider_id
		FROM revocation_events WHERE seq > ? ORDER BY seq LIMIT ?`, after.Seq, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var events []storage.RevocationEvent
	for rows.Next() {
		var event storage.RevocationEvent
		var revokedAt int64
		if err := rows.Scan(&event.Cursor.Seq, &event.Kind, &event.FamilyID, &event.Subject, &revokedAt, &event.KeyID, &event.ProviderID); err != nil {
			return nil, err
		}
		event.RevokedAt = time.Unix(0, revokedAt).UTC()
		events = append(events, event)
	}
	return events, rows.Err()
}

func (s *Store) RevocationBounds(ctx context.Context) (storage.RevocationBounds, error) {
	var bounds storage.RevocationBounds
	err := s.db.QueryRowContext(ctx, `SELECT swept_seq, MAX(swept_seq, COALESCE((SELECT MAX(seq) FROM revocation_events), 0))
		FROM revocation_feed`).Scan(&bounds.Swept.Seq, &bounds.Head.Seq)
	return bounds, err
}

// deleteExpiredRevocationEvents deletes the events made before cutoff, a
// batch per transaction, moving the feed's swept mark past each batch in
// the batch's transaction.
func (s *Store) deleteExpiredRevocationEvents(ctx context.Context, cutoff time.Time) error {
	for {
		tx, err := s.writer.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		var last sql.NullInt64
		err = tx.QueryRowContext(ctx, `SELECT MAX(seq) FROM (SELECT seq FROM revocation_events WHERE revoked_at < ? ORDER BY seq LIMIT ?)`,
			cutoff.UnixNano(), cleanupBatch).Scan(&last)
		if err != nil || !last.Valid {
			tx.Rollback()
			return err
		}
		result, err := tx.ExecContext(ctx, `DELETE FROM revocation_events WHERE seq <= ? AND revoked_at < ?`, last.Int64, cutoff.UnixNano())
		if err == nil {
			_, err = tx.ExecContext(ctx, `UPDATE revocation_feed SET swept_seq = MAX(swept_seq, ?)`, last.Int64)
		}
		if err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.commit(ctx); err != nil {
			return err
		}
		if n, _ := result.RowsAffected(); n < cleanupBatch {
			return nil
		}
	}
}
