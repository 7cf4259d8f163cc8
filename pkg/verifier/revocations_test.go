package verifier_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/chit-auth/chit/pkg/verifier"
)

func verifies(t *testing.T, v *verifier.Verifier, token string) error {
	t.Helper()
	_, err := v.Verify(context.Background(), token)
	return err
}

func TestEachRevocationKindRefusesWhatItShould(t *testing.T) {
	ti := newTestIssuer(t)
	v := ti.newVerifier(t, revocationConfig())
	now := ti.clock.Now()
	cutoff := now.Add(-time.Minute).Add(123456 * time.Microsecond) // a second with microseconds
	expires := now.Add(time.Hour)
	conn := ti.accept(t)
	if conn.HasCursor || conn.Authorization != "Bearer feed-token" {
		t.Fatalf("first connection: Last-Event-ID %q (sent %v), Authorization %q", conn.LastEventID, conn.HasCursor, conn.Authorization)
	}
	conn.open()
	conn.send(
		revocation("1", map[string]any{"kind": "family", "familyId": "fam-revoked", "revokedAt": stamp(cutoff), "expiresAt": stamp(expires)}),
		revocation("2", map[string]any{"kind": "subject", "subject": "user:alice", "revokedAt": stamp(cutoff), "expiresAt": stamp(expires)}),
		revocation("3", map[string]any{"kind": "subject", "subject": "client:web", "revokedAt": stamp(cutoff), "expiresAt": stamp(expires)}),
		revocation("4", map[string]any{"kind": "subject", "subject": "client:origin", "revokedAt": stamp(cutoff), "expiresAt": stamp(expires)}),
		revocation("5", map[string]any{"kind": "subject", "subject": "service:exchanger", "revokedAt": stamp(cutoff), "expiresAt": stamp(expires)}),
		revocation("6", map[string]any{"kind": "signing_key_removed", "keyId": "kid-2", "revokedAt": stamp(cutoff), "expiresAt": stamp(expires)}),
		revocation("7", map[string]any{"kind": "provider_key_removed", "providerId": "corp", "keyId": "kid-1", "revokedAt": stamp(cutoff), "expiresAt": stamp(expires)}),
		revocation("8", map[string]any{"kind": "a_kind_from_the_future", "subject": "user:bob", "revokedAt": stamp(cutoff), "expiresAt": stamp(expires)}),
		heartbeat("8", now),
	)
	eventually(t, "the snapshot", fresh(v))

	at := func(instant time.Time, claims map[string]any) map[string]any {
		claims["iat"] = instant.Unix()
		claims["iat_us"] = instant.UnixMicro()
		return claims
	}
	before := cutoff.Add(-time.Second)
	for _, tc := range []struct {
		name    string
		kid     string
		claims  map[string]any
		revoked bool
	}{
		{"a token of a revoked login", "kid-1", map[string]any{"fid": "fam-revoked"}, true},
		{"a token of another login", "kid-1", map[string]any{"fid": "fam-other"}, false},
		{"the subject's token issued before the cut-off", "kid-1", at(before, map[string]any{"sub": "user:alice"}), true},
		{"the subject's token issued at the cut-off's microsecond", "kid-1", at(cutoff, map[string]any{"sub": "user:alice"}), true},
		{"the subject's token of the same second, an earlier microsecond", "kid-1", at(cutoff.Add(-time.Microsecond), map[string]any{"sub": "user:alice"}), true},
		{"the subject's token of the same second, a later microsecond", "kid-1", at(cutoff.Add(time.Microsecond), map[string]any{"sub": "user:alice"}), false},
		{"the subject's token issued after the cut-off", "kid-1", at(cutoff.Add(2*time.Second), map[string]any{"sub": "user:alice"}), false},
		{"the subject's token of the same second without iat_us (iat's second is at or before)", "kid-1", map[string]any{"sub": "user:alice", "iat": cutoff.Unix(), "iat_us": nil}, true},
		{"an iat_us that disagrees with iat's second counts for nothing", "kid-1", map[string]any{"sub": "user:alice", "iat": cutoff.Unix(), "iat_us": cutoff.Add(5 * time.Second).UnixMicro()}, true},
		{"another subject's token", "kid-1", at(before, map[string]any{"sub": "user:bob"}), false},
		{"a token issued to a revoked client", "kid-1", at(before, map[string]any{"client_id": "web"}), true},
		{"a token issued to a revoked client after its cut-off", "kid-1", at(cutoff.Add(time.Second), map[string]any{"client_id": "web"}), false},
		{"a token issued to another client", "kid-1", at(before, map[string]any{"client_id": "cli"}), false},
		{"a token whose subject is the client's principal key", "kid-1", at(before, map[string]any{"sub": "client:web"}), true},
		{"an exchanged token whose subject token came through a revoked client", "kid-1", at(before, map[string]any{"subject_client_id": "origin"}), true},
		{"an exchanged token whose subject token came through another client", "kid-1", at(before, map[string]any{"subject_client_id": "web2"}), false},
		{"a token a revoked service acted for, deep in the chain", "kid-1", at(before, map[string]any{"act": map[string]any{"sub": "service:front", "act": map[string]any{"sub": "service:exchanger"}}}), true},
		{"a token other services acted for", "kid-1", at(before, map[string]any{"act": map[string]any{"sub": "service:front"}}), false},
		{"a token signed with a removed key", "kid-2", map[string]any{}, true},
		{"a token signed with a kept key (a provider's key removal is ignored)", "kid-1", map[string]any{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := verifies(t, v, ti.token(t, tc.kid, tc.claims))
			switch {
			case tc.revoked && (!errors.Is(err, verifier.ErrRevoked) || !errors.Is(err, verifier.ErrInvalidToken)):
				t.Fatalf("got %v, want ErrRevoked (and ErrInvalidToken)", err)
			case !tc.revoked && err != nil:
				t.Fatalf("refused: %v", err)
			}
		})
	}
	status := v.RevocationStatus()
	if status.Entries != 6 || status.Ignored != 2 || status.Malformed != 0 || status.Cursor != "8" {
		t.Fatalf("status %+v, want 6 entries, 2 ignored (provider key, unknown kind), none malformed, cursor 8", status)
	}
}

