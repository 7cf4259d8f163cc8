// Package chiterr is the error vocabulary of Chit's core: every error a core
// package returns to a caller carries a Kind that mirrors a gRPC status code,
// and a message written for people. Transports translate the Kind once, at
// the edge; this package must not import gRPC or net/http.
package chiterr

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Kind classifies an error the way a client needs to react to it.
type Kind int

const (
	// Internal is a failure the client cannot fix; its details stay in the logs.
	Internal Kind = iota
	InvalidArgument
	Unauthenticated
	PermissionDenied
	NotFound
	AlreadyExists
	ResourceExhausted
	FailedPrecondition
	Unimplemented
	Unavailable
)

var kindNames = map[Kind]string{
	Internal:           "internal",
	InvalidArgument:    "invalid argument",
	Unauthenticated:    "unauthenticated",
	PermissionDenied:   "permission denied",
	NotFound:           "not found",
	AlreadyExists:      "already exists",
	ResourceExhausted:  "resource exhausted",
	FailedPrecondition: "failed precondition",
	Unimplemented:      "unimplemented",
	Unavailable:        "unavailable",
}

func (k Kind) String() string {
	if name, ok := kindNames[k]; ok {
		return name
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is a classified error. Message is safe to show to the caller; Cause
// is for logs only and never leaves the server.
type Error struct {
	Kind    Kind
	Message string
	Cause   error
	// RetryAfter, when set, tells a throttled caller when to try again.
	RetryAfter time.Duration
	// DPoPNonce, with ReasonUseDPoPNonce, is the nonce the caller must put
	// in its next DPoP proof (RFC 9449 §8, §9): the DPoP-Nonce header.
	DPoPNonce string
	// Reason, when set, names the error for programs in the OAuth 2.0
	// vocabulary (ReasonInvalidScope, ...), which the OAuth endpoints answer.
	Reason string
}

// Reasons in the OAuth 2.0 error vocabulary (RFC 6749 §5.2).
const (
	ReasonInvalidScope         = "invalid_scope"
	ReasonInvalidClient        = "invalid_client"
	ReasonUnauthorizedClient   = "unauthorized_client"
	ReasonInvalidTarget        = "invalid_target"         // RFC 8707 §2
	ReasonUnsupportedTokenType = "unsupported_token_type" // RFC 7009 §2.2.1
	// DPoP's (RFC 9449 §5, §7.1, §8): a proof that is missing, invalid, or
	// of another key; and a proof without the server's current nonce.
	ReasonInvalidDPoPProof = "invalid_dpop_proof"
	ReasonUseDPoPNonce     = "use_dpop_nonce"
	// The revocation feed's: a cursor behind its deleted events; the
	// verifier subscribes again from the start.
	ReasonCursorExpired = "cursor_expired"
)

// WithReason returns a copy of e that names its reason.
func (e *Error) WithReason(reason string) *Error {
	copied := *e
	copied.Reason = reason
	return &copied
}

// WithDPoPNonce returns a copy of e that tells the caller the DPoP nonce
// to use.
func (e *Error) WithDPoPNonce(nonce string) *Error {
	copied := *e
	copied.DPoPNonce = nonce
	return &copied
}

// DPoPNonceOf returns the DPoPNonce of err, or "".
func DPoPNonceOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.DPoPNonce
	}
	return ""
}

// ReasonOf returns the Reason of err, or "".
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Message + ": " + e.Cause.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// New returns an Error of the given kind with a formatted message.
func New(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Wrap classifies cause, keeping it for logs behind a caller-safe message.
func Wrap(kind Kind, cause error, message string) *Error {
	return &Error{Kind: kind, Message: message, Cause: cause}
}

// KindOf returns the Kind of err, or Internal when err carries none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// PublicMessage returns what may be shown to a caller for err: its message if
// it is classified (and not Internal), a generic text otherwise.
func PublicMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Kind != Internal {
		return e.Message
	}
	return "internal error"
}

// RetryAfter returns the retry hint carried by err, if any.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// Quote quotes a value a caller sent, for an error message, cut to its
// first 64 bytes (at a character boundary): a message names what was wrong
// without handing back a megabyte the caller sent.
func Quote(value string) string {
	const most = 64
	if len(value) <= most {
		return strconv.Quote(value)
	}
	cut := most
	for cut > 0 && !utf8.RuneStart(value[cut]) {
		cut--
	}
	return strconv.Quote(value[:cut]) + "..."
}
