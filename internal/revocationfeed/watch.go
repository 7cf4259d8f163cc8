package revocationfeed

import (
	"context"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

// Message is one thing a stream sends: an Event or, when Event is nil, a
// Heartbeat.
type Message struct {
	Event     *Event
	Heartbeat *Heartbeat
}

// Event is a revocation event as verifiers receive it.
type Event struct {
	storage.RevocationEvent
	// ExpiresAt is when no token the event concerns can still be valid.
	ExpiresAt time.Time
}

// Heartbeat tells an idle stream where the feed is: every event up to
// Cursor has been sent, at Time by the server's clock.
type Heartbeat struct {
	Cursor storage.RevocationCursor
	Time   time.Time
}

// Start checks where a stream may begin, before anything is sent: cursor
// is what the verifier sent ("" for the oldest retained event). A malformed
// cursor, or one past the head, is InvalidArgument; one behind deleted
// events is FailedPrecondition (ReasonCursorExpired). The transports call it
// first, so that a refusal is an ordinary error answer, not a broken stream.
func (f *Feed) Start(ctx context.Context, cursor string) (storage.RevocationCursor, error) {
	after, err := storage.ParseRevocationCursor(cursor)
	if err != nil || cursor == "" {
		return after, err
	}
	bounds, err := f.store.RevocationBounds(ctx)
	if err != nil {
		return storage.RevocationCursor{}, err
	}
	// A replica whose poller is behind still knows cursors other replicas
	// handed out: they are at or before the store's head.
	f.advance(bounds.Head)
	return after, storage.CheckRevocationCursor(after, bounds)
}

// Watch sends, through send, the events after after (from Start), then
// each new one, with a heartbeat once the backlog is sent and every
// Heartbeat while the stream is idle. It returns nil when ctx ends or the
// feed stops (Run returned: the server is shutting down), or the error of
// send or the store.
func (f *Feed) Watch(ctx context.Context, after storage.RevocationCursor, send func(Message) error) error {
	heartbeat := time.NewTicker(f.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		// Every event up to the head read before paging is sent by the
		// time paging ends: the events the store delivers later all come
		// after them (storage.RevocationEvents).
		head, moved := f.current()
		var err error
		if after, err = f.drain(ctx, after, send); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if after.Before(head) {
			after = head
		}
		if err := send(Message{Heartbeat: &Heartbeat{Cursor: after, Time: f.cfg.Now().UTC()}}); err != nil {
			return err
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-f.stopped:
				return nil
			case <-moved:
				_, moved = f.current()
				if after, err = f.drain(ctx, after, send); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
			case <-heartbeat.C:
				break wait
			}
		}
	}
}

// drain sends the events after after and returns the last one's cursor.
func (f *Feed) drain(ctx context.Context, after storage.RevocationCursor, send func(Message) error) (storage.RevocationCursor, error) {
	for {
		events, err := f.store.ListRevocationEvents(ctx, after, pageSize)
		if err != nil {
			return after, err
		}
		for _, event := range events {
			if err := send(Message{Event: &Event{RevocationEvent: event, ExpiresAt: event.RevokedAt.Add(f.cfg.Retention)}}); err != nil {
				return after, err
			}
			after = event.Cursor
		}
		if len(events) < pageSize {
			return after, nil
		}
	}
}
