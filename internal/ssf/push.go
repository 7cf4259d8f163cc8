package ssf

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/chit-auth/chit/internal/storage"
)

// minBackoff is the first wait after a failed push; it doubles up to
// Config.MaxBackoff.
const minBackoff = time.Second

// nextBackoff is the wait after a failure that followed a wait of
// previous (zero for none): doubling from minBackoff up to ceiling.
func nextBackoff(previous, ceiling time.Duration) time.Duration {
	return min(max(2*previous, minBackoff), ceiling)
}

// pushPage bounds one read of a push stream's backlog.
const pushPage = 100

// Run pushes every enabled push stream this replica holds the lease of,
// until ctx ends: each in a goroutine of its own, so that a slow receiver
// delays no other. Every replica runs it; the lease makes one push a
// stream at a time.
func (s *Service) Run(ctx context.Context) {
	if s.Pusher == nil {
		return
	}
	var mu sync.Mutex
	running := map[string]bool{}
	var workers sync.WaitGroup
	defer workers.Wait()
	reload := time.NewTicker(s.cfg.StreamsReload)
	defer reload.Stop()
	for {
		changed := s.changes()
		streams, err := s.pushStreams(ctx)
		if err != nil && ctx.Err() == nil {
			s.Logger.WarnContext(ctx, "Shared Signals: reading the streams failed", "error", err)
		}
		for _, stream := range streams {
			mu.Lock()
			if running[stream.ID] {
				mu.Unlock()
				continue
			}
			running[stream.ID] = true
			mu.Unlock()
			workers.Add(1)
			go func(id string) {
				defer workers.Done()
				s.pushStream(ctx, id)
				mu.Lock()
				delete(running, id)
				mu.Unlock()
			}(stream.ID)
		}
		select {
		case <-ctx.Done():
			return
		case <-reload.C:
		case <-changed:
		}
	}
}

// pushStreams are the enabled push streams.
func (s *Service) pushStreams(ctx context.Context) ([]storage.SecurityEventStream, error) {
	var streams []storage.SecurityEventStream
	page := storage.Page{Limit: 100}
	for {
		batch, err := s.Store.ListSecurityEventStreams(ctx, page)
		if err != nil {
			return streams, err
		}
		for _, stream := range batch {
			if stream.Delivery == storage.DeliveryPush && stream.Status == storage.StreamEnabled {
				streams = append(streams, stream)
			}
		}
		if len(batch) < page.Limit {
			return streams, nil
		}
		page.After = batch[len(batch)-1].ID
	}
}

// pushStream pushes stream id while this replica holds its lease and the
// stream is an enabled push stream.
func (s *Service) pushStream(ctx context.Context, id string) {
	defer s.releaseLease(ctx, id)
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		moved, changed := s.moved(), s.changes()
		now := s.Now()
		held, err := s.Store.LeaseSecurityEventStream(ctx, id, s.ReplicaID, now, now.Add(s.cfg.Lease))
		if err != nil || !held {
			if err != nil && !errors.Is(err, storage.ErrNotFound) && ctx.Err() == nil {
				s.Logger.WarnContext(ctx, "Shared Signals: taking a push lease failed", "stream", id, "error", err)
			}
			return
		}
		stream, err := s.Store.GetSecurityEventStream(ctx, id)
		if err != nil || stream.Delivery != storage.DeliveryPush || stream.Status != storage.StreamEnabled {
			return
		}
		caughtUp, failed, err := s.pushBacklog(ctx, stream, now)
		if errors.Is(err, errLeaseLost) {
			return
		}
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, storage.ErrConflict) {
				s.Logger.WarnContext(ctx, "Shared Signals: pushing failed", "stream", id, "error", err)
			}
			if !errors.Is(err, storage.ErrConflict) {
				return
			}
			continue // another holder moved it: read it again
		}
		// The lease is renewed at least every third of its length.
		wait := s.cfg.Lease / 3
		if failed {
			backoff = nextBackoff(backoff, s.cfg.MaxBackoff)
			wait = backoff
		} else {
			backoff = 0
			if !caughtUp {
				continue
			}
		}
		if failed {
			// A failing receiver is retried on its backoff, not on every
			// new event; the lease is kept meanwhile.
			if !s.backOff(ctx, id, wait, changed) {
				return
			}
			continue
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-timer.C:
		case <-moved:
		case <-changed:
		}
		timer.Stop()
	}
}

