package revocationfeed

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

// Defaults of Config.
const (
	DefaultPollInterval = 250 * time.Millisecond
	DefaultHeartbeat    = 5 * time.Second
	// pageSize bounds one read of a subscriber's backlog.
	pageSize = 500
)

// Config is a feed's behaviour.
type Config struct {
	// PollInterval is how often the poller reads the log's head: the
	// longest a committed event waits before subscribers are woken (on
	// PostgreSQL a NOTIFY wakes them sooner, see Store.WaitRevocations).
	PollInterval time.Duration
	// Heartbeat is how often an idle stream is told the head and the time.
	Heartbeat time.Duration
	// Retention is how long after its RevokedAt a token an event concerns
	// may still be valid (the longest access-token lifetime and the clock
	// skew): the event's ExpiresAt, and what the clean-up keeps it for.
	Retention time.Duration
	Now       func() time.Time
	Logger    *slog.Logger
	// MaxStreamsPerCaller bounds the streams one caller holds open on this
	// replica (DefaultMaxStreamsPerCaller when zero); see Feed.Admit.
	MaxStreamsPerCaller int
}

// Store is what the feed reads.
type Store interface {
	storage.RevocationEvents
}

// Waker is what a store may offer to wake the poller as soon as an event
// commits (PostgreSQL's LISTEN/NOTIFY); WaitRevocations returns when one
// may have, or with an error when it cannot wait (the poller then polls).
type Waker interface {
	WaitRevocations(ctx context.Context) error
}

// Feed is one replica's view of the log's head, which it broadcasts to the
// streams it serves.
type Feed struct {
	cfg   Config
	store Store

	mu   sync.Mutex
	head storage.RevocationCursor
	// moved is closed, and replaced, whenever head moves.
	moved chan struct{}
	// stopped is closed when Run returns (the server shuts down): every
	// stream ends, and its verifier resumes elsewhere from its cursor.
	stopped chan struct{}
	// streams counts each caller's open streams (Admit).
	streams streamCounts
}

// New returns a feed of store; Run polls it.
func New(cfg Config, store Store) *Feed {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxStreamsPerCaller <= 0 {
		cfg.MaxStreamsPerCaller = DefaultMaxStreamsPerCaller
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Feed{cfg: cfg, store: store, moved: make(chan struct{}), stopped: make(chan struct{})}
}

// Run polls the head until ctx ends: every PollInterval, and whenever the
// store's Waker says an event may have committed.
func (f *Feed) Run(ctx context.Context) {
	defer close(f.stopped)
	wake := make(chan struct{}, 1)
	if waker, ok := f.store.(Waker); ok {
		go func() {
			for ctx.Err() == nil {
				if err := waker.WaitRevocations(ctx); err != nil {
					if ctx.Err() == nil {
						f.cfg.Logger.Debug("waiting for revocation notifications failed; polling", "error", err)
					}
					// Polling goes on; try listening again a poll later.
					select {
					case <-ctx.Done():
						return
					case <-time.After(10 * f.cfg.PollInterval):
					}
					continue
				}
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}()
	}
	ticker := time.NewTicker(f.cfg.PollInterval)
	defer ticker.Stop()
	for {
		f.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-wake:
		}
	}
}

func (f *Feed) poll(ctx context.Context) {
	bounds, err := f.store.RevocationBounds(ctx)
	if err != nil {
		if ctx.Err() == nil {
			f.cfg.Logger.Warn("reading the revocation feed's head failed", "error", err)
		}
		return
	}
	f.advance(bounds.Head)
}

// advance moves the head forward (never back) and wakes the subscribers.
func (f *Feed) advance(head storage.RevocationCursor) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.head.Before(head) {
		return
	}
	f.head = head
	close(f.moved)
	f.moved = make(chan struct{})
}

// current is the head this replica knows and the channel closed when it moves.
func (f *Feed) current() (storage.RevocationCursor, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.head, f.moved
}

// Scope is the scope a service's token carries to watch the feed (an
// admin's needs none).
const Scope = "chit:revocations"

// Moved is closed when this replica's head next moves: a consumer that
// reads the log on its own (the Shared Signals deliverer, internal/ssf)
// takes it before reading, and waits on it when nothing was left to read.
func (f *Feed) Moved() <-chan struct{} {
	_, moved := f.current()
	return moved
}
