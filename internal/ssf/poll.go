package ssf

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// Bounds of a poll (RFC 8936 §2.4).
const (
	DefaultMaxEvents = 20
	// MaxEvents caps maxEvents: a larger one is served as this many (the
	// receiver sees moreAvailable and polls again).
	MaxEvents = 100
	// MaxAcks bounds a poll's ack list and setErrs each.
	MaxAcks = 1000
	// maxErrText bounds a setErr's err and description.
	maxErrText = 256
	// scanPage bounds one read of the log while looking for a stream's
	// events.
	scanPage = 500
	// MaxLongPolls bounds the long polls of one stream waiting at once on
	// a replica. Each waiting poll reads the store again at every move of
	// the feed's head, and RFC 8936 expects one receiver to poll at a
	// time: a few cover a receiver's overlapping retries, and thousands
	// from one token are refused rather than multiplying every revocation.
	MaxLongPolls = 4
)

// Caller is who polls, from its verified access token.
type Caller struct {
	// Service: the token is a service account's (role SERVICE).
	Service bool
	// ClientID and Subject are the token's client id and sub.
	ClientID, Subject string
	Scopes            []string
}

// PollRequest is a poll's body (RFC 8936 §2.4).
type PollRequest struct {
	// MaxEvents is how many SETs to return at most; nil is
	// DefaultMaxEvents, 0 an acknowledgement alone.
	MaxEvents         *int
	ReturnImmediately bool
	// Acks are the jtis the receiver processed; SetErrs those it could
	// not, with why. Both are cumulative: a stream is delivered in cursor
	// order, so acknowledging a SET acknowledges every one before it.
	Acks    []string
	SetErrs map[string]SetError
}

// SetError is a receiver's reason for refusing a SET (RFC 8935 §2.3).
type SetError struct {
	Err, Description string
}

// PollResponse is a poll's answer: SETs by jti.
type PollResponse struct {
	SETs          map[string]string
	MoreAvailable bool
}

// verificationJTI follows the stream id in a verification event's jti.
const verificationJTI = ":verification-"

// pendingVerification is a verification event asked for a poll stream.
type pendingVerification struct {
	jti, set string
}

// Poll serves a poll of stream streamID by caller: it applies the
// acknowledgements, then returns the SETs after the stream's position
// (waiting up to Config.PollWait for one unless ReturnImmediately). A
// paused stream answers no SETs. Refusals: a caller that is not a service
// account with the scope chit:ssf is PermissionDenied; an unknown stream,
// a push stream and another receiver's stream are NotFound alike; a bad
// request is InvalidArgument naming the field.
func (s *Service) Poll(ctx context.Context, caller Caller, streamID string, request PollRequest) (PollResponse, error) {
	if !caller.Service {
		return PollResponse{}, chiterr.New(chiterr.PermissionDenied, "Shared Signals streams are polled with a service account's token")
	}
	if !slices.Contains(caller.Scopes, Scope) {
		return PollResponse{}, chiterr.New(chiterr.PermissionDenied, "the token lacks the scope %s", Scope)
	}
	stream, err := s.getStream(ctx, streamID)
	if err != nil {
		return PollResponse{}, err
	}
	if stream.Delivery != storage.DeliveryPoll || caller.ClientID != stream.Receiver || caller.Subject != accounts.ServiceSubject(stream.Receiver) {
		// Another receiver's stream, or a push stream, is answered as one
		// that does not exist: a receiver learns nothing of other streams,
		// not even which ids are taken.
		return PollResponse{}, notFound(streamID)
	}
	maxEvents, err := checkPollRequest(request)
	if err != nil {
		return PollResponse{}, err
	}
	if !request.ReturnImmediately && maxEvents > 0 {
		// Counted before the acknowledgements: a refused poll changes
		// nothing.
		if !s.enterLongPoll(stream.ID) {
			return PollResponse{}, chiterr.New(chiterr.ResourceExhausted,
				"returnImmediately: stream %q has %d long polls waiting already; wait for their answers, or poll with returnImmediately true", stream.ID, MaxLongPolls)
		}
		defer s.leaveLongPoll(stream.ID)
	}
	if stream, err = s.acknowledge(ctx, stream, request); err != nil {
		return PollResponse{}, err
	}
	if maxEvents == 0 {
		return PollResponse{SETs: map[string]string{}}, nil
	}
	var deadline <-chan time.Time
	if !request.ReturnImmediately {
		timer := time.NewTimer(s.cfg.PollWait)
		defer timer.Stop()
		deadline = timer.C
	}
	for {
		// Taken before reading: a head that moves after the read wakes
		// the wait below.
		moved := s.moved()
		response, err := s.collect(ctx, &stream, maxEvents)
		if err != nil || len(response.SETs) > 0 || deadline == nil {
			return response, err
		}
		select {
		case <-ctx.Done():
			return response, nil
		case <-deadline:
			return response, nil
		case <-moved:
		case <-s.changes():
		}
		if stream, err = s.getStream(ctx, streamID); err != nil {
			return PollResponse{}, err
		}
	}
}