func TestResumesFromTheLastCursor(t *testing.T) {
	ti := newTestIssuer(t)
	v := ti.newVerifier(t, revocationConfig())
	expires := stamp(ti.clock.Now().Add(time.Hour))
	first := ti.accept(t)
	first.open()
	first.send(revocation("c1", map[string]any{"kind": "family", "familyId": "fam-1", "expiresAt": expires}), heartbeat("c2", ti.clock.Now()))
	eventually(t, "the snapshot", fresh(v))
	first.end()

	// The heartbeat's head cursor is where the next connection resumes.
	second := ti.accept(t)
	if second.LastEventID != "c2" {
		t.Fatalf("resumed with Last-Event-ID %q, want c2", second.LastEventID)
	}
	second.open()
	// A record that cannot be read is skipped for good: the cursor moves
	// past it.
	second.send(revocation("c3", map[string]any{"kind": "family", "familyId": "fam-2", "expiresAt": expires}), "id: c4\nevent: revocation\ndata: {bad\n\n")
	eventually(t, "the events after resuming", func() bool { return v.RevocationStatus().Cursor == "c4" })
	second.end()

	// Cut before any heartbeat: the last event's id.
	third := ti.accept(t)
	if third.LastEventID != "c4" {
		t.Fatalf("resumed with Last-Event-ID %q, want c4", third.LastEventID)
	}
	third.open()
	third.send(heartbeat("c4", ti.clock.Now()))
	eventually(t, "fresh again", fresh(v))
	for _, family := range []string{"fam-1", "fam-2"} {
		if err := verifies(t, v, ti.token(t, "kid-1", map[string]any{"fid": family})); !errors.Is(err, verifier.ErrRevoked) {
			t.Fatalf("%s after resuming: %v, want revoked (a resumption keeps the set)", family, err)
		}
	}
	if status := v.RevocationStatus(); status.Reconnects != 2 {
		t.Fatalf("%d reconnects, want 2", status.Reconnects)
	}
}