// backOff waits wait (or until the streams change here or ctx ends),
// renewing stream id's lease every third of its length, so that a stream
// backing off for longer than a lease stays this replica's; false when
// the lease was lost.
func (s *Service) backOff(ctx context.Context, id string, wait time.Duration, changed <-chan struct{}) bool {
	end := time.Now().Add(wait)
	for {
		remaining := time.Until(end)
		if remaining <= 0 {
			return true
		}
		timer := time.NewTimer(min(remaining, s.cfg.Lease/3))
		select {
		case <-ctx.Done():
			timer.Stop()
			return true
		case <-changed:
			timer.Stop()
			return true
		case <-timer.C:
		}
		if time.Until(end) <= 0 {
			return true
		}
		now := s.Now()
		if held, err := s.Store.LeaseSecurityEventStream(ctx, id, s.ReplicaID, now, now.Add(s.cfg.Lease)); err != nil || !held {
			return ctx.Err() != nil
		}
	}
}

// releaseLease ends this replica's lease of stream id when it shuts down
// (a lease that runs out now is free), so another replica takes the stream
// over at once rather than when the lease would have run out: a lease
// until now is free. Another holder's running lease is left alone (the
// update matches a free lease or one's own).
func (s *Service) releaseLease(ctx context.Context, id string) {
	if ctx.Err() == nil {
		return // the stream was paused, deleted or taken: nothing held
	}
	release, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	now := s.Now()
	_, _ = s.Store.LeaseSecurityEventStream(release, id, s.ReplicaID, now, now)
}

// errLeaseLost ends a backlog whose lease another replica took meanwhile.
var errLeaseLost = errors.New("the push lease was lost")

// pushBacklog pushes up to a page of stream's events after its position,
// advancing it past each event its receiver took or refused for good, and
// past those the stream does not deliver. caughtUp: nothing was left;
// failed: a push failed and is to be retried. leasedAt is when the lease
// was last taken: a page of slow pushes (up to pushPage of PushTimeout
// each) outlasts a lease, so it is renewed between pushes every third of
// its length, and the page ends (errLeaseLost) once another replica holds
// it, so that two replicas never push one stream at once.
func (s *Service) pushBacklog(ctx context.Context, stream storage.SecurityEventStream, leasedAt time.Time) (caughtUp, failed bool, err error) {
	if stream, err = s.catchUpWithSweep(ctx, stream); err != nil {
		return false, false, err
	}
	events, err := s.Store.ListRevocationEvents(ctx, stream.Position, pushPage)
	if err != nil {
		return false, false, err
	}
	position, lastError := stream.Position, stream.LastError
	skipped := position
	// advance records the outcome of the events up to to.
	advance := func(to storage.RevocationCursor, outcome string) error {
		if err := s.Store.AdvanceSecurityEventStream(ctx, stream.ID, position, to, outcome, s.Now()); err != nil {
			return err
		}
		position, skipped, lastError = to, to, outcome
		return nil
	}
	for _, event := range events {
		securityEvent, ok := Map(s.cfg.Issuer, event)
		if !ok || !wants(stream, securityEvent.Type) {
			skipped = event.Cursor
			continue
		}
		if position.Before(skipped) {
			if err := advance(skipped, lastError); err != nil {
				return false, false, err
			}
		}
		if now := s.Now(); now.Sub(leasedAt) >= s.cfg.Lease/3 {
			held, err := s.Store.LeaseSecurityEventStream(ctx, stream.ID, s.ReplicaID, now, now.Add(s.cfg.Lease))
			if err != nil {
				return false, false, err
			}
			if !held {
				return false, false, errLeaseLost
			}
			leasedAt = now
		}
		jti := JTI(stream.ID, event.Cursor)
		set, err := s.sign(stream, jti, securityEvent, s.Now())
		if err != nil {
			return false, false, err
		}
		outcome := s.pushOne(ctx, stream, set)
		switch {
		case outcome.delivered:
			err = advance(event.Cursor, "")
		case outcome.refused:
			s.Logger.WarnContext(ctx, "Shared Signals receiver refused a SET", "stream", stream.ID, "jti", jti, "error", outcome.lastError)
			err = advance(event.Cursor, "receiver refused "+jti+": "+outcome.lastError)
		default:
			s.Logger.WarnContext(ctx, "Shared Signals push failed; retrying", "stream", stream.ID, "jti", jti, "error", outcome.lastError)
			err = s.Store.AdvanceSecurityEventStream(ctx, stream.ID, position, position, outcome.lastError, s.Now())
			return false, true, err
		}
		if err != nil {
			return false, false, err
		}
	}
	if position.Before(skipped) {
		if err := advance(skipped, lastError); err != nil {
			return false, false, err
		}
	}
	return len(events) < pushPage, false, nil
}

