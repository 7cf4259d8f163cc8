// Package storage defines the contract through which Chit's core keeps its
// state: one small interface per domain (logins, API keys, revocations,
// principals, server keys, providers, authorization codes, device
// authorizations, sign-in sessions, the sign-in throttle, federation rules
// and the assertions they saw, Shared Signals streams), each in its own file with its records,
// Store their union, and the sentinel errors every backend returns.
// Consumers embed the groups they use. Backends live in sub-packages (sqlite, postgres) and must pass the
// conformance suite in storagetest. This package knows nothing of SQL, gRPC
// or HTTP; of the core it knows only chiterr, the vocabulary in which
// ErrUnavailable reaches the transports.
package storage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/chit-auth/chit/internal/chiterr"
)

// Store is everything Chit's core persists: the union of the domains, which
// a backend implements together because some operations span them in one
// transaction (deleting a principal revokes its logins, a revocation deletes
// a login's record). Every method that returns without error has made its
// write durable: a response built on it survives a crash.
type Store interface {
	Logins
	APIKeys
	Revocations
	RevocationEvents
	Principals
	ClientOrigins
	ClientLogoutSettings
	SigningKeys
	RefreshTokenKeys
	Providers
	AuthorizationCodes
	DeviceCodes
	Sessions
	Throttle
	FederationRules
	AssertionReplays
	SecurityEventStreams
	Maintenance

	Close() error
}

// Maintenance is what the server does to the store as a whole, not to one
// domain's records: the periodic clean-up that the domains' DeleteExpired
// methods serve, and erasing what replaced values left in its files.
type Maintenance interface {
	// WithCleanupLock runs fn, the periodic deletion of expired rows, unless
	// another replica is doing it now (then it reports false). Deletions run
	// in small batches.
	WithCleanupLock(ctx context.Context, fn func() error) (bool, error)
	// EraseReplacedValues overwrites what rows updated or deleted so far
	// left behind in the store's own files (freed space in pages, former
	// pages in a journal), so that a private key replaced by its sealed
	// form survives nowhere in them. It may take as long as rewriting the
	// whole database. PostgreSQL does nothing: its old row versions and WAL
	// are the operator's to vacuum and recycle (docs/security.md).
	EraseReplacedValues(ctx context.Context) error
}

// Sentinel errors, checked with errors.Is. Backends wrap their own errors in
// nothing else the core needs to understand.
var (
	// ErrNotFound: no record has that key.
	ErrNotFound = errors.New("storage: not found")
	// ErrAlreadyExists: a record with that key exists.
	ErrAlreadyExists = errors.New("storage: already exists")
	// ErrConflict: the record exists but is no longer in the state the
	// operation requires (for example a refresh token that was already rotated).
	ErrConflict = errors.New("storage: conflict")
	// ErrUnavailable: the database cannot be reached now (its server is
	// down or restarting, the connection to it was lost, it is locked by
	// another process for longer than the store waits); the same call may
	// succeed in a moment. Backends return it through Unavailable.
	ErrUnavailable = errors.New("storage: unavailable")
)

// UnavailableRetryAfter is the retry hint of an unreachable store's errors:
// a database restart or failover takes seconds, and a client that waits a
// second between tries neither hammers it nor waits long once it is back.
const UnavailableRetryAfter = time.Second

// Unavailable marks cause, a backend's failure to reach its database, as
// ErrUnavailable. Any store call can fail this way, so the error names its
// kind itself, for the core's callers: it is a chiterr.Unavailable with
// UnavailableRetryAfter, which every transport answers as "try again
// shortly" (UNAVAILABLE, 503 with Retry-After) through whatever the core
// wrapped around it. An error already marked is returned as it is.
func Unavailable(cause error) error {
	if errors.Is(cause, ErrUnavailable) {
		return cause
	}
	return &chiterr.Error{
		Kind:       chiterr.Unavailable,
		Message:    "the token store cannot be reached; try again shortly",
		Cause:      fmt.Errorf("%w: %w", ErrUnavailable, cause),
		RetryAfter: UnavailableRetryAfter,
	}
}

// Page selects part of a list in its stable order (by name or id): the items
// after After (from the first when empty), at most Limit of them (all when
// zero). A caller asks for one more than it shows to learn whether a next
// page exists.
type Page struct {
	After string
	Limit int
}

// ItemError says which item of a bulk operation failed; nothing of the
// operation was applied.
type ItemError struct {
	Index int
	Err   error
}

func (e *ItemError) Error() string { return "item " + strconv.Itoa(e.Index) + ": " + e.Err.Error() }
func (e *ItemError) Unwrap() error { return e.Err }