func TestAnUnusableCursorResyncsAndReplacesTheSet(t *testing.T) {
	for _, status := range []int{http.StatusGone, http.StatusBadRequest} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			ti := newTestIssuer(t)
			v := ti.newVerifier(t, revocationConfig())
			expires := stamp(ti.clock.Now().Add(time.Hour))
			first := ti.accept(t)
			first.open()
			first.send(revocation("c1", map[string]any{"kind": "family", "familyId": "fam-old", "expiresAt": expires}), heartbeat("c1", ti.clock.Now()))
			eventually(t, "the snapshot", fresh(v))
			first.end()

			second := ti.accept(t)
			if second.LastEventID != "c1" {
				t.Fatalf("Last-Event-ID %q, want c1", second.LastEventID)
			}
			second.refuse(status)

			third := ti.accept(t)
			if third.HasCursor {
				t.Fatalf("after HTTP %d the verifier sent Last-Event-ID %q, want none", status, third.LastEventID)
			}
			// Until the new snapshot is complete the set is stale, and
			// still refuses what it held.
			if !v.RevocationStatus().Stale {
				t.Fatal("not stale during the resync")
			}
			if err := verifies(t, v, ti.token(t, "kid-1", map[string]any{"fid": "fam-old"})); !errors.Is(err, verifier.ErrRevoked) {
				t.Fatalf("the old set during the resync: %v", err)
			}
			third.open()
			third.send(revocation("d1", map[string]any{"kind": "family", "familyId": "fam-new", "expiresAt": expires}), heartbeat("d1", ti.clock.Now()))
			eventually(t, "the new snapshot", fresh(v))
			if err := verifies(t, v, ti.token(t, "kid-1", map[string]any{"fid": "fam-old"})); err != nil {
				t.Fatalf("a login only the replaced set held: %v", err)
			}
			if err := verifies(t, v, ti.token(t, "kid-1", map[string]any{"fid": "fam-new"})); !errors.Is(err, verifier.ErrRevoked) {
				t.Fatalf("a login of the new snapshot: %v", err)
			}
			if got := v.RevocationStatus(); got.Entries != 1 || got.Cursor != "d1" {
				t.Fatalf("status %+v, want 1 entry at cursor d1", got)
			}
		})
	}
}

func TestStaleFeedFailsOpenOrClosed(t *testing.T) {
	for _, failClosed := range []bool{false, true} {
		name := "fail open"
		if failClosed {
			name = "fail closed"
		}
		t.Run(name, func(t *testing.T) {
			ti := newTestIssuer(t)
			cfg := revocationConfig()
			cfg.FailClosed = failClosed
			cfg.MaxStaleness = 30 * time.Second
			v := ti.newVerifier(t, cfg)
			good := ti.token(t, "kid-1", map[string]any{"fid": "fam-good"})
			check := func(t *testing.T, when string, wantStale bool) {
				t.Helper()
				if got := v.RevocationStatus().Stale; got != wantStale {
					t.Fatalf("%s: stale %v, want %v", when, got, wantStale)
				}
				err := verifies(t, v, good)
				switch {
				case wantStale && failClosed:
					if !errors.Is(err, verifier.ErrRevocationFeedStale) || !errors.Is(err, verifier.ErrInvalidToken) || !strings.Contains(err.Error(), "stale") {
						t.Fatalf("%s: %v, want ErrRevocationFeedStale", when, err)
					}
				case err != nil:
					t.Fatalf("%s: %v, want accepted", when, err)
				}
			}
			conn := ti.accept(t)
			check(t, "before the snapshot", true)
			conn.open()
			conn.send(revocation("1", map[string]any{"kind": "family", "familyId": "fam-bad", "expiresAt": stamp(ti.clock.Now().Add(time.Hour))}), heartbeat("1", ti.clock.Now()))
			eventually(t, "the snapshot", fresh(v))
			check(t, "fresh", false)

			ti.clock.Advance(31 * time.Second)
			check(t, "past MaxStaleness without a heartbeat", true)
			// What the set holds is refused either way, as revoked.
			if err := verifies(t, v, ti.token(t, "kid-1", map[string]any{"fid": "fam-bad"})); !errors.Is(err, verifier.ErrRevoked) {
				t.Fatalf("a revoked token while stale: %v", err)
			}
			// The transports say "try again", not "bad token", when closed.
			recorder := httptest.NewRecorder()
			request := httptest.NewRequest(http.MethodGet, "/", nil)
			request.Header.Set("Authorization", "Bearer "+good)
			v.Middleware(verifier.Requirement{})(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(recorder, request)
			if want := map[bool]int{false: http.StatusOK, true: http.StatusServiceUnavailable}[failClosed]; recorder.Code != want {
				t.Fatalf("middleware while stale: HTTP %d, want %d", recorder.Code, want)
			}
			incoming := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+good))
			_, err := v.UnaryServerInterceptor(verifier.Rules{"/x.v1.X/Y": {}})(incoming, nil, &grpc.UnaryServerInfo{FullMethod: "/x.v1.X/Y"},
				func(context.Context, any) (any, error) { return nil, nil })
			if want := map[bool]codes.Code{false: codes.OK, true: codes.Unavailable}[failClosed]; status.Code(err) != want {
				t.Fatalf("interceptor while stale: %v, want %v", err, want)
			}

			conn.send(heartbeat("1", ti.clock.Now()))
			eventually(t, "fresh after a heartbeat", fresh(v))
			check(t, "after a heartbeat", false)
		})
	}
}

