package ssf

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/sqlite/sqlitetest"
)

const issuer = "https://chit.test"

// testSigner signs SETs with a key of the test's.
type testSigner struct{ private, public jwk.Key }

func newSigner(t *testing.T) *testSigner {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	private, _ := jwk.FromRaw(raw)
	_ = private.Set(jwk.KeyIDKey, "test-key")
	_ = private.Set(jwk.AlgorithmKey, jwa.ES256)
	public, _ := private.PublicKey()
	return &testSigner{private: private, public: public}
}

func (s *testSigner) SignAs(token jwt.Token, typ string) (string, error) {
	headers := jws.NewHeaders()
	_ = headers.Set(jws.TypeKey, typ)
	signed, err := jwt.Sign(token, jwt.WithKey(jwa.ES256, s.private, jws.WithProtectedHeaders(headers)))
	return string(signed), err
}

// verify parses a SET, checking its signature and typ.
func (s *testSigner) verify(t *testing.T, set string) jwt.Token {
	t.Helper()
	message, err := jws.Parse([]byte(set))
	if err != nil {
		t.Fatal(err)
	}
	if typ := message.Signatures()[0].ProtectedHeaders().Type(); typ != SETType {
		t.Fatalf("typ %q, want %q", typ, SETType)
	}
	token, err := jwt.Parse([]byte(set), jwt.WithKey(jwa.ES256, s.public), jwt.WithValidate(false))
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// scriptedPusher answers pushes from a script (then 202), recording them.
type scriptedPusher struct {
	mu      sync.Mutex
	answers []PushResult
	pushed  []string
	auth    []string
}

func (p *scriptedPusher) Push(ctx context.Context, endpoint, authorization, set string) PushResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pushed = append(p.pushed, set)
	p.auth = append(p.auth, authorization)
	if len(p.answers) == 0 {
		return PushResult{Status: 202}
	}
	answer := p.answers[0]
	p.answers = p.answers[1:]
	return answer
}

type fixture struct {
	store   storage.Store
	signer  *testSigner
	pusher  *scriptedPusher
	service *Service
	now     time.Time
}