// sweptError is the LastError of a stream that fell behind the clean-up.
const sweptError = "events were deleted before they were delivered (the stream was paused or failing for longer than the revocation retention); they concerned only tokens that have expired"

// catchUpWithSweep moves a stream that fell behind the events the clean-up
// deleted to the last one deleted, recording it: those events concerned
// only tokens that can no longer be valid, and the stream carries on from
// what the feed still holds.
func (s *Service) catchUpWithSweep(ctx context.Context, stream storage.SecurityEventStream) (storage.SecurityEventStream, error) {
	bounds, err := s.Store.RevocationBounds(ctx)
	if err != nil || !stream.Position.Before(bounds.Swept) {
		return stream, err
	}
	s.Logger.WarnContext(ctx, "Shared Signals stream fell behind the revocation feed's clean-up; events were lost", "stream", stream.ID,
		"position", stream.Position.String(), "swept", bounds.Swept.String())
	if err := s.Store.AdvanceSecurityEventStream(ctx, stream.ID, stream.Position, bounds.Swept, sweptError, s.Now()); err != nil {
		return stream, err
	}
	stream.Position, stream.LastError = bounds.Swept, sweptError
	return stream, nil
}

// pushOutcome is what became of one push.
type pushOutcome struct {
	// delivered: a 2xx. refused: a 400 with an RFC 8935 error, which
	// pushing again would not change.
	delivered, refused bool
	// lastError says what failed, never the Authorization value.
	lastError string
}

// pushOne POSTs set to stream's endpoint within Config.PushTimeout.
func (s *Service) pushOne(ctx context.Context, stream storage.SecurityEventStream, set string) pushOutcome {
	authorization, err := s.openAuthorization(stream.Authorization)
	if err != nil {
		s.Events.SecurityEventPushed(stream.ID, OutcomeFailed)
		return pushOutcome{lastError: "the stored authorization cannot be opened (is the key encryption key the one it was sealed with?)"}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PushTimeout)
	defer cancel()
	result := s.Pusher.Push(ctx, stream.EndpointURL, authorization, set)
	outcome := judge(result)
	switch {
	case outcome.delivered:
		s.Events.SecurityEventPushed(stream.ID, OutcomeDelivered)
	case outcome.refused:
		s.Events.SecurityEventPushed(stream.ID, OutcomeRefused)
	default:
		s.Events.SecurityEventPushed(stream.ID, OutcomeFailed)
	}
	if len(outcome.lastError) > maxLastError {
		outcome.lastError = strings.ToValidUTF8(outcome.lastError[:maxLastError], "") + "..."
	}
	return outcome
}

// maxLastError bounds what a receiver's answer puts in LastError.
const maxLastError = 512

// printable is a receiver's text (an RFC 8935 error's err and
// description) with its control characters, bidirectional overrides and
// invalid UTF-8 replaced by U+FFFD: it goes into LastError, which chitd
// prints to an admin's terminal, where an escape sequence or a line break
// would rewrite what the admin reads.
func printable(text string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(text, string(utf8.RuneError)))
}

// judge is what a receiver's answer means (RFC 8935 §2.2, §2.3).
func judge(result PushResult) pushOutcome {
	switch {
	case result.Err != nil:
		return pushOutcome{lastError: result.Err.Error()}
	case result.Status >= 200 && result.Status < 300:
		return pushOutcome{delivered: true}
	case result.Status == 400 && result.ErrCode != "":
		text := printable(result.ErrCode)
		if result.Description != "" {
			text += ": " + printable(result.Description)
		}
		return pushOutcome{refused: true, lastError: text}
	}
	return pushOutcome{lastError: fmt.Sprintf("the receiver answered %d", result.Status)}
}
