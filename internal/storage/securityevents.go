package storage

import (
	"context"
	"time"
)

// SecurityEventStreams are the Shared Signals (SSF) receivers an admin
// registered: each stream delivers the revocation feed (RevocationEvents)
// to one receiver as Security Event Tokens, by push (RFC 8935) or poll (RFC
// 8936), from its own position in the log. Invariants: a stream's id is
// unique; its position only moves forward, and only past events the
// receiver acknowledged (a 2xx to a push, an ack in a poll) or refused for
// good (a push answered 400), so a crash between delivering and recording
// delivers again (at least once; receivers de-duplicate by jti); at most
// one replica holds a stream's push lease at a time.
type SecurityEventStreams interface {
	// CreateSecurityEventStream stores a stream; ErrAlreadyExists when its
	// id is taken. A poll stream's Receiver must be an existing service
	// account (ErrNotFound otherwise); deleting that account deletes it.
	CreateSecurityEventStream(ctx context.Context, stream SecurityEventStream) error
	// GetSecurityEventStream returns stream id; ErrNotFound when there is none.
	GetSecurityEventStream(ctx context.Context, id string) (SecurityEventStream, error)
	// ListSecurityEventStreams returns the streams of page, by id.
	ListSecurityEventStreams(ctx context.Context, page Page) ([]SecurityEventStream, error)
	// DeleteSecurityEventStream removes the stream; ErrNotFound when there
	// is none.
	DeleteSecurityEventStream(ctx context.Context, id string) error
	// SetSecurityEventStreamStatus enables or pauses stream id (a paused
	// stream keeps its position; nothing is delivered); ErrNotFound when
	// there is none.
	SetSecurityEventStreamStatus(ctx context.Context, id, status string, updatedAt time.Time) error
	// AdvanceSecurityEventStream moves stream id's position from from to
	// to, recording delivery (lastError empty) or the last failure. It
	// reports ErrConflict when the position is no longer from (another
	// replica or poll moved it: the caller re-reads) and ErrNotFound when
	// the stream is gone. from == to records only the outcome.
	AdvanceSecurityEventStream(ctx context.Context, id string, from, to RevocationCursor, lastError string, at time.Time) error
	// LeaseSecurityEventStream gives holder the right to push stream id
	// until until, if no other holder's lease runs past now; it reports
	// whether holder has it. A holder renews its own lease the same way.
	LeaseSecurityEventStream(ctx context.Context, id, holder string, now, until time.Time) (bool, error)
}

// Delivery methods of a stream, as SSF names them.
const (
	DeliveryPush = "urn:ietf:rfc:8935"
	DeliveryPoll = "urn:ietf:rfc:8936"
)

// Statuses of a stream, as SSF names them.
const (
	StreamEnabled = "enabled"
	StreamPaused  = "paused"
)

// SecurityEventStream is one receiver's subscription.
type SecurityEventStream struct {
	ID          string
	Description string
	// Delivery is DeliveryPush or DeliveryPoll.
	Delivery string
	// EndpointURL is where a push stream POSTs its SETs.
	EndpointURL string
	// Authorization is the Authorization header value a push stream sends,
	// empty for none; stored sealed when the server has a key-encryption
	// key (as signing keys are), never returned by the Admin API.
	Authorization string
	// HasAuthorization says, where Authorization is withheld (the ssf
	// core's Get and List blank it), whether the stream has one; not
	// stored: backends leave it false.
	HasAuthorization bool
	// Receiver is the client id of the service account that polls a poll
	// stream (its token, with the scope chit:ssf, authenticates the poll).
	Receiver string
	// Audience is the SETs' aud.
	Audience string
	// EventTypes are the event type URIs delivered (CAEP session-revoked,
	// credential-change); empty means all.
	EventTypes []string
	Status     string
	// Position is the cursor of the last event delivered (and acknowledged)
	// or passed over; the zero cursor delivers from the oldest retained one.
	// The core creates a stream at the feed's head: a new receiver hears
	// of revocations from then on.
	Position RevocationCursor
	// LastError is the last delivery failure, empty after a success.
	LastError   string
	DeliveredAt time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}
