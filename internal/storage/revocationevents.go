package storage

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/chit-auth/chit/internal/chiterr"
)

// RevocationEvents are the log of what a verifier holding tokens offline
// must learn: a family revoked, a subject (or a client's principal key)
// refused before a time, a signing key or a provider's key removed. Each
// event is written in the transaction of the change it reports, so the log
// holds a change exactly when the change committed. Invariants: events are
// delivered in cursor order, and an event committed late (after one with a
// later cursor) is still delivered to a reader past that later cursor: the
// feed delivers an event only once no transaction that could commit an
// earlier one is running. DeleteExpiredRevocations deletes events made
// before its cutoff, and the feed remembers the last cursor it deleted, so a
// reader behind it is told (ErrCursorExpired) rather than silently missing
// events.
type RevocationEvents interface {
	// ListRevocationEvents returns at most limit deliverable events after
	// cursor after (from the oldest retained event when it is zero), in
	// cursor order.
	ListRevocationEvents(ctx context.Context, after RevocationCursor, limit int) ([]RevocationEvent, error)
	// RevocationBounds reports the feed's head (the cursor of its last
	// deliverable event, or of the last deleted one when none is left) and
	// the cursor of the last event deleted by the clean-up (zero when none).
	RevocationBounds(ctx context.Context) (RevocationBounds, error)
}

// RevocationBounds are where a reader's cursor may be: at or after Swept (a
// reader behind it missed deleted events) and at or before Head (a cursor
// past it was never handed out).
type RevocationBounds struct {
	Head, Swept RevocationCursor
}

// Kinds of revocation events.
const (
	// RevocationFamily: the access tokens of FamilyID are refused.
	RevocationFamily = "family"
	// RevocationSubject: the access tokens of Subject (a `sub`, or a
	// client's principal key) issued at or before RevokedAt are refused.
	RevocationSubject = "subject"
	// RevocationSigningKeyRemoved: the server's signing key KeyID is gone.
	RevocationSigningKeyRemoved = "signing_key_removed"
	// RevocationProviderKeyRemoved: provider ProviderID's key KeyID was
	// replaced (a renewal) or deleted with the provider.
	RevocationProviderKeyRemoved = "provider_key_removed"
)

// RevocationEvent is one entry of the log.
type RevocationEvent struct {
	Cursor RevocationCursor
	Kind   string
	// FamilyID is set for RevocationFamily.
	FamilyID string
	// Subject is the principal key as stored (RevocationSubject).
	Subject string
	// RevokedAt is the subject's cut-off, or when the family was revoked or
	// the key removed; the clean-up forgets the event with the revocation,
	// once no token it concerns can still be valid.
	RevokedAt  time.Time
	KeyID      string
	ProviderID string
}

// RevocationCursor is a position in the log. On PostgreSQL it is the
// writing transaction's id and the row's sequence number (ordered by both:
// a transaction's id, unlike its sequence numbers, orders it against every
// transaction still running); on SQLite, whose writers are serial, Xact is
// zero and Seq alone orders. The zero cursor is before every event.
type RevocationCursor struct {
	Xact uint64
	Seq  int64
}

// cursorVersion prefixes encoded cursors, so that a later encoding can be
// told from this one.
const cursorVersion = "1"

// IsZero reports the cursor before every event.
func (c RevocationCursor) IsZero() bool { return c == RevocationCursor{} }

// Before reports whether c orders before other.
func (c RevocationCursor) Before(other RevocationCursor) bool {
	return c.Xact < other.Xact || (c.Xact == other.Xact && c.Seq < other.Seq)
}

// String is the cursor as verifiers see it: opaque, "1-<xact>-<seq>".
func (c RevocationCursor) String() string {
	return cursorVersion + "-" + strconv.FormatUint(c.Xact, 10) + "-" + strconv.FormatInt(c.Seq, 10)
}

// ParseRevocationCursor reads a cursor String wrote; anything else is an
// InvalidArgument naming the cursor. "" is the zero cursor.
func ParseRevocationCursor(s string) (RevocationCursor, error) {
	if s == "" {
		return RevocationCursor{}, nil
	}
	parts := strings.Split(s, "-")
	bad := chiterr.New(chiterr.InvalidArgument, "cursor %s is not a revocation feed cursor; subscribe without one to start from the oldest event", chiterr.Quote(s))
	if len(parts) != 3 || parts[0] != cursorVersion {
		return RevocationCursor{}, bad
	}
	xact, err := strconv.ParseUint(parts[1], 10, 63)
	if err != nil {
		return RevocationCursor{}, bad
	}
	seq, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || seq < 0 {
		return RevocationCursor{}, bad
	}
	return RevocationCursor{Xact: xact, Seq: seq}, nil
}

// CheckRevocationCursor refuses a cursor the feed cannot resume from: one
// past the head was never handed out (InvalidArgument), one behind the last
// deleted event would miss events (FailedPrecondition, ReasonCursorExpired).
func CheckRevocationCursor(cursor RevocationCursor, bounds RevocationBounds) error {
	if bounds.Head.Before(cursor) {
		return chiterr.New(chiterr.InvalidArgument, "cursor %s is ahead of the revocation feed (at %s); it was not handed out by this feed", chiterr.Quote(cursor.String()), bounds.Head)
	}
	if cursor.Before(bounds.Swept) {
		return chiterr.New(chiterr.FailedPrecondition, "cursor %s has expired: events after it were deleted; subscribe again without a cursor", chiterr.Quote(cursor.String())).
			WithReason(chiterr.ReasonCursorExpired)
	}
	return nil
}

var _ fmt.Stringer = RevocationCursor{}
