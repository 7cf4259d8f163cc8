package verifier

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/chit-auth/chit/pkg/dpop"
)

// RevocationConfig subscribes a verifier to Chit's revocation feed
// (GET /v1/revocations/events, Server-Sent Events), so that it refuses
// revoked tokens with no call per request.
type RevocationConfig struct {
	// TokenSource gives the access token the subscription presents: a
	// SERVICE's, granted the scope chit:revocations, for example
	// client.ClientCredentials(ctx, issuer, id, secret, "chit:revocations").
	// Required. It is asked for a token at every connection.
	TokenSource oauth2.TokenSource
	// Signer, when set, proves that the subscription holds the key its
	// token is bound to (RFC 9449), for a verifier whose service account
	// must use DPoP: every connection then sends `Authorization: DPoP` with
	// a fresh proof, and retries once when the server asks for a nonce.
	Signer *dpop.Signer
	// URL is the feed; defaults to Issuer + "/v1/revocations/events".
	URL string
	// MaxStaleness is how long the set may go without a heartbeat or an
	// event from the server before it counts as stale (default 30
	// seconds). The server sends a heartbeat every few seconds.
	MaxStaleness time.Duration
	// FailClosed decides what a stale set means (default false: fail
	// open). Failing open, a token is accepted on its signature and claims
	// alone, as without a subscription, while the set is stale (revocations
	// the set already holds still refuse). Failing closed, every token is
	// refused with ErrRevocationFeedStale: no revoked token passes, but an
	// outage of Chit (or of its database, or of the network in between)
	// becomes an outage of every service that verifies this way.
	FailClosed bool
	// InitialWait is how long New waits for the first complete snapshot
	// before it returns (default 5 seconds; negative: it does not wait).
	// New never fails because the feed is unreachable: until a snapshot
	// arrives the set is stale, and FailClosed decides.
	InitialWait time.Duration
	// ReadTimeout ends a connection on which nothing arrived for that
	// long, so that a dead connection that never closes is noticed
	// (default 15 seconds, more than twice the heartbeat interval). It
	// also bounds the wait for the response's headers.
	ReadTimeout time.Duration
	// RetryMin and RetryMax bound the delay between connections (defaults
	// 1 second and 30 seconds): it doubles at each failure from RetryMin up
	// to RetryMax, with jitter, and starts again from RetryMin after a
	// connection that delivered a heartbeat.
	RetryMin, RetryMax time.Duration
	// MaxEntries bounds the set (default 200,000 entries, a few tens of
	// MB). Entries are forgotten once every token they refuse has expired;
	// a set that is full anyway takes no more entries, counts as stale,
	// and resubscribes from scratch once pruning has made room.
	MaxEntries int
	// Logger receives the feed's errors and reconnections (never a
	// token); defaults to slog.Default().
	Logger *slog.Logger
}

const (
	defaultRevocationsPath = "/v1/revocations/events"
	// maxLineBytes bounds one line of the stream; a longer line is skipped
	// with its record, counted as malformed.
	maxLineBytes = 16 << 10
	// maxRecordBytes bounds the data of one record.
	maxRecordBytes = 64 << 10
	// pruneInterval is how often, at most, the set is swept for entries
	// past their expiry (checks ignore them meanwhile).
	pruneInterval = time.Minute
)

func (c *RevocationConfig) withDefaults(issuer string) (RevocationConfig, error) {
	resolved := *c
	if resolved.TokenSource == nil {
		return resolved, errors.New("verifier: Revocations.TokenSource is required")
	}
	if resolved.URL == "" {
		resolved.URL = strings.TrimSuffix(issuer, "/") + defaultRevocationsPath
	}
	if resolved.MaxStaleness <= 0 {
		resolved.MaxStaleness = 30 * time.Second
	}
	if resolved.InitialWait == 0 {
		resolved.InitialWait = 5 * time.Second
	}
	if resolved.ReadTimeout <= 0 {
		resolved.ReadTimeout = 15 * time.Second
	}
	if resolved.RetryMin <= 0 {
		resolved.RetryMin = time.Second
	}
	if resolved.RetryMax <= 0 {
		resolved.RetryMax = 30 * time.Second
	}
	if resolved.RetryMax < resolved.RetryMin {
		resolved.RetryMax = resolved.RetryMin
	}
	if resolved.MaxEntries <= 0 {
		resolved.MaxEntries = 200_000
	}
	if resolved.Logger == nil {
		resolved.Logger = slog.Default()
	}
	return resolved, nil
}