// moved is closed when the feed's head may have moved; without a feed, a
// tick of the feed's default pace.
func (s *Service) moved() <-chan struct{} {
	if s.Feed != nil {
		return s.Feed.Moved()
	}
	tick := make(chan struct{})
	time.AfterFunc(250*time.Millisecond, func() { close(tick) })
	return tick
}

func checkPollRequest(request PollRequest) (int, error) {
	maxEvents := DefaultMaxEvents
	if request.MaxEvents != nil {
		maxEvents = *request.MaxEvents
	}
	if maxEvents < 0 {
		return 0, chiterr.New(chiterr.InvalidArgument, "maxEvents must not be negative")
	}
	maxEvents = min(maxEvents, MaxEvents)
	if len(request.Acks) > MaxAcks {
		return 0, chiterr.New(chiterr.InvalidArgument, "ack: at most %d jtis per poll (acknowledgements are cumulative: the last one is enough)", MaxAcks)
	}
	if len(request.SetErrs) > MaxAcks {
		return 0, chiterr.New(chiterr.InvalidArgument, "setErrs: at most %d jtis per poll", MaxAcks)
	}
	for _, jti := range slices.Sorted(maps.Keys(request.SetErrs)) {
		setErr := request.SetErrs[jti]
		if setErr.Err == "" {
			return 0, chiterr.New(chiterr.InvalidArgument, "setErrs: %s has no err", chiterr.Quote(jti))
		}
		if len(setErr.Err) > maxErrText || len(setErr.Description) > maxErrText {
			return 0, chiterr.New(chiterr.InvalidArgument, "setErrs: %s: err and description are at most %d characters", chiterr.Quote(jti), maxErrText)
		}
	}
	return maxEvents, nil
}

