package device

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/sqlite/sqlitetest"
	"github.com/chit-auth/chit/internal/tokens"
)

// issuer stands in for authorize.Service: it records what it was asked
// to issue.
type issuer struct {
	issued atomic.Int32
	last   authorize.Redemption
}

func (i *issuer) IssueForSignIn(_ context.Context, _ accounts.Client, in authorize.Redemption) (tokens.Grant, error) {
	i.issued.Add(1)
	i.last = in
	return tokens.Grant{AccessToken: "access", Scope: in.Scope}, nil
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time          { return c.now }
func (c *clock) Advance(d time.Duration) { c.now = c.now.Add(d) }

type env struct {
	svc    *Service
	clock  *clock
	issuer *issuer
	store  storage.Store
}

var (
	cli   = accounts.FirstPartyClient(accounts.CLIClientID)
	alice = accounts.Principal{Subject: "alice", Role: accounts.RoleUser}
)

func newEnv(t *testing.T) *env {
	t.Helper()
	c := &clock{now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	store := sqlitetest.Open(t)
	is := &issuer{}
	svc := NewService(Config{BaseURL: "https://chit.example/"}, Dependencies{Store: store, Authorize: is, Now: c.Now})
	return &env{svc: svc, clock: c, issuer: is, store: store}
}

func (e *env) start(t *testing.T, client accounts.Client, scope string) Authorization {
	t.Helper()
	started, err := e.svc.Start(context.Background(), StartRequest{Client: client, Scope: scope, Address: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	return started
}

func (e *env) poll(code string) (tokens.Grant, error) {
	return e.svc.Poll(context.Background(), PollRequest{Client: cli, DeviceCode: code})
}

func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	if got := chiterr.ReasonOf(err); got != reason {
		t.Fatalf("error %v has reason %q, want %q", err, got, reason)
	}
}

func TestStartAnswersCodes(t *testing.T) {
	e := newEnv(t)
	started := e.start(t, cli, "openid profile")
	if started.VerificationURI != "https://chit.example/oauth2/device" || started.VerificationURIComplete != started.VerificationURI+"?user_code="+started.UserCode {
		t.Fatalf("verification URIs %q %q", started.VerificationURI, started.VerificationURIComplete)
	}
	if started.ExpiresIn != DefaultCodeTTL || started.Interval != DefaultInterval || len(started.DeviceCode) < 40 {
		t.Fatalf("answer %+v", started)
	}
	code, ok := NormalizeUserCode(started.UserCode)
	if !ok || len(code) != UserCodeLength || started.UserCode[4] != '-' {
		t.Fatalf("user code %q", started.UserCode)
	}
	for _, r := range code {
		if !strings.ContainsRune(UserCodeAlphabet, r) {
			t.Fatalf("user code %q has %q outside the alphabet", code, r)
		}
	}
	// Only digests are stored.
	stored, err := e.store.GetDeviceCodeByUserCode(context.Background(), []byte(code))
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the user code itself is a key: %+v %v", stored, err)
	}
}

func TestNormalizeUserCode(t *testing.T) {
	for _, tc := range []struct {
		typed, want string
		ok          bool
	}{
		{"BCDF-GHJK", "BCDFGHJK", true},
		{"bcdfghjk", "BCDFGHJK", true},
		{" bc-df gh-jk ", "BCDFGHJK", true},
		{"BCDFGHJ", "", false},
		{"BCDFGHJKL", "", false},
		{"ABCDEFGH", "", false}, // vowels are not in the alphabet
		{"BCDF\u00c9GHJ", "", false},
	} {
		got, ok := NormalizeUserCode(tc.typed)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("NormalizeUserCode(%q) = %q, %t; want %q, %t", tc.typed, got, ok, tc.want, tc.ok)
		}
	}
}

func TestLookupAcceptsAnyCaseAndDashes(t *testing.T) {
	e := newEnv(t)
	started := e.start(t, cli, "openid")
	typed := strings.ToLower(strings.ReplaceAll(started.UserCode, "-", ""))
	request, err := e.svc.Lookup(context.Background(), typed, "198.51.100.9")
	if err != nil {
		t.Fatal(err)
	}
	if request.ClientID != accounts.CLIClientID || request.RequestedFrom != "192.0.2.1" || !request.RequestedAt.Equal(e.clock.now) ||
		request.UserCode != started.UserCode || strings.Join(request.Scopes, " ") != "openid" {
		t.Fatalf("request %+v", request)
	}
}

func TestPollStates(t *testing.T) {
	e := newEnv(t)
	started := e.start(t, cli, "openid")
	_, err := e.poll(started.DeviceCode)
	wantReason(t, err, ReasonAuthorizationPending)

	// Too early: slow_down, and the interval grows by 5 s each time.
	e.clock.Advance(2 * time.Second)
	_, err = e.poll(started.DeviceCode)
	wantReason(t, err, ReasonSlowDown)
	if chiterr.RetryAfter(err) != 10*time.Second {
		t.Fatalf("slow_down says to wait %v, want 10s", chiterr.RetryAfter(err))
	}
	e.clock.Advance(9 * time.Second)
	_, err = e.poll(started.DeviceCode)
	wantReason(t, err, ReasonSlowDown)
	if chiterr.RetryAfter(err) != 15*time.Second {
		t.Fatalf("second slow_down says to wait %v, want 15s", chiterr.RetryAfter(err))
	}
	e.clock.Advance(15 * time.Second)
	_, err = e.poll(started.DeviceCode)
	wantReason(t, err, ReasonAuthorizationPending)

	// Approved: tokens once, then invalid_grant (Unauthenticated, no reason).
	if err := e.svc.Decide(context.Background(), Decision{UserCode: started.UserCode, Approve: true, Principal: alice, AuthTime: e.clock.now, SessionID: "s1"}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(15 * time.Second)
	grant, err := e.poll(started.DeviceCode)
	if err != nil || grant.AccessToken != "access" {
		t.Fatalf("poll after approval: %+v %v", grant, err)
	}
	if e.issuer.last.Subject != "alice" || e.issuer.last.SessionID != "s1" || e.issuer.last.Scope != "openid" || e.issuer.last.Kind != "device_code" {
		t.Fatalf("issued %+v", e.issuer.last)
	}
	e.clock.Advance(time.Minute)
	if _, err := e.poll(started.DeviceCode); chiterr.KindOf(err) != chiterr.Unauthenticated || chiterr.ReasonOf(err) != "" {
		t.Fatalf("second poll after success: %v", err)
	}
	if n := e.issuer.issued.Load(); n != 1 {
		t.Fatalf("issued %d times", n)
	}
	// Its user code is used up.
	if _, err := e.svc.Lookup(context.Background(), started.UserCode, "198.51.100.9"); chiterr.KindOf(err) != chiterr.NotFound {
		t.Fatalf("lookup of a used code: %v", err)
	}
}

func TestPollDenied(t *testing.T) {
	e := newEnv(t)
	started := e.start(t, cli, "")
	if err := e.svc.Deny(context.Background(), started.UserCode, "198.51.100.9"); err != nil {
		t.Fatal(err)
	}
	_, err := e.poll(started.DeviceCode)
	wantReason(t, err, ReasonAccessDenied)
	// A denied request cannot be approved afterwards.
	err = e.svc.Decide(context.Background(), Decision{UserCode: started.UserCode, Approve: true, Principal: alice})
	if err == nil {
		t.Fatal("a denied request was approved")
	}
	if e.issuer.issued.Load() != 0 {
		t.Fatal("a denied request issued tokens")
	}
}

func TestPollExpired(t *testing.T) {
	e := newEnv(t)
	started := e.start(t, cli, "")
	e.clock.Advance(DefaultCodeTTL)
	_, err := e.poll(started.DeviceCode)
	wantReason(t, err, ReasonExpiredToken)
	// An expired code can be neither looked up nor approved.
	if _, err := e.svc.Lookup(context.Background(), started.UserCode, "198.51.100.9"); chiterr.KindOf(err) != chiterr.NotFound {
		t.Fatalf("lookup of an expired code: %v", err)
	}
	if err := e.svc.Decide(context.Background(), Decision{UserCode: started.UserCode, Approve: true, Principal: alice}); err == nil {
		t.Fatal("an expired request was approved")
	}
}

func TestPollRefusals(t *testing.T) {
	e := newEnv(t)
	started := e.start(t, cli, "")
	if _, err := e.poll("not-a-device-code"); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("unknown device code: %v", err)
	}
	if _, err := e.poll(""); chiterr.KindOf(err) != chiterr.InvalidArgument {
		t.Fatalf("empty device code: %v", err)
	}
	// Another client allowed the grant cannot redeem the CLI's code.
	tv := accounts.Client{ID: "tv", DeviceAuthorization: true}
	if _, err := e.svc.Poll(context.Background(), PollRequest{Client: tv, DeviceCode: started.DeviceCode}); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("another client's poll: %v", err)
	}
}

