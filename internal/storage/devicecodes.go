package storage

import (
	"context"
	"time"
)

// DeviceCodes are the pending device authorizations (RFC 8628), by the
// digests of their device code and user code. Invariants: a request is
// decided (approved or denied) at most once and only while it is pending
// and unexpired; an approved request issues tokens to exactly one poll;
// every poll stamps the row, so the polling interval is enforced across
// replicas; deleting the client or the approving user voids nothing here
// on its own (the core reads both again before issuing).
type DeviceCodes interface {
	// CreateDeviceCode stores a new request. A device or user code digest
	// already taken is ErrAlreadyExists.
	CreateDeviceCode(ctx context.Context, code DeviceCode) error
	// GetDeviceCodeByUserCode returns the request of a user code's digest,
	// or ErrNotFound.
	GetDeviceCodeByUserCode(ctx context.Context, userCodeHash []byte) (DeviceCode, error)
	// DecideDeviceCode records decision on the request of userCodeHash if
	// it is still pending and has not expired at decision.At; otherwise
	// ErrConflict (ErrNotFound for an unknown digest).
	DecideDeviceCode(ctx context.Context, userCodeHash []byte, decision DeviceDecision) error
	// PollDeviceCode is one poll of a device code, in one round trip: it
	// stamps the row's last poll at now and answers, with the request as it
	// was, the poll's outcome. A poll earlier than the interval after the
	// previous one is DevicePollSlowDown and raises the interval by
	// slowDownStep (RFC 8628 §3.5). An approved request is
	// DevicePollIssue for exactly one poll, DevicePollRedeemed after.
	// A device code is bound to its client: a digest unknown for clientID
	// is ErrNotFound, and such a poll changes nothing.
	PollDeviceCode(ctx context.Context, deviceCodeHash []byte, clientID string, now time.Time, slowDownStep time.Duration) (DeviceCode, DevicePollOutcome, error)
	// DeleteExpiredDeviceCodes removes requests that expired before cutoff.
	DeleteExpiredDeviceCodes(ctx context.Context, cutoff time.Time) (int, error)
}

// DeviceCode is the stored form of one device authorization request.
type DeviceCode struct {
	DeviceCodeHash []byte
	UserCodeHash   []byte
	ClientID       string
	Scope          string
	// RequestedFrom and RequestedAt are the device's address and the time
	// it asked, shown on the confirmation page (a phishing defence).
	RequestedFrom string
	RequestedAt   time.Time
	ExpiresAt     time.Time
	// Interval is the least time between two polls.
	Interval time.Duration
	// LastPolledAt is zero until the first poll.
	LastPolledAt time.Time
	Status       DeviceStatus
	// Subject, AuthTime and SessionID say who approved, when they signed
	// in and through which sign-in session ("" for none).
	Subject   string
	AuthTime  time.Time
	SessionID string
	DecidedAt time.Time
	// RedeemedAt is when an approved request issued its tokens.
	RedeemedAt time.Time
}

// DeviceStatus is where a device authorization request stands.
type DeviceStatus string

const (
	DevicePending  DeviceStatus = "pending"
	DeviceApproved DeviceStatus = "approved"
	DeviceDenied   DeviceStatus = "denied"
)

// DeviceDecision is a person's answer to a request.
type DeviceDecision struct {
	Status    DeviceStatus
	Subject   string
	AuthTime  time.Time
	SessionID string
	At        time.Time
}

// DevicePollOutcome is what one poll of a device code found.
type DevicePollOutcome string

const (
	DevicePollExpired  DevicePollOutcome = "expired"
	DevicePollSlowDown DevicePollOutcome = "slow_down"
	DevicePollPending  DevicePollOutcome = "pending"
	DevicePollDenied   DevicePollOutcome = "denied"
	// DevicePollIssue: this poll is the one that issues the tokens.
	DevicePollIssue DevicePollOutcome = "issue"
	// DevicePollRedeemed: an earlier poll issued them.
	DevicePollRedeemed DevicePollOutcome = "redeemed"
)