// acknowledge moves stream's position to the latest event acknowledged or
// refused (acks are cumulative), and forgets an acknowledged verification.
func (s *Service) acknowledge(ctx context.Context, stream storage.SecurityEventStream, request PollRequest) (storage.SecurityEventStream, error) {
	if len(request.Acks) == 0 && len(request.SetErrs) == 0 {
		return stream, nil
	}
	bounds, err := s.Store.RevocationBounds(ctx)
	if err != nil {
		return stream, err
	}
	var target storage.RevocationCursor
	var verifications []string
	lastError := ""
	read := func(field, jti string) error {
		if strings.HasPrefix(jti, stream.ID+verificationJTI) {
			// A verification is outside the log's order; it is forgotten
			// once the whole request is found valid.
			verifications = append(verifications, jti)
			return nil
		}
		cursor, ok := parseJTI(stream.ID, jti)
		if !ok {
			return chiterr.New(chiterr.InvalidArgument, "%s: %s is not a jti of stream %q", field, chiterr.Quote(jti), stream.ID)
		}
		if bounds.Head.Before(cursor) {
			return chiterr.New(chiterr.InvalidArgument, "%s: %s was not delivered by stream %q", field, chiterr.Quote(jti), stream.ID)
		}
		if target.Before(cursor) {
			target = cursor
		}
		return nil
	}
	for _, jti := range request.Acks {
		if err := read("ack", jti); err != nil {
			return stream, err
		}
	}
	for _, jti := range slices.Sorted(maps.Keys(request.SetErrs)) {
		if err := read("setErrs", jti); err != nil {
			return stream, err
		}
		setErr := request.SetErrs[jti]
		s.Logger.WarnContext(ctx, "Shared Signals receiver refused a SET", "stream", stream.ID, "jti", jti, "err", setErr.Err, "description", setErr.Description)
		lastError = "receiver refused " + jti + ": " + printable(setErr.Err)
		if setErr.Description != "" {
			lastError += ": " + printable(setErr.Description)
		}
	}
	for _, jti := range verifications {
		s.takeVerification(stream.ID, jti)
	}
	for stream.Position.Before(target) {
		err := s.Store.AdvanceSecurityEventStream(ctx, stream.ID, stream.Position, target, lastError, s.Now())
		if errors.Is(err, storage.ErrConflict) {
			// Another poll moved it meanwhile: from where it is now.
			if stream, err = s.getStream(ctx, stream.ID); err != nil {
				return stream, err
			}
			continue
		}
		if errors.Is(err, storage.ErrNotFound) {
			return stream, notFound(stream.ID)
		}
		if err != nil {
			return stream, err
		}
		stream.Position = target
	}
	return stream, nil
}

// collect returns up to maxEvents SETs of the events after stream's
// position (none for a paused stream), and the pending verification. It
// moves the position past a leading run of events the stream does not
// deliver, so they are not read again at every poll.
func (s *Service) collect(ctx context.Context, stream *storage.SecurityEventStream, maxEvents int) (PollResponse, error) {
	response := PollResponse{SETs: map[string]string{}}
	if stream.Status != storage.StreamEnabled {
		return response, nil
	}
	var err error
	if *stream, err = s.catchUpWithSweep(ctx, *stream); err != nil {
		return PollResponse{}, err
	}
	if pending, ok := s.pendingVerification(stream.ID); ok {
		response.SETs[pending.jti] = pending.set
	}
	now := s.Now()
	after, skipped := stream.Position, stream.Position
	// delivered counts the log's events returned (the verification is not
	// one: it has no place in the log's order).
	delivered := 0
	for len(response.SETs) <= maxEvents {
		events, err := s.Store.ListRevocationEvents(ctx, after, scanPage)
		if err != nil {
			return PollResponse{}, err
		}
		for _, event := range events {
			securityEvent, ok := Map(s.cfg.Issuer, event)
			if !ok || !wants(*stream, securityEvent.Type) {
				if delivered == 0 {
					skipped = event.Cursor
				}
				after = event.Cursor
				continue
			}
			if len(response.SETs) == maxEvents {
				response.MoreAvailable = true
				break
			}
			jti := JTI(stream.ID, event.Cursor)
			set, err := s.sign(*stream, jti, securityEvent, now)
			if err != nil {
				return PollResponse{}, err
			}
			response.SETs[jti] = set
			delivered++
			after = event.Cursor
		}
		if response.MoreAvailable || len(events) < scanPage {
			break
		}
	}
	if stream.Position.Before(skipped) {
		// Losing the race to another poll is harmless: it moved further.
		err := s.Store.AdvanceSecurityEventStream(ctx, stream.ID, stream.Position, skipped, stream.LastError, now)
		if err == nil {
			stream.Position = skipped
		} else if !errors.Is(err, storage.ErrConflict) && !errors.Is(err, storage.ErrNotFound) {
			return PollResponse{}, err
		}
	}
	return response, nil
}