func newFixture(t *testing.T, sealer *keys.Sealer) *fixture {
	t.Helper()
	store := sqlitetest.Open(t)
	f := &fixture{store: store, signer: newSigner(t), pusher: &scriptedPusher{}, now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	if err := store.CreateServiceAccount(context.Background(), storage.ServiceAccount{ClientID: "risk", SecretHash: make([]byte, 32), CreatedAt: f.now}); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateServiceAccount(context.Background(), storage.ServiceAccount{ClientID: "other", SecretHash: make([]byte, 32), CreatedAt: f.now}); err != nil {
		t.Fatal(err)
	}
	f.service = New(Config{Issuer: issuer, PollWait: 2 * time.Second}, Dependencies{Store: store, Accounts: directoryOf(store), Keys: f.signer,
		Sealer: sealer, Pusher: f.pusher, Now: func() time.Time { return f.now }, ReplicaID: "replica-a"})
	return f
}

// accountsOf reads service accounts from the store as accounts.Directory does.
type accountsOf struct{ store storage.Store }

func directoryOf(store storage.Store) accountsOf { return accountsOf{store} }

func (a accountsOf) GetServiceAccount(ctx context.Context, clientID string) (storage.ServiceAccount, error) {
	account, err := a.store.GetServiceAccount(ctx, clientID)
	if errors.Is(err, storage.ErrNotFound) {
		return account, chiterr.New(chiterr.NotFound, "service %q does not exist", clientID)
	}
	return account, err
}

func (f *fixture) revokeFamily(t *testing.T, id string) {
	t.Helper()
	if _, err := f.store.RevokeRefreshFamily(context.Background(), id, f.now); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) stream(t *testing.T, id string) storage.SecurityEventStream {
	t.Helper()
	stream, err := f.store.GetSecurityEventStream(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

func pushSpec(id string) StreamSpec {
	return StreamSpec{ID: id, Delivery: "push", EndpointURL: "https://siem.example/events", Authorization: "Bearer s3cret", Audience: "https://siem.example"}
}

func pollSpec(id string) StreamSpec {
	return StreamSpec{ID: id, Delivery: "poll", Receiver: "risk", Audience: "risk-engine"}
}

func TestMap(t *testing.T) {
	at := time.Unix(1764583200, 0)
	tests := []struct {
		name     string
		event    storage.RevocationEvent
		wantType string
		subject  string
		payload  map[string]any
	}{
		{"family", storage.RevocationEvent{Kind: storage.RevocationFamily, FamilyID: "fam-1", RevokedAt: at}, EventSessionRevoked,
			`map[format:complex session:map[format:opaque id:fam-1]]`, map[string]any{"event_timestamp": at.Unix()}},
		{"person", storage.RevocationEvent{Kind: storage.RevocationSubject, Subject: "alice", RevokedAt: at}, EventSessionRevoked,
			`map[format:iss_sub iss:https://chit.test sub:alice]`, nil},
		{"service account", storage.RevocationEvent{Kind: storage.RevocationSubject, Subject: "service:billing", RevokedAt: at}, EventSessionRevoked,
			`map[format:iss_sub iss:https://chit.test sub:service:billing]`, nil},
		{"client", storage.RevocationEvent{Kind: storage.RevocationSubject, Subject: "client:dashboard", RevokedAt: at}, EventSessionRevoked,
			`map[application:map[format:opaque id:dashboard] format:complex]`, nil},
		{"provider key", storage.RevocationEvent{Kind: storage.RevocationProviderKeyRemoved, ProviderID: "hippo", KeyID: "kid-1", RevokedAt: at}, EventCredentialChange,
			`map[format:iss_sub iss:https://chit.test sub:#P_hippo]`, map[string]any{"event_timestamp": at.Unix(), "credential_type": CredentialTypeSigningKey, "change_type": "revoke", "friendly_name": "kid-1"}},
		{"signing key", storage.RevocationEvent{Kind: storage.RevocationSigningKeyRemoved, KeyID: "kid-2", RevokedAt: at}, "", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			event, ok := Map(issuer, tc.event)
			if ok != (tc.wantType != "") || event.Type != tc.wantType {
				t.Fatalf("Map = %+v, %t; want type %q", event, ok, tc.wantType)
			}
			if !ok {
				return
			}
			if got := fmtValue(event.Subject); got != tc.subject {
				t.Fatalf("subject %s, want %s", got, tc.subject)
			}
			if tc.payload != nil && fmtValue(event.Payload) != fmtValue(tc.payload) {
				t.Fatalf("payload %v, want %v", event.Payload, tc.payload)
			}
			if event.Payload["event_timestamp"] != at.Unix() {
				t.Fatalf("event_timestamp %v", event.Payload["event_timestamp"])
			}
		})
	}
}

func fmtValue(v any) string { return strings.TrimSpace(strings.ReplaceAll(sprint(v), "  ", " ")) }

func TestCreateStreamValidation(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name  string
		edit  func(*StreamSpec)
		kind  chiterr.Kind
		field string
	}{
		{"no id", func(s *StreamSpec) { s.ID = "" }, chiterr.InvalidArgument, "id"},
		{"id with a colon", func(s *StreamSpec) { s.ID = "a:b" }, chiterr.InvalidArgument, "id"},
		{"long description", func(s *StreamSpec) { s.Description = strings.Repeat("x", MaxDescription+1) }, chiterr.InvalidArgument, "description"},
		{"no delivery", func(s *StreamSpec) { s.Delivery = "" }, chiterr.InvalidArgument, "delivery"},
		{"unknown delivery", func(s *StreamSpec) { s.Delivery = "email" }, chiterr.InvalidArgument, "delivery"},
		{"no endpoint", func(s *StreamSpec) { s.EndpointURL = "" }, chiterr.InvalidArgument, "endpoint_url"},
		{"http endpoint", func(s *StreamSpec) { s.EndpointURL = "http://siem.example/events" }, chiterr.InvalidArgument, "endpoint_url"},
		{"endpoint with userinfo", func(s *StreamSpec) { s.EndpointURL = "https://u:p@siem.example/events" }, chiterr.InvalidArgument, "endpoint_url"},
		{"endpoint with fragment", func(s *StreamSpec) { s.EndpointURL = "https://siem.example/events#x" }, chiterr.InvalidArgument, "endpoint_url"},
		{"authorization with a line break", func(s *StreamSpec) { s.Authorization = "Bearer x\r\nX-Evil: 1" }, chiterr.InvalidArgument, "authorization"},
		{"push with a receiver", func(s *StreamSpec) { s.Receiver = "risk" }, chiterr.InvalidArgument, "receiver"},
		{"no audience", func(s *StreamSpec) { s.Audience = "" }, chiterr.InvalidArgument, "audience"},
		{"unknown event type", func(s *StreamSpec) { s.EventTypes = []string{"https://example.com/event"} }, chiterr.InvalidArgument, "event_types"},
		{"event type twice", func(s *StreamSpec) { s.EventTypes = []string{EventSessionRevoked, EventSessionRevoked} }, chiterr.InvalidArgument, "event_types"},
		{"poll without receiver", func(s *StreamSpec) { *s = pollSpec("p"); s.Receiver = "" }, chiterr.InvalidArgument, "receiver"},
		{"poll with endpoint", func(s *StreamSpec) { *s = pollSpec("p"); s.EndpointURL = "https://x.example" }, chiterr.InvalidArgument, "endpoint_url"},
		{"poll of no service", func(s *StreamSpec) { *s = pollSpec("p"); s.Receiver = "nobody" }, chiterr.NotFound, "receiver"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := pushSpec("siem")
			tc.edit(&spec)
			_, err := f.service.CreateStream(context.Background(), spec)
			if chiterr.KindOf(err) != tc.kind || !strings.HasPrefix(chiterr.PublicMessage(err), tc.field) {
				t.Fatalf("CreateStream: %v (%s), want %s naming %s", err, chiterr.KindOf(err), tc.kind, tc.field)
			}
		})
	}
	// A loopback http endpoint is allowed (tests, a local agent).
	spec := pushSpec("local")
	spec.EndpointURL = "http://127.0.0.1:8080/events"
	if _, err := f.service.CreateStream(context.Background(), spec); err != nil {
		t.Fatalf("a loopback endpoint: %v", err)
	}
	if _, err := f.service.CreateStream(context.Background(), spec); chiterr.KindOf(err) != chiterr.AlreadyExists {
		t.Fatalf("a taken id: %v", err)
	}
	if _, err := f.service.GetStream(context.Background(), "nobody"); chiterr.KindOf(err) != chiterr.NotFound {
		t.Fatalf("an unknown stream: %v", err)
	}
	if err := f.service.SetStreamStatus(context.Background(), "local", "stopped"); chiterr.KindOf(err) != chiterr.InvalidArgument || !strings.HasPrefix(chiterr.PublicMessage(err), "status") {
		t.Fatalf("a bad status: %v", err)
	}
	if err := f.service.DeleteStream(context.Background(), "nobody"); chiterr.KindOf(err) != chiterr.NotFound {
		t.Fatalf("deleting an unknown stream: %v", err)
	}
}