// RevocationStatus describes the subscription to the revocation feed.
type RevocationStatus struct {
	// Subscribed is false for a verifier without Config.Revocations.
	Subscribed bool
	// Stale is true while the set cannot be trusted to hold every
	// revocation: before the first snapshot, during a resync, after
	// MaxStaleness without a heartbeat or event, or when it overflowed.
	Stale bool
	// Lag is RevocationLag.
	Lag time.Duration
	// Entries is the set's size.
	Entries int
	// Cursor is where the next connection resumes ("" for a snapshot).
	Cursor string
	// Reconnects counts connections after the first; Malformed counts
	// records skipped because they could not be read; Ignored counts
	// records of kinds this verifier has no use for (provider_key_removed,
	// kinds added later).
	Reconnects, Malformed, Ignored uint64
	// LastError is why the last connection failed or ended; nil while
	// connected after a success.
	LastError error
}

// revocationFeed keeps the revocation set current from the feed.
type revocationFeed struct {
	cfg    RevocationConfig
	now    func() time.Time
	skew   time.Duration
	client *http.Client
	// dropKey removes a removed signing key from the cached JWKS.
	dropKey func(kid string)

	live atomic.Pointer[revocationSet]
	// complete is false until the live set is a whole snapshot (and again
	// during a resync).
	complete atomic.Bool
	// lastHeard is when (by our clock, in Unix nanoseconds) the last
	// heartbeat or event arrived.
	lastHeard atomic.Int64

	reconnects, malformed, ignored atomic.Uint64

	mu sync.Mutex
	// cursor is the id of the last record applied to the live set.
	cursor string
	// serverTime is the newest time the server vouched for: a
	// heartbeat's, or an event's revokedAt.
	serverTime  time.Time
	connectedAt time.Time
	startedAt   time.Time
	lastErr     error
	lastPrune   time.Time

	firstSnapshot chan struct{}
	firstOnce     sync.Once
	done          chan struct{}
}

func newRevocationFeed(cfg RevocationConfig, now func() time.Time, skew time.Duration, httpClient *http.Client, dropKey func(string)) *revocationFeed {
	// The stream lives for hours: the client's overall timeout (meant for
	// the key set) would cut it; ReadTimeout watches it instead.
	streaming := *httpClient
	streaming.Timeout = 0
	if cfg.Signer != nil {
		// The transport sets Authorization itself: the token's, with the
		// DPoP scheme, and the proof's ath of it.
		streaming.Transport = &dpop.Transport{Base: streaming.Transport, Signer: cfg.Signer, Tokens: cfg.TokenSource}
	}
	f := &revocationFeed{
		cfg:           cfg,
		now:           now,
		skew:          skew,
		client:        &streaming,
		dropKey:       dropKey,
		startedAt:     now(),
		firstSnapshot: make(chan struct{}),
		done:          make(chan struct{}),
	}
	f.live.Store(newRevocationSet(cfg.MaxEntries))
	return f
}

// stale reports whether the live set may miss revocations.
func (f *revocationFeed) stale(now time.Time) bool {
	if !f.complete.Load() {
		return true
	}
	return now.Sub(time.Unix(0, f.lastHeard.Load())) > f.cfg.MaxStaleness || f.live.Load().isOverflowed()
}

func (f *revocationFeed) lag(now time.Time) time.Duration {
	f.mu.Lock()
	since := f.serverTime
	if since.IsZero() {
		since = f.connectedAt
	}
	if since.IsZero() {
		since = f.startedAt
	}
	f.mu.Unlock()
	return max(now.Sub(since), 0)
}

