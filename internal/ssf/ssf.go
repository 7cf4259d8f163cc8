package ssf

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/storage"
)

// Scope is the scope a poll receiver's service token carries (with its
// client id the stream's Receiver) to poll its stream.
const Scope = "chit:ssf"

// Event types (CAEP 1.0 §3, SSF 1.0 §8.1.4).
const (
	EventSessionRevoked   = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	EventCredentialChange = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
	EventVerification     = "https://schemas.openid.net/secevent/ssf/event-type/verification"
)

// EventTypes are the event types a stream may ask for.
var EventTypes = []string{EventSessionRevoked, EventCredentialChange}

// SETType is the typ header of Security Event Tokens (RFC 8417 §2.3), so
// that no other JWT Chit signs passes for one, nor a SET for an access
// token (whose typ is at+jwt).
const SETType = "secevent+jwt"

// Defaults of Config.
const (
	DefaultPushTimeout   = 10 * time.Second
	DefaultMaxBackoff    = time.Minute
	DefaultLease         = 30 * time.Second
	DefaultPollWait      = 25 * time.Second
	DefaultStreamsReload = 5 * time.Second
)

// Config is the transmitter's behaviour.
type Config struct {
	// Issuer is the SETs' iss: the server's issuer.
	Issuer string
	// PushTimeout bounds one push (connecting, sending, reading the answer).
	PushTimeout time.Duration
	// MaxBackoff caps the wait between retries of a failing push stream.
	MaxBackoff time.Duration
	// Lease is how long a replica holds a push stream it pushes; it renews
	// the lease while it pushes, and another replica takes over a stream
	// whose lease ran out (its holder died).
	Lease time.Duration
	// PollWait is how long a long poll waits for an event.
	PollWait time.Duration
	// StreamsReload is how often the deliverer rereads the streams (to see
	// ones created, paused or deleted through another replica).
	StreamsReload time.Duration
}

// PushTimeoutOrDefault is PushTimeout, or its default when unset.
func (c Config) PushTimeoutOrDefault() time.Duration {
	if c.PushTimeout <= 0 {
		return DefaultPushTimeout
	}
	return c.PushTimeout
}

// Store is what the transmitter reads and writes.
type Store interface {
	storage.SecurityEventStreams
	storage.RevocationEvents
}

// Signer signs SETs: the server's signing keys (keys.Set).
type Signer interface {
	SignAs(token jwt.Token, typ string) (string, error)
}

// ServiceAccounts tell whether a poll stream's receiver exists.
type ServiceAccounts interface {
	GetServiceAccount(ctx context.Context, clientID string) (storage.ServiceAccount, error)
}

// Pusher POSTs one SET to a push receiver (RFC 8935 §2); internal/ssf/
// ssfpush is the HTTP one. authorization is the Authorization header value
// ("" for none).
type Pusher interface {
	Push(ctx context.Context, endpoint, authorization, set string) PushResult
}

// PushResult is a receiver's answer to a push.
type PushResult struct {
	// Status is the HTTP status; zero when no answer came (Err says why).
	Status int
	// ErrCode and Description are an RFC 8935 §2.3 error body's err and
	// description, when a 400 carried one.
	ErrCode, Description string
	// Err is a failure to reach the receiver.
	Err error
}

// HeadWatcher tells when the revocation feed's head may have moved
// (revocationfeed.Feed.Moved), so deliveries and long polls wake at once.
type HeadWatcher interface {
	Moved() <-chan struct{}
}

// Events count what the deliverer does (telemetry.Metrics).
type Events interface {
	// SecurityEventPushed counts one push to stream's receiver, by
	// outcome: delivered, refused (a 400 with an RFC 8935 error) or failed
	// (to be retried).
	SecurityEventPushed(stream, outcome string)
}

// Outcomes of a push, as Events counts them.
const (
	OutcomeDelivered = "delivered"
	OutcomeRefused   = "refused"
	OutcomeFailed    = "failed"
)

type noEvents struct{}

func (noEvents) SecurityEventPushed(string, string) {}

// Dependencies are the transmitter's live collaborators.
type Dependencies struct {
	Store    Store
	Accounts ServiceAccounts
	Keys     Signer
	// Sealer seals push streams' Authorization values at rest, as it seals
	// private keys; its zero value stores them as they are.
	Sealer *keys.Sealer
	// Pusher delivers push streams; nil in a process that only manages
	// streams (chitd's commands), whose Run is then never called.
	Pusher Pusher
	// Feed wakes the deliverer and long polls; nil polls the store.
	Feed HeadWatcher
	// Events counts pushes; nil counts nothing.
	Events Events
	Now    func() time.Time
	Logger *slog.Logger
	// ReplicaID names this process as a push lease holder; empty is a
	// random one.
	ReplicaID string
}

// Service manages the streams and delivers their events.
type Service struct {
	cfg Config
	Dependencies

	// verifications are the verification events asked for poll streams,
	// delivered by the next poll served by this replica (they are not in
	// the log: see docs/shared-signals.md).
	verifyMu      sync.Mutex
	verifications map[string]pendingVerification
	// longPolls count the long polls waiting per stream (MaxLongPolls).
	longPollMu sync.Mutex
	longPolls  map[string]int
	// changed wakes the deliverer when a stream is created or changed here.
	changedMu sync.Mutex
	changed   chan struct{}
}

// New returns the transmitter over deps.
func New(cfg Config, deps Dependencies) *Service {
	if cfg.PushTimeout <= 0 {
		cfg.PushTimeout = DefaultPushTimeout
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.PollWait <= 0 {
		cfg.PollWait = DefaultPollWait
	}
	if cfg.StreamsReload <= 0 {
		cfg.StreamsReload = DefaultStreamsReload
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Events == nil {
		deps.Events = noEvents{}
	}
	if deps.Sealer == nil {
		deps.Sealer = &keys.Sealer{}
	}
	if deps.ReplicaID == "" {
		id := make([]byte, 8)
		_, _ = rand.Read(id)
		deps.ReplicaID = hex.EncodeToString(id)
	}
	return &Service{cfg: cfg, Dependencies: deps, verifications: map[string]pendingVerification{}, longPolls: map[string]int{}, changed: make(chan struct{})}
}

// notifyChanged wakes the deliverer: a stream was created, enabled or
// verified through this replica.
func (s *Service) notifyChanged() {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Service) changes() <-chan struct{} {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	return s.changed
}