func TestEntriesAreForgottenOnceTheirTokensExpired(t *testing.T) {
	ti := newTestIssuer(t)
	v := ti.newVerifier(t, revocationConfig())
	start := ti.clock.Now()
	// A token that outlives its revocation's expiresAt is impossible from
	// Chit; here it shows the entry is gone.
	token := ti.token(t, "kid-1", map[string]any{"fid": "fam-1", "exp": start.Add(3 * time.Hour).Unix()})
	conn := ti.accept(t)
	conn.open()
	conn.send(
		revocation("1", map[string]any{"kind": "family", "familyId": "fam-1", "expiresAt": stamp(start.Add(10 * time.Minute))}),
		revocation("2", map[string]any{"kind": "family", "familyId": "fam-long", "expiresAt": stamp(start.Add(2 * time.Hour))}),
		// Already over (beyond the clock skew): never added.
		revocation("3", map[string]any{"kind": "family", "familyId": "fam-past", "expiresAt": stamp(start.Add(-time.Minute))}),
		heartbeat("3", start),
	)
	eventually(t, "the snapshot", fresh(v))
	if entries := v.RevocationStatus().Entries; entries != 2 {
		t.Fatalf("%d entries, want 2", entries)
	}
	// Within the clock skew past expiresAt the entry still refuses: the
	// verifier accepts tokens that long after their exp.
	ti.clock.Advance(10*time.Minute + 20*time.Second)
	if err := verifies(t, v, token); !errors.Is(err, verifier.ErrRevoked) {
		t.Fatalf("within the skew after expiresAt: %v, want revoked", err)
	}
	ti.clock.Advance(time.Minute)
	if err := verifies(t, v, token); err != nil {
		t.Fatalf("after expiresAt and the skew: %v, want forgotten", err)
	}
	conn.send(heartbeat("3", ti.clock.Now()))
	eventually(t, "the pruning", func() bool { return v.RevocationStatus().Entries == 1 })
}

func TestMalformedRecordsAreCountedAndSkipped(t *testing.T) {
	ti := newTestIssuer(t)
	v := ti.newVerifier(t, revocationConfig())
	expires := stamp(ti.clock.Now().Add(time.Hour))
	conn := ti.accept(t)
	conn.open()
	conn.send(
		"id: 1\nevent: revocation\ndata: {not json\n\n",                         // malformed
		revocation("2", map[string]any{"kind": "family", "expiresAt": expires}), // malformed: no familyId
		revocation("3", map[string]any{"kind": "subject", "subject": "user:x"}), // malformed: no times
		"id: 4\nevent: revocation\ndata: "+strings.Repeat("x", 20<<10)+"\n\n",   // malformed: line too long
		"event: heartbeat\ndata: []\n\n",                                        // malformed
		": a comment\nretry: 10\nnonsense\ndata: an unnamed event\n\n",          // not ours: ignored
		"event: revocation\n\n",                                                 // no data: nothing
		"id: 5\r\nevent: revocation\r\ndata: {\"kind\":\"family\",\"familyId\":\"fam-crlf\",\r\ndata: \"expiresAt\":\""+expires+"\"}\r\n\r\n", // CRLF, two data lines
		revocation("6", map[string]any{"kind": "family", "familyId": "fam-ok", "expiresAt": expires}),
		heartbeat("6", ti.clock.Now()),
	)
	eventually(t, "the snapshot", fresh(v))
	status := v.RevocationStatus()
	if status.Malformed != 5 || status.Entries != 2 || status.Reconnects != 0 || status.Cursor != "6" {
		t.Fatalf("status %+v, want 5 malformed, 2 entries, no reconnection, cursor 6", status)
	}
	for _, family := range []string{"fam-ok", "fam-crlf"} {
		if err := verifies(t, v, ti.token(t, "kid-1", map[string]any{"fid": family})); !errors.Is(err, verifier.ErrRevoked) {
			t.Fatalf("%s: %v, want revoked", family, err)
		}
	}
}