// run connects, reads and reconnects until ctx ends.
func (f *revocationFeed) run(ctx context.Context) {
	defer close(f.done)
	failures := 0
	for {
		healthy, err := f.connect(ctx)
		if ctx.Err() != nil {
			return
		}
		if healthy {
			failures = 0
		}
		f.mu.Lock()
		f.lastErr = err
		f.mu.Unlock()
		f.reconnects.Add(1)
		delay := f.retryDelay(failures)
		failures++
		f.cfg.Logger.Warn("verifier: revocation feed disconnected", "error", err, "retry_in", delay)
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}

// retryDelay is RetryMin doubled per failure up to RetryMax, drawn in its
// upper half so that verifiers restarted together do not reconnect
// together.
func (f *revocationFeed) retryDelay(failures int) time.Duration {
	delay := f.cfg.RetryMin
	for range min(failures, 30) {
		if delay >= f.cfg.RetryMax/2 {
			delay = f.cfg.RetryMax
			break
		}
		delay *= 2
	}
	delay = min(delay, f.cfg.RetryMax)
	return delay/2 + rand.N(delay/2+1)
}

// errResync asks for a connection without a cursor, replacing the set.
var errResync = errors.New("resubscribing from a snapshot")

// errSilent ends a connection on which nothing arrived within ReadTimeout.
var errSilent = errors.New("nothing received within the read timeout")

// connect runs one connection; healthy is true when it delivered a
// heartbeat. It always returns an error saying why the connection ended.
func (f *revocationFeed) connect(ctx context.Context) (healthy bool, err error) {
	f.mu.Lock()
	cursor := f.cursor
	f.mu.Unlock()
	token, err := f.cfg.TokenSource.Token()
	if err != nil {
		return false, fmt.Errorf("get a token for the revocation feed: %w", err)
	}
	connCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(f.cfg.ReadTimeout, func() { cancel(errSilent) })
	defer watchdog.Stop()
	req, err := http.NewRequestWithContext(connCtx, http.MethodGet, f.cfg.URL, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if cursor != "" {
		req.Header.Set("Last-Event-ID", cursor)
	}
	token.SetAuthHeader(req)
	resp, err := f.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("connect to the revocation feed: %w", connectionEnd(connCtx, err))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusBadRequest, http.StatusGone:
		// The cursor is not one the server knows (400) or the events
		// since it were deleted (410): only a new snapshot is complete.
		f.mu.Lock()
		f.cursor = ""
		f.mu.Unlock()
		f.complete.Store(false)
		return false, fmt.Errorf("%w: the feed answered HTTP %d to cursor %q: %s", errResync, resp.StatusCode, cursor, errorBody(resp.Body))
	case http.StatusUnauthorized, http.StatusForbidden:
		return false, fmt.Errorf("the revocation feed refused our credential (HTTP %d; it needs a SERVICE token with scope chit:revocations): %s", resp.StatusCode, errorBody(resp.Body))
	default:
		return false, fmt.Errorf("the revocation feed answered HTTP %d: %s", resp.StatusCode, errorBody(resp.Body))
	}
	if media, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); media != "text/event-stream" {
		return false, fmt.Errorf("the revocation feed answered %q, not text/event-stream", resp.Header.Get("Content-Type"))
	}
	f.mu.Lock()
	f.connectedAt = f.now()
	f.lastErr = nil
	f.mu.Unlock()
	stream := &streamState{feed: f, cursor: cursor}
	if cursor == "" {
		// A snapshot is built aside and replaces the set when its first
		// heartbeat says it is complete; until then the set we had stays.
		stream.building = newRevocationSet(f.cfg.MaxEntries)
	}
	err = readEvents(resp.Body, func() { watchdog.Reset(f.cfg.ReadTimeout) }, stream.handle, func() { f.malformed.Add(1) })
	if errors.Is(err, io.EOF) {
		err = errors.New("the server ended the stream")
	}
	return stream.heartbeats > 0, connectionEnd(connCtx, err)
}

// connectionEnd names the watchdog's cause rather than a bare "context
// canceled".
func connectionEnd(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil && !errors.Is(cause, context.Canceled) {
		return fmt.Errorf("%w (%v)", cause, err)
	}
	return err
}

// errorBody reads a little of an error answer, for the log.
func errorBody(body io.Reader) string {
	raw, _ := io.ReadAll(io.LimitReader(body, 512))
	return strings.TrimSpace(string(raw))
}

// streamState is one connection's progress.
type streamState struct {
	feed *revocationFeed
	// building is the snapshot being received, nil once it replaced the
	// live set (or when the connection resumed from a cursor).
	building   *revocationSet
	cursor     string
	heartbeats int
}

type heartbeatRecord struct {
	Cursor string    `json:"cursor"`
	Time   time.Time `json:"time"`
}

