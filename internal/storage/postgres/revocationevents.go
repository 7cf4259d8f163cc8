package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chit-auth/chit/internal/storage"
)

// revocationChannel is the NOTIFY channel a transaction that writes an
// event signals at commit, so that feeds wake before their next poll.
const revocationChannel = "chit_revocations"

// recordRevocationEvent appends event to the feed in tx, the transaction of
// the change it reports; the row's xact is tx's own id (the column default).
func recordRevocationEvent(ctx context.Context, tx querier, event storage.RevocationEvent) error {
	_, err := tx.Exec(ctx, `INSERT INTO revocation_events (kind, family_id, subject, revoked_at, key_id, provider_id)
		VALUES ($1, $2, $3, $4, $5, $6)`, event.Kind, event.FamilyID, event.Subject, event.RevokedAt.UnixNano(), event.KeyID, event.ProviderID)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `SELECT pg_notify($1, '')`, revocationChannel)
	return err
}

// deliverable is the condition of the rows a reader may hand out: written
// by a transaction older than every one still running, so that no row with
// an earlier (xact, seq) can commit after it is read.
const deliverable = `xact < pg_snapshot_xmin(pg_current_snapshot())::text::bigint`

func (s *Store) ListRevocationEvents(ctx context.Context, after storage.RevocationCursor, limit int) ([]storage.RevocationEvent, error) {
	return list(ctx, s.pool, scanRevocationEvent, `SELECT xact, seq, kind, family_id, subject, revoked_at, key_id, provider_id
		FROM revocation_events WHERE (xact, seq) > ($1, $2) AND `+deliverable+` ORDER BY xact, seq LIMIT $3`,
		int64(after.Xact), after.Seq, limit)
}

func scanRevocationEvent(row pgx.Row) (storage.RevocationEvent, error) {
	var event storage.RevocationEvent
	var xact, revokedAt int64
	err := row.Scan(&xact, &event.Cursor.Seq, &event.Kind, &event.FamilyID, &event.Subject, &revokedAt, &event.KeyID, &event.ProviderID)
	event.Cursor.Xact = uint64(xact)
	event.RevokedAt = time.Unix(0, revokedAt).UTC()
	return event, err
}

func (s *Store) RevocationBounds(ctx context.Context) (storage.RevocationBounds, error) {
	var sweptXact, sweptSeq int64
	var lastXact, lastSeq *int64
	err := s.pool.QueryRow(ctx, `SELECT f.swept_xact, f.swept_seq, e.xact, e.seq FROM revocation_feed f
		LEFT JOIN LATERAL (SELECT xact, seq FROM revocation_events WHERE `+deliverable+` ORDER BY xact DESC, seq DESC LIMIT 1) e ON true`).
		Scan(&sweptXact, &sweptSeq, &lastXact, &lastSeq)
	if err != nil {
		return storage.RevocationBounds{}, err
	}
	bounds := storage.RevocationBounds{Swept: storage.RevocationCursor{Xact: uint64(sweptXact), Seq: sweptSeq}}
	bounds.Head = bounds.Swept
	if lastXact != nil {
		if last := (storage.RevocationCursor{Xact: uint64(*lastXact), Seq: *lastSeq}); bounds.Head.Before(last) {
			bounds.Head = last
		}
	}
	return bounds, nil
}

// deleteExpiredRevocationEvents deletes the events made before cutoff, a
// batch per statement, moving the feed's swept mark past each batch in the
// same statement.
func (s *Store) deleteExpiredRevocationEvents(ctx context.Context, cutoff time.Time) error {
	for {
		var deleted int
		err := s.pool.QueryRow(ctx, `WITH gone AS (
				DELETE FROM revocation_events WHERE (xact, seq) IN (
					SELECT xact, seq FROM revocation_events WHERE revoked_at < $1 ORDER BY xact, seq LIMIT $2)
				RETURNING xact, seq),
			last AS (SELECT xact, seq FROM gone ORDER BY xact DESC, seq DESC LIMIT 1),
			moved AS (UPDATE revocation_feed SET swept_xact = last.xact, swept_seq = last.seq FROM last
				WHERE (revocation_feed.swept_xact, revocation_feed.swept_seq) < (last.xact, last.seq) RETURNING 1)
			SELECT count(*) FROM gone`,
			pgx.QueryExecModeSimpleProtocol, cutoff.UnixNano(), cleanupBatch).Scan(&deleted)
		if err != nil || deleted < cleanupBatch {
			return err
		}
	}
}

// WaitRevocations returns when a transaction that wrote a revocation event
// may have committed (its NOTIFY arrived), or with an error when ctx ends
// or listening fails. It listens on a connection of its own, outside the
// pool, kept between calls; one caller at a time (the feed's poller).
func (s *Store) WaitRevocations(ctx context.Context) error {
	s.listenerMu.Lock()
	defer s.listenerMu.Unlock()
	if s.listener == nil {
		conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
		if err != nil {
			return unavailable(ctx, err)
		}
		if _, err := conn.Exec(ctx, `LISTEN `+revocationChannel); err != nil {
			conn.Close(context.WithoutCancel(ctx))
			return unavailable(ctx, err)
		}
		s.listener = conn
	}
	if _, err := s.listener.WaitForNotification(ctx); err != nil {
		// A wait that ends with ctx leaves the connection unusable; the next
		// wait listens afresh.
		s.listener.Close(context.WithoutCancel(ctx))
		s.listener = nil
		return err
	}
	return nil
}
