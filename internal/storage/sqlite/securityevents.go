package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

const securityEventStreamColumns = `id, description, delivery, endpoint_url, push_authorization, receiver, audience, event_types, status,
	position_xact, position_seq, last_error, delivered_at, created_at, updated_at`

func scanSecurityEventStream(row rowScanner) (storage.SecurityEventStream, error) {
	var stream storage.SecurityEventStream
	var receiver sql.NullString
	var eventTypes string
	var xact int64
	var delivered, created, updated sql.NullInt64
	if err := row.Scan(&stream.ID, &stream.Description, &stream.Delivery, &stream.EndpointURL, &stream.Authorization, &receiver,
		&stream.Audience, &eventTypes, &stream.Status, &xact, &stream.Position.Seq, &stream.LastError, &delivered, &created, &updated); err != nil {
		return storage.SecurityEventStream{}, notFound(err)
	}
	if err := json.Unmarshal([]byte(eventTypes), &stream.EventTypes); err != nil {
		return storage.SecurityEventStream{}, err
	}
	if len(stream.EventTypes) == 0 {
		stream.EventTypes = nil
	}
	stream.Receiver, stream.Position.Xact = receiver.String, uint64(xact)
	stream.DeliveredAt, stream.CreatedAt, stream.UpdatedAt = fromUnix(delivered), fromUnix(created), fromUnix(updated)
	return stream, nil
}

// CreateSecurityEventStream inserts a poll stream only if its receiver
// exists (a push stream has none: NULL); of the two reasons an insert can
// skip, the id taken is told from the receiver missing by a second read.
func (s *Store) CreateSecurityEventStream(ctx context.Context, stream storage.SecurityEventStream) error {
	eventTypes, err := json.Marshal(nonNil(stream.EventTypes))
	if err != nil {
		return err
	}
	receiver := sql.NullString{String: stream.Receiver, Valid: stream.Receiver != ""}
	result, err := s.writer.ExecContext(ctx, `INSERT INTO security_event_streams (`+securityEventStreamColumns+`)
		SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
		WHERE ? = '' OR EXISTS (SELECT 1 FROM service_accounts WHERE client_id = ?)
		ON CONFLICT DO NOTHING`,
		stream.ID, stream.Description, stream.Delivery, stream.EndpointURL, stream.Authorization, receiver, stream.Audience,
		string(eventTypes), stream.Status, int64(stream.Position.Xact), stream.Position.Seq, stream.LastError,
		toUnix(stream.DeliveredAt), toUnix(stream.CreatedAt), toUnix(stream.UpdatedAt), stream.Receiver, stream.Receiver)
	if err != nil {
		return err
	}
	if requireOneRow(result, errSkipped) == nil {
		return nil
	}
	var exists bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM security_event_streams WHERE id = ?)`, stream.ID).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return storage.ErrAlreadyExists
	}
	return storage.ErrNotFound
}

var errSkipped = errors.New("skipped")

func nonNil(values []string) []string {
	if values == nil {
		return []string{}
	}
	return values
}

func (s *Store) GetSecurityEventStream(ctx context.Context, id string) (storage.SecurityEventStream, error) {
	return scanSecurityEventStream(s.db.QueryRowContext(ctx, `SELECT `+securityEventStreamColumns+` FROM security_event_streams WHERE id = ?`, id))
}

func (s *Store) ListSecurityEventStreams(ctx context.Context, page storage.Page) ([]storage.SecurityEventStream, error) {
	return listRows(ctx, s.db, scanSecurityEventStream, `SELECT `+securityEventStreamColumns+` FROM security_event_streams WHERE id > ? ORDER BY id LIMIT ?`,
		page.After, pageLimit(page))
}

func (s *Store) DeleteSecurityEventStream(ctx context.Context, id string) error {
	result, err := s.writer.ExecContext(ctx, `DELETE FROM security_event_streams WHERE id = ?`, id)
	if err != nil {
		return err
	}
	return requireOneRow(result, storage.ErrNotFound)
}

func (s *Store) SetSecurityEventStreamStatus(ctx context.Context, id, status string, updatedAt time.Time) error {
	result, err := s.writer.ExecContext(ctx, `UPDATE security_event_streams SET status = ?, updated_at = ? WHERE id = ?`, status, toUnix(updatedAt), id)
	if err != nil {
		return err
	}
	return requireOneRow(result, storage.ErrNotFound)
}

// AdvanceSecurityEventStream compares and sets the position: an update
// that finds it elsewhere changes nothing. A success (lastError empty) is
// the stream's DeliveredAt.
func (s *Store) AdvanceSecurityEventStream(ctx context.Context, id string, from, to storage.RevocationCursor, lastError string, at time.Time) error {
	if to.Before(from) {
		return storage.ErrConflict
	}
	result, err := s.writer.ExecContext(ctx, `UPDATE security_event_streams
		SET position_xact = ?, position_seq = ?, last_error = ?, delivered_at = CASE WHEN ? = '' THEN ? ELSE delivered_at END
		WHERE id = ? AND position_xact = ? AND position_seq = ?`,
		int64(to.Xact), to.Seq, lastError, lastError, toUnix(at), id, int64(from.Xact), from.Seq)
	if err != nil {
		return err
	}
	if requireOneRow(result, errSkipped) == nil {
		return nil
	}
	return s.conflictOrNotFound(ctx, id)
}

func (s *Store) conflictOrNotFound(ctx context.Context, id string) error {
	var exists bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM security_event_streams WHERE id = ?)`, id).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return storage.ErrConflict
	}
	return storage.ErrNotFound
}

// LeaseSecurityEventStream sets the holder where the lease is free, ran
// out, or is holder's own, in one statement: of replicas taking it at once
// one updates the row, and the others then see its lease running.
func (s *Store) LeaseSecurityEventStream(ctx context.Context, id, holder string, now, until time.Time) (bool, error) {
	result, err := s.writer.ExecContext(ctx, `UPDATE security_event_streams SET lease_holder = ?, lease_until = ?
		WHERE id = ? AND (lease_holder = ? OR lease_until IS NULL OR lease_until <= ?)`,
		holder, toUnix(until), id, holder, toUnix(now))
	if err != nil {
		return false, err
	}
	if requireOneRow(result, errSkipped) == nil {
		return true, nil
	}
	if err := s.conflictOrNotFound(ctx, id); errors.Is(err, storage.ErrConflict) {
		return false, nil
	} else {
		return false, err
	}
}