func TestASilentServerIsLeftAndReconnected(t *testing.T) {
	ti := newTestIssuer(t)
	cfg := revocationConfig()
	cfg.ReadTimeout = 100 * time.Millisecond
	v := ti.newVerifier(t, cfg)
	ti.accept(t) // never answers, not even headers
	second := ti.accept(t)
	second.open()
	second.send(heartbeat("h1", ti.clock.Now()))
	eventually(t, "the snapshot", fresh(v))
	// Then silence on an open connection.
	third := ti.accept(t)
	if third.LastEventID != "h1" {
		t.Fatalf("Last-Event-ID %q, want h1", third.LastEventID)
	}
	if err := v.RevocationStatus().LastError; err == nil || !strings.Contains(err.Error(), "read timeout") {
		t.Fatalf("LastError %v, want the read timeout", err)
	}
}

func TestARefusedCredentialIsRetried(t *testing.T) {
	ti := newTestIssuer(t)
	v := ti.newVerifier(t, revocationConfig())
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		ti.accept(t).refuse(status)
		eventually(t, "the error to show", func() bool {
			err := v.RevocationStatus().LastError
			return err != nil && strings.Contains(err.Error(), "credential")
		})
	}
	conn := ti.accept(t)
	conn.open()
	conn.send(heartbeat("1", ti.clock.Now()))
	eventually(t, "the snapshot", fresh(v))
	if err := v.RevocationStatus().LastError; err != nil {
		t.Fatalf("LastError %v once connected", err)
	}
}

func TestNewWaitsBoundedForTheFirstSnapshot(t *testing.T) {
	ti := newTestIssuer(t)
	cfg := revocationConfig()
	cfg.InitialWait = time.Minute
	made := make(chan *verifier.Verifier)
	go func() {
		v, err := verifier.New(context.Background(), verifier.Config{Issuer: ti.server.URL, Audience: testAudience, Now: ti.clock.Now, Revocations: cfg})
		if err != nil {
			t.Error(err)
		}
		made <- v
	}()
	conn := ti.accept(t)
	conn.open()
	conn.send(heartbeat("1", ti.clock.Now()))
	v := <-made
	defer v.Close()
	if v.RevocationStatus().Stale {
		t.Fatal("New returned before the snapshot")
	}

	// A feed that never answers: New returns anyway, stale.
	cfg.InitialWait = 10 * time.Millisecond
	unreachable, err := verifier.New(context.Background(), verifier.Config{Issuer: ti.server.URL, Audience: testAudience, Now: ti.clock.Now, Revocations: cfg})
	if err != nil {
		t.Fatal(err)
	}
	ti.accept(t) // left unanswered
	if !unreachable.RevocationStatus().Stale {
		t.Fatal("fresh without a snapshot")
	}
	_ = unreachable.Close()
}

func TestRevocationsNeedATokenSource(t *testing.T) {
	ti := newTestIssuer(t)
	_, err := verifier.New(context.Background(), verifier.Config{Issuer: ti.server.URL, Audience: testAudience, Revocations: &verifier.RevocationConfig{}})
	if err == nil || !strings.Contains(err.Error(), "TokenSource") {
		t.Fatalf("New without a token source: %v", err)
	}
}

func TestCloseStopsTheSubscription(t *testing.T) {
	ti := newTestIssuer(t)
	v := ti.newVerifier(t, revocationConfig())
	conn := ti.accept(t)
	conn.open()
	// Close waits for the feed's goroutine; it returns only once the
	// connection is given up.
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	<-conn.gone
}