// VerifyStream sends stream id a verification event (SSF 1.0 §8.1.4)
// carrying state: a push stream's is pushed at once and its outcome
// returned (FailedPrecondition when the receiver did not take it); a poll
// stream's is returned by the next poll this replica serves, until
// acknowledged. It needs the server's signing keys (a running server).
func (s *Service) VerifyStream(ctx context.Context, id, state string) error {
	if len(state) > MaxState {
		return chiterr.New(chiterr.InvalidArgument, "state is longer than %d characters", MaxState)
	}
	stream, err := s.getStream(ctx, id)
	if err != nil {
		return err
	}
	if stream.Status != storage.StreamEnabled {
		return chiterr.New(chiterr.FailedPrecondition, "stream %q is paused: enable it to verify it", id)
	}
	if s.Keys == nil || (stream.Delivery == storage.DeliveryPush && s.Pusher == nil) {
		return chiterr.New(chiterr.FailedPrecondition, "verification events are sent by a running server: call the Admin API of one")
	}
	random := make([]byte, 8)
	if _, err := rand.Read(random); err != nil {
		return err
	}
	jti := id + verificationJTI + hex.EncodeToString(random)
	payload := map[string]any{}
	if state != "" {
		payload["state"] = state
	}
	set, err := s.sign(stream, jti, SecurityEvent{Type: EventVerification, Payload: payload,
		Subject: map[string]any{"format": "opaque", "id": stream.ID}}, s.Now())
	if err != nil {
		return err
	}
	if stream.Delivery == storage.DeliveryPoll {
		s.verifyMu.Lock()
		s.verifications[id] = pendingVerification{jti: jti, set: set}
		s.verifyMu.Unlock()
		s.notifyChanged()
		return nil
	}
	outcome := s.pushOne(ctx, stream, set)
	if err := s.Store.AdvanceSecurityEventStream(ctx, id, stream.Position, stream.Position, outcome.lastError, s.Now()); err != nil && !errors.Is(err, storage.ErrConflict) {
		return err
	}
	if !outcome.delivered {
		return chiterr.New(chiterr.FailedPrecondition, "the receiver did not take the verification event: %s", outcome.lastError)
	}
	return nil
}

func (s *Service) pendingVerification(streamID string) (pendingVerification, bool) {
	s.verifyMu.Lock()
	defer s.verifyMu.Unlock()
	pending, ok := s.verifications[streamID]
	return pending, ok
}

// takeVerification forgets stream streamID's verification if jti is its.
func (s *Service) takeVerification(streamID, jti string) bool {
	s.verifyMu.Lock()
	defer s.verifyMu.Unlock()
	if pending, ok := s.verifications[streamID]; ok && pending.jti == jti {
		delete(s.verifications, streamID)
		return true
	}
	return false
}

// enterLongPoll counts a long poll of stream streamID, unless MaxLongPolls
// wait already.
func (s *Service) enterLongPoll(streamID string) bool {
	s.longPollMu.Lock()
	defer s.longPollMu.Unlock()
	if s.longPolls[streamID] >= MaxLongPolls {
		return false
	}
	s.longPolls[streamID]++
	return true
}

func (s *Service) leaveLongPoll(streamID string) {
	s.longPollMu.Lock()
	defer s.longPollMu.Unlock()
	if s.longPolls[streamID]--; s.longPolls[streamID] <= 0 {
		delete(s.longPolls, streamID)
	}
}

// longPollsOf is how many long polls of stream streamID wait here.
func (s *Service) longPollsOf(streamID string) int {
	s.longPollMu.Lock()
	defer s.longPollMu.Unlock()
	return s.longPolls[streamID]
}

func (s *Service) forgetVerification(streamID string) {
	s.verifyMu.Lock()
	defer s.verifyMu.Unlock()
	delete(s.verifications, streamID)
}