// A stream starts at the feed's head; its Authorization is sealed at rest
// and never returned.
func TestCreateStreamAtHeadWithSealedAuthorization(t *testing.T) {
	sealer, err := keys.NewSealer([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, sealer)
	f.revokeFamily(t, "before")
	bounds, _ := f.store.RevocationBounds(context.Background())
	created, err := f.service.CreateStream(context.Background(), pushSpec("siem"))
	if err != nil {
		t.Fatal(err)
	}
	if created.Position != bounds.Head || bounds.Head.IsZero() || created.Authorization != "" || created.Delivery != storage.DeliveryPush || created.Status != storage.StreamEnabled {
		t.Fatalf("created %+v, head %v", created, bounds.Head)
	}
	stored := f.stream(t, "siem")
	if stored.Authorization == "" || strings.Contains(stored.Authorization, "s3cret") {
		t.Fatalf("stored authorization %q is not sealed", stored.Authorization)
	}
	if got, _ := f.service.GetStream(context.Background(), "siem"); got.Authorization != "" {
		t.Fatal("GetStream returned the authorization")
	}
	if list, _ := f.service.ListStreams(context.Background(), storage.Page{}); len(list) != 1 || list[0].Authorization != "" {
		t.Fatalf("ListStreams = %+v", list)
	}
	// The pusher opens it; the event before the stream is not pushed.
	f.revokeFamily(t, "after")
	if _, _, err := f.service.pushBacklog(context.Background(), f.stream(t, "siem"), f.now); err != nil {
		t.Fatal(err)
	}
	if len(f.pusher.pushed) != 1 || f.pusher.auth[0] != "Bearer s3cret" {
		t.Fatalf("pushed %d with authorization %q", len(f.pusher.pushed), f.pusher.auth)
	}
}

// A SET has the claims RFC 8417 and SSF 1.0 ask for, and its jti is the
// same at every redelivery.
func TestSETClaims(t *testing.T) {
	f := newFixture(t, nil)
	if _, err := f.service.CreateStream(context.Background(), pushSpec("siem")); err != nil {
		t.Fatal(err)
	}
	f.revokeFamily(t, "fam-1")
	f.pusher.answers = []PushResult{{Status: 503}}
	for range 2 {
		if _, _, err := f.service.pushBacklog(context.Background(), f.stream(t, "siem"), f.now); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.pusher.pushed) != 2 {
		t.Fatalf("pushed %d, want 2 (a retry)", len(f.pusher.pushed))
	}
	first, second := f.signer.verify(t, f.pusher.pushed[0]), f.signer.verify(t, f.pusher.pushed[1])
	if first.JwtID() == "" || first.JwtID() != second.JwtID() || !strings.HasPrefix(first.JwtID(), "siem:") {
		t.Fatalf("jtis %q and %q, want one of stream siem", first.JwtID(), second.JwtID())
	}
	if first.Issuer() != issuer || len(first.Audience()) != 1 || first.Audience()[0] != "https://siem.example" || first.IssuedAt().IsZero() ||
		!first.Expiration().IsZero() || first.Subject() != "" {
		t.Fatalf("claims iss %q aud %v iat %v exp %v sub %q", first.Issuer(), first.Audience(), first.IssuedAt(), first.Expiration(), first.Subject())
	}
	events, _ := first.Get("events")
	event, ok := events.(map[string]any)[EventSessionRevoked].(map[string]any)
	if !ok || event["event_timestamp"] != float64(f.now.Unix()) {
		t.Fatalf("events %v", events)
	}
	subject, _ := first.Get("sub_id")
	if fmtValue(subject) != `map[format:complex session:map[format:opaque id:fam-1]]` {
		t.Fatalf("sub_id %v", subject)
	}
}

// 5xx and network failures are retried without moving the position; a 400
// with an RFC 8935 error is a refusal for good, recorded and passed.
func TestPushOutcomes(t *testing.T) {
	f := newFixture(t, nil)
	created, err := f.service.CreateStream(context.Background(), pushSpec("siem"))
	if err != nil {
		t.Fatal(err)
	}
	f.revokeFamily(t, "fam-1")
	f.revokeFamily(t, "fam-2")
	ctx := context.Background()
	counted := &countingEvents{counts: map[string]int{}}
	f.service.Events = counted
	for _, answer := range []PushResult{{Status: 500}, {Err: errors.New("connection refused")}, {Status: 401}, {Status: 429}, {Status: 400}} {
		f.pusher.answers = []PushResult{answer}
		caughtUp, failed, err := f.service.pushBacklog(ctx, f.stream(t, "siem"), f.now)
		if err != nil || caughtUp || !failed {
			t.Fatalf("answer %+v: caughtUp %t failed %t, %v", answer, caughtUp, failed, err)
		}
		if got := f.stream(t, "siem"); got.Position != created.Position || got.LastError == "" {
			t.Fatalf("answer %+v: stream %+v, want the position kept and the failure recorded", answer, got)
		}
	}
	f.pusher.answers = []PushResult{{Status: 400, ErrCode: "invalid_audience", Description: "not for us"}}
	caughtUp, failed, err := f.service.pushBacklog(ctx, f.stream(t, "siem"), f.now)
	if err != nil || !caughtUp || failed {
		t.Fatalf("after a refusal: caughtUp %t failed %t, %v", caughtUp, failed, err)
	}
	got := f.stream(t, "siem")
	head, _ := f.store.RevocationBounds(ctx)
	if got.Position != head.Head || got.LastError != "" || got.DeliveredAt.IsZero() {
		// The refusal of fam-1 was recorded, then fam-2's delivery
		// cleared it.
		t.Fatalf("stream %+v, want it at the head %v", got, head.Head)
	}
	if n := len(f.pusher.pushed); n != 7 {
		t.Fatalf("pushed %d times, want 7", n)
	}
	if want := map[string]int{"siem/" + OutcomeFailed: 5, "siem/" + OutcomeRefused: 1, "siem/" + OutcomeDelivered: 1}; fmtValue(counted.counts) != fmtValue(want) {
		t.Fatalf("counted %v, want %v", counted.counts, want)
	}
	// A refusal alone stays in LastError, without the Authorization.
	f.revokeFamily(t, "fam-3")
	f.pusher.answers = []PushResult{{Status: 400, ErrCode: "invalid_request", Description: "bad"}}
	if _, _, err := f.service.pushBacklog(ctx, f.stream(t, "siem"), f.now); err != nil {
		t.Fatal(err)
	}
	if got := f.stream(t, "siem"); !strings.Contains(got.LastError, "invalid_request: bad") || strings.Contains(got.LastError, "s3cret") {
		t.Fatalf("LastError %q", got.LastError)
	}
}

// Events of types a stream did not ask for are passed over, not pushed.
func TestEventTypesFilter(t *testing.T) {
	f := newFixture(t, nil)
	spec := pushSpec("keys-only")
	spec.EventTypes = []string{EventCredentialChange}
	if _, err := f.service.CreateStream(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	f.revokeFamily(t, "fam-1")
	caughtUp, failed, err := f.service.pushBacklog(context.Background(), f.stream(t, "keys-only"), f.now)
	head, _ := f.store.RevocationBounds(context.Background())
	if err != nil || !caughtUp || failed || len(f.pusher.pushed) != 0 || f.stream(t, "keys-only").Position != head.Head {
		t.Fatalf("caughtUp %t failed %t err %v pushed %d position %v head %v", caughtUp, failed, err, len(f.pusher.pushed), f.stream(t, "keys-only").Position, head.Head)
	}
}

func TestBackoffDoublesToItsCap(t *testing.T) {
	var waits []time.Duration
	backoff := time.Duration(0)
	for range 9 {
		backoff = nextBackoff(backoff, time.Minute)
		waits = append(waits, backoff)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute, time.Minute}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
}

// Of two replicas running the deliverer, one pushes a stream while its
// lease runs; the other takes over once it has run out.
func TestLeaseOneReplicaPushes(t *testing.T) {
	f := newFixture(t, nil)
	if _, err := f.service.CreateStream(context.Background(), pushSpec("siem")); err != nil {
		t.Fatal(err)
	}
	other := New(Config{Issuer: issuer}, Dependencies{Store: f.store, Accounts: directoryOf(f.store), Keys: f.signer, Pusher: &scriptedPusher{},
		Now: func() time.Time { return f.now }, ReplicaID: "replica-b"})
	ctx := context.Background()
	if held, err := f.store.LeaseSecurityEventStream(ctx, "siem", "replica-a", f.now, f.now.Add(DefaultLease)); err != nil || !held {
		t.Fatal(held, err)
	}
	f.revokeFamily(t, "fam-1")
	// replica-b's worker finds the lease taken and stops at once.
	done := make(chan struct{})
	go func() { other.pushStream(ctx, "siem"); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a replica without the lease kept working")
	}
	if n := len(other.Pusher.(*scriptedPusher).pushed); n != 0 {
		t.Fatalf("the replica without the lease pushed %d", n)
	}
	f.now = f.now.Add(DefaultLease + time.Second)
	runCtx, cancel := context.WithCancel(ctx)
	done = make(chan struct{})
	go func() { other.pushStream(runCtx, "siem"); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for f.stream(t, "siem").LastError == "" && len(other.Pusher.(*scriptedPusher).snapshot()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if n := len(other.Pusher.(*scriptedPusher).snapshot()); n != 1 {
		t.Fatalf("after the lease ran out the other replica pushed %d, want 1", n)
	}
}

func (p *scriptedPusher) snapshot() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.pushed...)
}

func receiver(clientID string) Caller {
	return Caller{Service: true, ClientID: clientID, Subject: accounts.ServiceSubject(clientID), Scopes: []string{Scope}}
}

func intPtr(n int) *int { return &n }

func TestPoll(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	if _, err := f.service.CreateStream(ctx, pollSpec("risk")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.service.CreateStream(ctx, pushSpec("siem")); err != nil {
		t.Fatal(err)
	}
	immediately := PollRequest{ReturnImmediately: true}
	if got, err := f.service.Poll(ctx, receiver("risk"), "risk", immediately); err != nil || len(got.SETs) != 0 {
		t.Fatalf("an empty stream: %+v, %v", got, err)
	}
	f.revokeFamily(t, "fam-1")
	f.revokeFamily(t, "fam-2")
	first, err := f.service.Poll(ctx, receiver("risk"), "risk", immediately)
	if err != nil || len(first.SETs) != 2 {
		t.Fatalf("Poll = %+v, %v", first, err)
	}
	// Without an ack, the same SETs (by jti) come again.
	again, _ := f.service.Poll(ctx, receiver("risk"), "risk", immediately)
	var jtis []string
	for jti, set := range first.SETs {
		if _, ok := again.SETs[jti]; !ok {
			t.Fatalf("jti %s was not redelivered", jti)
		}
		if token := f.signer.verify(t, set); token.JwtID() != jti || token.Audience()[0] != "risk-engine" {
			t.Fatalf("SET of %s: jti %q aud %v", jti, token.JwtID(), token.Audience())
		}
		jtis = append(jtis, jti)
	}
	// maxEvents bounds a poll, with moreAvailable.
	if one, _ := f.service.Poll(ctx, receiver("risk"), "risk", PollRequest{ReturnImmediately: true, MaxEvents: intPtr(1)}); len(one.SETs) != 1 || !one.MoreAvailable {
		t.Fatalf("maxEvents 1: %+v", one)
	}
	// Acks are cumulative: the later jti acknowledges both.
	later := max(jtis[0], jtis[1])
	if got, err := f.service.Poll(ctx, receiver("risk"), "risk", PollRequest{ReturnImmediately: true, Acks: []string{later}}); err != nil || len(got.SETs) != 0 {
		t.Fatalf("after the ack: %+v, %v", got, err)
	}
	// Acknowledging again is harmless.
	if _, err := f.service.Poll(ctx, receiver("risk"), "risk", PollRequest{ReturnImmediately: true, Acks: []string{later}}); err != nil {
		t.Fatalf("a repeated ack: %v", err)
	}

	refusals := []struct {
		name    string
		caller  Caller
		stream  string
		request PollRequest
		kind    chiterr.Kind
		text    string
	}{
		{"a person", Caller{ClientID: "risk", Subject: "alice", Scopes: []string{Scope}}, "risk", immediately, chiterr.PermissionDenied, "service account"},
		{"without the scope", Caller{Service: true, ClientID: "risk", Subject: "service:risk"}, "risk", immediately, chiterr.PermissionDenied, Scope},
		// Another receiver's stream and a push stream read as no stream.
		{"another service", receiver("other"), "risk", immediately, chiterr.NotFound, "does not exist"},
		{"an unknown stream", receiver("risk"), "nobody", immediately, chiterr.NotFound, "does not exist"},
		{"a push stream", receiver("risk"), "siem", immediately, chiterr.NotFound, "does not exist"},
		{"a foreign jti", receiver("risk"), "risk", PollRequest{Acks: []string{"siem:1-0-1"}}, chiterr.InvalidArgument, "ack"},
		{"a malformed jti", receiver("risk"), "risk", PollRequest{Acks: []string{"risk:x"}}, chiterr.InvalidArgument, "ack"},
		{"a jti past the head", receiver("risk"), "risk", PollRequest{Acks: []string{"risk:1-0-999"}}, chiterr.InvalidArgument, "ack"},
		{"a setErr without err", receiver("risk"), "risk", PollRequest{SetErrs: map[string]SetError{later: {}}}, chiterr.InvalidArgument, "setErrs"},
		{"negative maxEvents", receiver("risk"), "risk", PollRequest{MaxEvents: intPtr(-1)}, chiterr.InvalidArgument, "maxEvents"},
		{"too many acks", receiver("risk"), "risk", PollRequest{Acks: make([]string, MaxAcks+1)}, chiterr.InvalidArgument, "ack"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.service.Poll(ctx, tc.caller, tc.stream, tc.request)
			if chiterr.KindOf(err) != tc.kind || !strings.Contains(chiterr.PublicMessage(err), tc.text) {
				t.Fatalf("Poll: %v (%s), want %s naming %q", err, chiterr.KindOf(err), tc.kind, tc.text)
			}
		})
	}

	// A setErr advances too, and is recorded.
	f.revokeFamily(t, "fam-3")
	got, _ := f.service.Poll(ctx, receiver("risk"), "risk", immediately)
	for jti := range got.SETs {
		if _, err := f.service.Poll(ctx, receiver("risk"), "risk", PollRequest{ReturnImmediately: true, SetErrs: map[string]SetError{jti: {Err: "invalid_subject", Description: "unknown session"}}}); err != nil {
			t.Fatal(err)
		}
	}
	if stream := f.stream(t, "risk"); !strings.Contains(stream.LastError, "invalid_subject") {
		t.Fatalf("LastError %q", stream.LastError)
	}
	if got, _ := f.service.Poll(ctx, receiver("risk"), "risk", immediately); len(got.SETs) != 0 {
		t.Fatalf("a refused SET came again: %+v", got)
	}

	// A paused stream answers no SETs, and keeps its position.
	f.revokeFamily(t, "fam-4")
	if err := f.service.SetStreamStatus(ctx, "risk", storage.StreamPaused); err != nil {
		t.Fatal(err)
	}
	if got, err := f.service.Poll(ctx, receiver("risk"), "risk", immediately); err != nil || len(got.SETs) != 0 {
		t.Fatalf("a paused stream: %+v, %v", got, err)
	}
	if err := f.service.SetStreamStatus(ctx, "risk", storage.StreamEnabled); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.service.Poll(ctx, receiver("risk"), "risk", immediately); len(got.SETs) != 1 {
		t.Fatalf("enabled again: %+v", got)
	}
}

// A long poll returns once an event arrives.
func TestLongPollWakes(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	created, err := f.service.CreateStream(ctx, pollSpec("risk"))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		f.revokeFamily(t, "fam-1")
	}()
	began := time.Now()
	got, err := f.service.Poll(ctx, receiver("risk"), "risk", PollRequest{})
	if err != nil || len(got.SETs) != 1 || time.Since(began) > 1900*time.Millisecond {
		t.Fatalf("long poll: %+v, %v after %v", got, err, time.Since(began))
	}
	_ = created
	// With nothing new it waits PollWait, then answers none.
	for jti := range got.SETs {
		if _, err := f.service.Poll(ctx, receiver("risk"), "risk", PollRequest{ReturnImmediately: true, Acks: []string{jti}}); err != nil {
			t.Fatal(err)
		}
	}
	began = time.Now()
	if got, err := f.service.Poll(ctx, receiver("risk"), "risk", PollRequest{}); err != nil || len(got.SETs) != 0 || time.Since(began) < 2*time.Second {
		t.Fatalf("an idle long poll: %+v, %v after %v", got, err, time.Since(began))
	}
}

// Verification events: a push stream's is pushed at once, a poll stream's
// is returned by the next poll until acknowledged.
func TestVerifyStream(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	if _, err := f.service.CreateStream(ctx, pushSpec("siem")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.service.CreateStream(ctx, pollSpec("risk")); err != nil {
		t.Fatal(err)
	}
	if err := f.service.VerifyStream(ctx, "siem", "state-1"); err != nil {
		t.Fatal(err)
	}
	token := f.signer.verify(t, f.pusher.pushed[0])
	events, _ := token.Get("events")
	if fmtValue(events) != `map[`+EventVerification+`:map[state:state-1]]` {
		t.Fatalf("events %v", events)
	}
	f.pusher.answers = []PushResult{{Status: 503}}
	if err := f.service.VerifyStream(ctx, "siem", ""); chiterr.KindOf(err) != chiterr.FailedPrecondition {
		t.Fatalf("a refused verification: %v", err)
	}
	if err := f.service.VerifyStream(ctx, "siem", strings.Repeat("s", MaxState+1)); chiterr.KindOf(err) != chiterr.InvalidArgument || !strings.HasPrefix(chiterr.PublicMessage(err), "state") {
		t.Fatalf("a long state: %v", err)
	}
	if err := f.service.VerifyStream(ctx, "risk", "state-2"); err != nil {
		t.Fatal(err)
	}
	got, _ := f.service.Poll(ctx, receiver("risk"), "risk", PollRequest{ReturnImmediately: true})
	if len(got.SETs) != 1 {
		t.Fatalf("poll after verify: %+v", got)
	}
	for jti := range got.SETs {
		if _, err := f.service.Poll(ctx, receiver("risk"), "risk", PollRequest{ReturnImmediately: true, Acks: []string{jti}}); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := f.service.Poll(ctx, receiver("risk"), "risk", PollRequest{ReturnImmediately: true}); len(got.SETs) != 0 {
		t.Fatalf("an acknowledged verification came again: %+v", got)
	}
}

func sprint(v any) string { return fmt.Sprint(v) }

// A replica shutting down frees its leases: another takes the stream over
// at once.
func TestShutdownReleasesLease(t *testing.T) {
	f := newFixture(t, nil)
	if _, err := f.service.CreateStream(context.Background(), pushSpec("siem")); err != nil {
		t.Fatal(err)
	}
	// The worker's replica holds the lease (it renews its own).
	if held, err := f.store.LeaseSecurityEventStream(context.Background(), "siem", "replica-a", f.now, f.now.Add(DefaultLease)); err != nil || !held {
		t.Fatal(held, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.service.pushStream(ctx, "siem"); close(done) }()
	if held, err := f.store.LeaseSecurityEventStream(context.Background(), "siem", "replica-b", f.now, f.now.Add(time.Second)); err != nil || held {
		t.Fatalf("another replica took a held lease: %t, %v", held, err)
	}
	cancel()
	<-done
	if held, err := f.store.LeaseSecurityEventStream(context.Background(), "siem", "replica-b", f.now, f.now.Add(time.Second)); err != nil || !held {
		t.Fatalf("after shutting down the lease is still held: %t, %v", held, err)
	}
}

// A stream backing off for longer than a lease stays its replica's: the
// lease is renewed while it waits.
func TestBackoffKeepsTheLease(t *testing.T) {
	f := newFixture(t, nil)
	if _, err := f.service.CreateStream(context.Background(), pushSpec("siem")); err != nil {
		t.Fatal(err)
	}
	f.revokeFamily(t, "fam-1")
	pusher := &scriptedPusher{answers: []PushResult{{Status: 503}, {Status: 503}}}
	lease := 300 * time.Millisecond
	service := New(Config{Issuer: issuer, Lease: lease}, Dependencies{Store: f.store, Accounts: directoryOf(f.store), Keys: f.signer, Pusher: pusher, ReplicaID: "replica-a"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { service.pushStream(ctx, "siem"); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(5 * time.Second)
	for len(pusher.snapshot()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// The first backoff is a second: more than three leases.
	time.Sleep(3 * lease)
	now := time.Now()
	if held, err := f.store.LeaseSecurityEventStream(context.Background(), "siem", "replica-b", now, now.Add(lease)); err != nil || held {
		t.Fatalf("another replica took the lease of a stream backing off: %t, %v", held, err)
	}
	if n := len(pusher.snapshot()); n != 1 {
		t.Fatalf("pushed %d times during the first backoff, want 1", n)
	}
}

// A stream behind events the clean-up deleted carries on from what the
// feed holds, and says so.
func TestStreamBehindTheSweep(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	for _, spec := range []StreamSpec{pushSpec("siem"), pollSpec("risk")} {
		if _, err := f.service.CreateStream(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	f.revokeFamily(t, "fam-old")
	if _, err := f.store.DeleteExpiredRevocations(ctx, f.now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	bounds, _ := f.store.RevocationBounds(ctx)
	if bounds.Swept.IsZero() {
		t.Fatal("nothing was swept")
	}
	if _, _, err := f.service.pushBacklog(ctx, f.stream(t, "siem"), f.now); err != nil {
		t.Fatal(err)
	}
	if _, err := f.service.Poll(ctx, receiver("risk"), "risk", PollRequest{ReturnImmediately: true}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"siem", "risk"} {
		if got := f.stream(t, id); got.Position != bounds.Swept || got.LastError != sweptError {
			t.Fatalf("stream %s: %+v, want it at the sweep %v, saying so", id, got, bounds.Swept)
		}
	}
	if len(f.pusher.pushed) != 0 {
		t.Fatalf("pushed %d", len(f.pusher.pushed))
	}
}

type countingEvents struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *countingEvents) SecurityEventPushed(stream, outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[stream+"/"+outcome]++
}