// advance moves the connection's cursor past a record; the feed's too,
// unless a snapshot is still being built (a connection cut before its
// heartbeat must start the snapshot again).
func (s *streamState) advance(cursor string) {
	if cursor == "" {
		return
	}
	s.cursor = cursor
	if s.building == nil {
		s.feed.mu.Lock()
		s.feed.cursor = cursor
		s.feed.mu.Unlock()
	}
}

// handle applies one record; an error ends the connection.
func (s *streamState) handle(event, id string, data []byte) error {
	f := s.feed
	switch event {
	case "revocation":
		var record revocationRecord
		if err := json.Unmarshal(data, &record); err != nil {
			// Skipped for good: resuming before it would only read it again.
			f.malformed.Add(1)
			s.advance(id)
			return nil
		}
		now := f.now()
		set := s.building
		if set == nil {
			set = f.live.Load()
		}
		outcome, err := set.add(record, now, f.skew)
		switch {
		case err != nil:
			f.malformed.Add(1)
		case outcome == ignoredKind || outcome == ignoredProviderKey:
			f.ignored.Add(1)
		case outcome == overflow:
			f.cfg.Logger.Error("verifier: the revocation set is full; it counts as stale", "max_entries", f.cfg.MaxEntries)
		}
		if err == nil && record.Kind == kindSigningKeyRemoved && record.KeyID != "" {
			f.dropKey(record.KeyID)
		}
		if id == "" {
			id = record.Cursor
		}
		s.advance(id)
		if err == nil {
			f.mu.Lock()
			f.serverTime = later(f.serverTime, record.RevokedAt)
			f.mu.Unlock()
		}
		f.lastHeard.Store(now.UnixNano())
	case "heartbeat":
		var beat heartbeatRecord
		if err := json.Unmarshal(data, &beat); err != nil || beat.Time.IsZero() {
			f.malformed.Add(1)
			return nil
		}
		s.heartbeats++
		now := f.now()
		f.mu.Lock()
		// The head cursor: every record up to it has been sent.
		if beat.Cursor != "" {
			s.cursor = beat.Cursor
		}
		f.cursor = s.cursor
		f.serverTime = later(f.serverTime, beat.Time)
		prune := now.Sub(f.lastPrune) >= pruneInterval
		if prune {
			f.lastPrune = now
		}
		f.mu.Unlock()
		f.lastHeard.Store(now.UnixNano())
		if s.building != nil {
			f.live.Store(s.building)
			s.building = nil
		}
		f.complete.Store(true)
		f.firstOnce.Do(func() { close(f.firstSnapshot) })
		live := f.live.Load()
		if prune || live.isOverflowed() {
			live.prune(now)
			if live.isOverflowed() && live.size()*10 < f.cfg.MaxEntries*9 {
				// Room again: a snapshot recovers what did not fit.
				f.mu.Lock()
				f.cursor = ""
				f.mu.Unlock()
				f.complete.Store(false)
				return fmt.Errorf("%w: the set overflowed and has room again", errResync)
			}
		}
	default:
		// Other events (and unnamed ones) are not ours to read.
	}
	return nil
}

// readEvents parses a text/event-stream (the WHATWG HTML Living Standard,
// "Server-sent events": fields per line, records ended by a blank line),
// calling heard after every line and handle for every record with data.
// Lines over maxLineBytes, and records over maxRecordBytes, are skipped
// with their record (malformed is called once for each); reading goes on.
func readEvents(body io.Reader, heard func(), handle func(event, id string, data []byte) error, malformed func()) error {
	reader := bufio.NewReaderSize(body, maxLineBytes)
	var (
		event, id string
		data      bytes.Buffer
		hasData   bool
		broken    bool
	)
	reset := func() { event, id, hasData, broken = "", "", false, false; data.Reset() }
	for {
		line, tooLong, err := readLine(reader)
		if err != nil {
			return err
		}
		heard()
		if tooLong {
			if !broken {
				malformed()
			}
			broken = true
			continue
		}
		if len(line) == 0 {
			if hasData && !broken {
				if err := handle(event, id, data.Bytes()); err != nil {
					return err
				}
			}
			reset()
			continue
		}
		if line[0] == ':' {
			continue // a comment, often a keep-alive
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			event = string(value)
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				id = string(value)
			}
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.Write(value)
			hasData = true
			if data.Len() > maxRecordBytes && !broken {
				malformed()
				broken = true
			}
		}
	}
}

