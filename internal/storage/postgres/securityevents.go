package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chit-auth/chit/internal/storage"
)

const securityEventStreamColumns = `id, description, delivery, endpoint_url, push_authorization, receiver, audience, event_types, status,
	position_xact, position_seq, last_error, delivered_at, created_at, updated_at`

func scanSecurityEventStream(row pgx.Row) (storage.SecurityEventStream, error) {
	var stream storage.SecurityEventStream
	var receiver *string
	var eventTypes string
	var xact int64
	var delivered, created, updated *int64
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
	if receiver != nil {
		stream.Receiver = *receiver
	}
	stream.Position.Xact = uint64(xact)
	stream.DeliveredAt, stream.CreatedAt, stream.UpdatedAt = fromUnix(delivered), fromUnix(created), fromUnix(updated)
	return stream, nil
}

var errSkipped = errors.New("skipped")

// CreateSecurityEventStream inserts a poll stream only if its receiver
// exists (a push stream has none: NULL), in one statement; of the two
// reasons it can skip, the id taken is told from the receiver missing by a
// second read. A receiver deleted meanwhile fails the foreign key.
func (s *Store) CreateSecurityEventStream(ctx context.Context, stream storage.SecurityEventStream) error {
	eventTypes := stream.EventTypes
	if eventTypes == nil {
		eventTypes = []string{}
	}
	encoded, err := json.Marshal(eventTypes)
	if err != nil {
		return err
	}
	var receiver *string
	if stream.Receiver != "" {
		receiver = &stream.Receiver
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO security_event_streams (`+securityEventStreamColumns+`)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15
		WHERE $6::text IS NULL OR EXISTS (SELECT 1 FROM service_accounts WHERE client_id = $6::text)
		ON CONFLICT DO NOTHING`,
		stream.ID, stream.Description, stream.Delivery, stream.EndpointURL, stream.Authorization, receiver, stream.Audience,
		string(encoded), stream.Status, int64(stream.Position.Xact), stream.Position.Seq, stream.LastError,
		toUnix(stream.DeliveredAt), toUnix(stream.CreatedAt), toUnix(stream.UpdatedAt))
	if err != nil {
		return err
	}
	if requireOneRow(tag, errSkipped) == nil {
		return nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM security_event_streams WHERE id = $1)`, stream.ID).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return storage.ErrAlreadyExists
	}
	return storage.ErrNotFound
}

func (s *Store) GetSecurityEventStream(ctx context.Context, id string) (storage.SecurityEventStream, error) {
	return scanSecurityEventStream(s.pool.QueryRow(ctx, `SELECT `+securityEventStreamColumns+` FROM security_event_streams WHERE id = $1`, id))
}

func (s *Store) ListSecurityEventStreams(ctx context.Context, page storage.Page) ([]storage.SecurityEventStream, error) {
	return list(ctx, s.pool, scanSecurityEventStream, `SELECT `+securityEventStreamColumns+` FROM security_event_streams WHERE id > $1 ORDER BY id LIMIT $2`,
		page.After, pageLimit(page))
}

func (s *Store) DeleteSecurityEventStream(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM security_event_streams WHERE id = $1`, id)
	if err != nil {
		return err
	}
	return requireOneRow(tag, storage.ErrNotFound)
}

func (s *Store) SetSecurityEventStreamStatus(ctx context.Context, id, status string, updatedAt time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE security_event_streams SET status = $1, updated_at = $2 WHERE id = $3`, status, toUnix(updatedAt), id)
	if err != nil {
		return err
	}
	return requireOneRow(tag, storage.ErrNotFound)
}

// AdvanceSecurityEventStream compares and sets the position in one
// statement (a row lock orders concurrent ones: the second finds the
// position moved and changes nothing). A success (lastError empty) is the
// stream's DeliveredAt.
func (s *Store) AdvanceSecurityEventStream(ctx context.Context, id string, from, to storage.RevocationCursor, lastError string, at time.Time) error {
	if to.Before(from) {
		return storage.ErrConflict
	}
	tag, err := s.pool.Exec(ctx, `UPDATE security_event_streams
		SET position_xact = $1, position_seq = $2, last_error = $3::text, delivered_at = CASE WHEN $3::text = '' THEN $4 ELSE delivered_at END
		WHERE id = $5 AND position_xact = $6 AND position_seq = $7`,
		int64(to.Xact), to.Seq, lastError, toUnix(at), id, int64(from.Xact), from.Seq)
	if err != nil {
		return err
	}
	if requireOneRow(tag, errSkipped) == nil {
		return nil
	}
	return s.conflictOrNotFound(ctx, id)
}

func (s *Store) conflictOrNotFound(ctx context.Context, id string) error {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM security_event_streams WHERE id = $1)`, id).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return storage.ErrConflict
	}
	return storage.ErrNotFound
}

// LeaseSecurityEventStream sets the holder where the lease is free, ran
// out, or is holder's own, in one statement: of replicas taking it at once,
// the row lock lets one update it, and the others then see its lease
// running and change nothing.
func (s *Store) LeaseSecurityEventStream(ctx context.Context, id, holder string, now, until time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE security_event_streams SET lease_holder = $1::text, lease_until = $2
		WHERE id = $3 AND (lease_holder = $1::text OR lease_until IS NULL OR lease_until <= $4)`,
		holder, toUnix(until), id, toUnix(now))
	if err != nil {
		return false, err
	}
	if requireOneRow(tag, errSkipped) == nil {
		return true, nil
	}
	if err := s.conflictOrNotFound(ctx, id); errors.Is(err, storage.ErrConflict) {
		return false, nil
	} else {
		return false, err
	}
}