func TestClientsMustBeAllowedTheGrant(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name   string
		client accounts.Client
	}{
		{"a registered client not allowed it", accounts.Client{ID: "dashboard"}},
		{"the API client", accounts.FirstPartyClient(accounts.APIClientID)},
		{"a service account", accounts.Client{ID: "svc", Service: true, DeviceAuthorization: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.Start(context.Background(), StartRequest{Client: tc.client})
			wantReason(t, err, chiterr.ReasonUnauthorizedClient)
			_, err = e.svc.Poll(context.Background(), PollRequest{Client: tc.client, DeviceCode: "x"})
			wantReason(t, err, chiterr.ReasonUnauthorizedClient)
		})
	}
	tv := accounts.Client{ID: "tv", DeviceAuthorization: true, Grants: storage.Grants{AllowedScopes: []string{"read"}}}
	if _, err := e.svc.Start(context.Background(), StartRequest{Client: tv, Scope: "read openid"}); err != nil {
		t.Fatalf("allowed client: %v", err)
	}
	_, err := e.svc.Start(context.Background(), StartRequest{Client: tv, Scope: "write"})
	wantReason(t, err, chiterr.ReasonInvalidScope)
}

func TestUserCodeGuessesAreThrottled(t *testing.T) {
	e := newEnv(t)
	started := e.start(t, cli, "")
	ctx := context.Background()
	const guesser, other = "203.0.113.5", "198.51.100.9"
	for i := range accounts.DefaultThrottle.FreeFailures {
		if _, err := e.svc.Lookup(ctx, "BBBB-BBBB", guesser); chiterr.KindOf(err) != chiterr.NotFound {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	// Past the free failures even the right code waits, from that address.
	_, err := e.svc.Lookup(ctx, started.UserCode, guesser)
	if chiterr.KindOf(err) != chiterr.ResourceExhausted || chiterr.RetryAfter(err) <= 0 {
		t.Fatalf("guess past the throttle: %v", err)
	}
	if err := e.svc.Decide(ctx, Decision{UserCode: started.UserCode, Approve: true, Principal: alice, Address: guesser}); chiterr.KindOf(err) != chiterr.ResourceExhausted {
		t.Fatalf("approval past the throttle: %v", err)
	}
	// Another address is not held back.
	if _, err := e.svc.Lookup(ctx, started.UserCode, other); err != nil {
		t.Fatalf("another address: %v", err)
	}
	// Malformed codes count too.
	for range accounts.DefaultThrottle.FreeFailures {
		_, _ = e.svc.Lookup(ctx, "nonsense!", "192.0.2.200")
	}
	if _, err := e.svc.Lookup(ctx, started.UserCode, "192.0.2.200"); chiterr.KindOf(err) != chiterr.ResourceExhausted {
		t.Fatalf("malformed guesses are not counted: %v", err)
	}
	// The wait passes (the first one past the free failures is a second).
	e.clock.Advance(2 * time.Second)
	if _, err := e.svc.Lookup(ctx, started.UserCode, guesser); err != nil {
		t.Fatalf("after the throttle's window: %v", err)
	}
}

func TestUserCodeIsSingleUse(t *testing.T) {
	e := newEnv(t)
	started := e.start(t, cli, "")
	ctx := context.Background()
	if err := e.svc.Decide(ctx, Decision{UserCode: started.UserCode, Approve: true, Principal: alice}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Decide(ctx, Decision{UserCode: started.UserCode, Approve: true, Principal: accounts.Principal{Subject: "mallory", Role: accounts.RoleUser}}); err == nil {
		t.Fatal("a user code was approved twice")
	}
	if err := e.svc.Deny(ctx, started.UserCode, ""); err == nil {
		t.Fatal("an approved request was denied afterwards")
	}
}

// A poll that issues nothing costs one store operation (PollDeviceCode,
// one statement that reads and stamps the row), whatever its outcome.
func TestAPollIsOneStoreRoundTrip(t *testing.T) {
	c := &clock{now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	var mu sync.Mutex
	var operations []string
	store := storage.Timed(sqlitetest.Open(t), func(operation string, _ time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		operations = append(operations, operation)
	})
	svc := NewService(Config{}, Dependencies{Store: store, Authorize: &issuer{}, Now: c.Now})
	started, err := svc.Start(context.Background(), StartRequest{Client: cli})
	if err != nil {
		t.Fatal(err)
	}
	for _, advance := range []time.Duration{0, time.Second, time.Minute} { // pending, slow_down, pending
		c.Advance(advance)
		operations = nil
		_, _ = svc.Poll(context.Background(), PollRequest{Client: cli, DeviceCode: started.DeviceCode})
		if len(operations) != 1 || operations[0] != "PollDeviceCode" {
			t.Fatalf("a poll ran %v, want one PollDeviceCode", operations)
		}
	}
}

// Parallel guesses cannot outrun the throttle: each is reserved before
// its lookup, so a burst gets exactly the free failures checked.
func TestParallelGuessesGetOnlyTheFreeFailures(t *testing.T) {
	e := newEnv(t)
	const guesses = 20
	errs := make([]error, guesses)
	var wg sync.WaitGroup
	for i := range guesses {
		wg.Go(func() { _, errs[i] = e.svc.Lookup(context.Background(), "BBBB-BBBB", "203.0.113.5") })
	}
	wg.Wait()
	checked := 0
	for _, err := range errs {
		switch chiterr.KindOf(err) {
		case chiterr.NotFound:
			checked++
		case chiterr.ResourceExhausted:
		default:
			t.Fatalf("guess: %v", err)
		}
	}
	if checked != accounts.DefaultThrottle.FreeFailures {
		t.Fatalf("%d of %d parallel guesses were checked, want %d", checked, guesses, accounts.DefaultThrottle.FreeFailures)
	}
}