// readLine reads one line without its end (LF or CRLF); tooLong is true
// for a line over the reader's buffer, which is consumed and dropped.
func readLine(reader *bufio.Reader) (line []byte, tooLong bool, err error) {
	line, err = reader.ReadSlice('\n')
	for errors.Is(err, bufio.ErrBufferFull) {
		tooLong = true
		_, err = reader.ReadSlice('\n')
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 && !tooLong {
			return nil, false, io.ErrUnexpectedEOF
		}
		return nil, false, err
	}
	if tooLong {
		return nil, true, nil
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
	return line, false, nil
}

// subscribe starts the feed when the configuration asks for it and waits,
// within InitialWait, for its first snapshot.
func (v *Verifier) subscribe(ctx context.Context) error {
	if v.cfg.Revocations == nil {
		return nil
	}
	cfg, err := v.cfg.Revocations.withDefaults(v.cfg.Issuer)
	if err != nil {
		return err
	}
	v.feed = newRevocationFeed(cfg, v.cfg.Now, v.cfg.ClockSkew, v.cfg.HTTPClient, v.dropKey)
	go v.feed.run(ctx)
	if cfg.InitialWait < 0 {
		return nil
	}
	timer := time.NewTimer(cfg.InitialWait)
	defer timer.Stop()
	select {
	case <-v.feed.firstSnapshot:
	case <-timer.C:
		cfg.Logger.Warn("verifier: no revocation snapshot yet; the set is stale until one arrives", "waited", cfg.InitialWait, "fail_closed", cfg.FailClosed)
	case <-ctx.Done():
	}
	return nil
}

// dropKey removes kid from the cached key set.
func (v *Verifier) dropKey(kid string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if key, ok := v.keys.LookupKeyID(kid); ok {
		_ = v.keys.RemoveKey(key)
	}
}

// checkRevocations refuses a verified token that the feed revoked, and,
// failing closed, every token while the feed is stale. It makes no call.
func (v *Verifier) checkRevocations(claims *Claims, kid string) error {
	if v.feed == nil {
		return nil
	}
	now := v.cfg.Now()
	if why := v.feed.live.Load().refusal(claims, kid, now); why != "" {
		return revokedError(why)
	}
	if v.feed.cfg.FailClosed && v.feed.stale(now) {
		return fmt.Errorf("%w: %w: refusing every token until it is current", ErrInvalidToken, ErrRevocationFeedStale)
	}
	return nil
}

// signingKeyRemoved reports whether the feed said kid was removed, so that
// such a token is refused as revoked before any refetch of the key set.
func (v *Verifier) signingKeyRemoved(kid string) bool {
	return v.feed != nil && v.feed.live.Load().keyRemoved(kid, v.cfg.Now())
}

// RevocationLag is how far behind the server the revocation set may be:
// now minus the newest server time received (a heartbeat's time, or an
// event's revokedAt), or, before any, since the connection (or the start).
// Zero for a verifier without Config.Revocations.
func (v *Verifier) RevocationLag() time.Duration {
	if v.feed == nil {
		return 0
	}
	return v.feed.lag(v.cfg.Now())
}

// RevocationStatus describes the subscription, for health checks and logs.
func (v *Verifier) RevocationStatus() RevocationStatus {
	if v.feed == nil {
		return RevocationStatus{}
	}
	f := v.feed
	now := v.cfg.Now()
	f.mu.Lock()
	cursor, lastErr := f.cursor, f.lastErr
	f.mu.Unlock()
	return RevocationStatus{
		Subscribed: true,
		Stale:      f.stale(now),
		Lag:        f.lag(now),
		Entries:    f.live.Load().size(),
		Cursor:     cursor,
		Reconnects: f.reconnects.Load(),
		Malformed:  f.malformed.Load(),
		Ignored:    f.ignored.Load(),
		LastError:  lastErr,
	}
}

// Close stops the verifier's background work (the key set's refresh and
// the revocation feed) and waits for the feed's goroutine to end. Ending
// the context given to New does the same without waiting. A closed
// verifier still verifies with what it holds.
func (v *Verifier) Close() error {
	v.stop()
	if v.feed != nil {
		<-v.feed.done
	}
	return nil
}