func TestWithoutRevocationsNothingChanges(t *testing.T) {
	ti := newTestIssuer(t)
	v := ti.newVerifier(t, nil)
	if err := verifies(t, v, ti.token(t, "kid-2", map[string]any{"fid": "anything"})); err != nil {
		t.Fatal(err)
	}
	if status := v.RevocationStatus(); status.Subscribed || v.RevocationLag() != 0 {
		t.Fatalf("status %+v without a subscription", status)
	}
}

func TestCollectorAndLag(t *testing.T) {
	ti := newTestIssuer(t)
	v := ti.newVerifier(t, revocationConfig())
	registry := prometheus.NewPedanticRegistry()
	registry.MustRegister(v.Collector())
	conn := ti.accept(t)
	conn.open()
	serverTime := ti.clock.Now().Add(-2 * time.Second)
	conn.send(
		revocation("1", map[string]any{"kind": "family", "familyId": "f", "revokedAt": stamp(serverTime.Add(-time.Minute)), "expiresAt": stamp(ti.clock.Now().Add(time.Hour))}),
		heartbeat("1", serverTime),
	)
	eventually(t, "the snapshot", fresh(v))
	if lag := v.RevocationLag(); lag != 2*time.Second {
		t.Fatalf("lag %v, want 2s (now minus the heartbeat's time)", lag)
	}
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, family := range families {
		metric := family.GetMetric()[0]
		switch {
		case metric.GetGauge() != nil:
			got[family.GetName()] = metric.GetGauge().GetValue()
		case metric.GetCounter() != nil:
			got[family.GetName()] = metric.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"chit_verifier_revocation_lag_seconds":                  2,
		"chit_verifier_revocations":                             1,
		"chit_verifier_revocation_feed_stale":                   0,
		"chit_verifier_revocation_feed_reconnects_total":        0,
		"chit_verifier_revocation_feed_malformed_records_total": 0,
	}
	for name, value := range want {
		if got[name] != value {
			t.Errorf("%s = %v, want %v (all: %v)", name, got[name], value, got)
		}
	}
}

func TestAFullSetCountsAsStaleAndResyncsOnceItHasRoom(t *testing.T) {
	ti := newTestIssuer(t)
	cfg := revocationConfig()
	cfg.MaxEntries = 2
	cfg.FailClosed = true
	v := ti.newVerifier(t, cfg)
	start := ti.clock.Now()
	conn := ti.accept(t)
	conn.open()
	conn.send(
		revocation("1", map[string]any{"kind": "family", "familyId": "fam-short", "expiresAt": stamp(start.Add(10 * time.Minute))}),
		revocation("2", map[string]any{"kind": "family", "familyId": "fam-long", "expiresAt": stamp(start.Add(time.Hour))}),
		revocation("3", map[string]any{"kind": "family", "familyId": "fam-dropped", "expiresAt": stamp(start.Add(time.Hour))}),
		heartbeat("3", start),
	)
	eventually(t, "the set to fill", func() bool { return v.RevocationStatus().Cursor == "3" })
	if status := v.RevocationStatus(); status.Entries != 2 || !status.Stale {
		t.Fatalf("status %+v, want 2 entries and stale (what did not fit is unknown)", status)
	}
	if err := verifies(t, v, ti.token(t, "kid-1", map[string]any{"fid": "fam-ok"})); !errors.Is(err, verifier.ErrRevocationFeedStale) {
		t.Fatalf("a full set failing closed: %v", err)
	}
	// Once an entry expires there is room: a new snapshot, which fits.
	ti.clock.Advance(15 * time.Minute)
	conn.send(heartbeat("3", ti.clock.Now()))
	again := ti.accept(t)
	if again.HasCursor {
		t.Fatalf("resynced with Last-Event-ID %q, want none", again.LastEventID)
	}
	again.open()
	again.send(
		revocation("4", map[string]any{"kind": "family", "familyId": "fam-long", "expiresAt": stamp(start.Add(time.Hour))}),
		revocation("5", map[string]any{"kind": "family", "familyId": "fam-dropped", "expiresAt": stamp(start.Add(time.Hour))}),
		heartbeat("5", ti.clock.Now()),
	)
	eventually(t, "the new snapshot", fresh(v))
	if err := verifies(t, v, ti.token(t, "kid-1", map[string]any{"fid": "fam-dropped"})); !errors.Is(err, verifier.ErrRevoked) {
		t.Fatalf("the login that did not fit, after the resync: %v", err)
	}
}
