package providers

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/sqlite"
	"github.com/chit-auth/chit/internal/storage/sqlite/sqlitetest"
)

type clock struct{ nanos atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.nanos.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.nanos.Add(int64(d)) }

func newService(t *testing.T) (*Service, *clock) {
	t.Helper()
	return newServiceCounting(t, nil)
}

// issuedCounts records Events.
type issuedCounts map[string]int

func (c issuedCounts) TokenIssued(kind string) { c[kind]++ }

func newServiceCounting(t *testing.T, events Events) (*Service, *clock) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), sqlitetest.Dir(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	c := &clock{}
	c.nanos.Store(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).UnixNano())
	// The service the tests call as, registered before any provider.
	if err := store.CreateServiceAccount(context.Background(), storage.ServiceAccount{ClientID: "ucloud", SecretHash: []byte("h"), CreatedAt: c.Now()}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Issuer: "https://chit.test", Audience: "chit", AccessTokenTTL: 15 * time.Minute, ClaimTTL: 24 * time.Hour}
	return NewService(cfg, Dependencies{Store: store, Sealer: &keys.Sealer{}, Now: c.Now, Random: rand.Reader, Events: events}), c
}

func wantError(t *testing.T, err error, kind chiterr.Kind, fragment string) {
	t.Helper()
	if err == nil || chiterr.KindOf(err) != kind || !strings.Contains(err.Error(), fragment) {
		t.Fatalf("got %v, want %v mentioning %q", err, kind, fragment)
	}
}

func TestBulkErrorsNameTheItem(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t)
	if _, err := s.Register(ctx, Caller{ServiceID: "ucloud"}, []string{"taken"}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Register(ctx, Caller{ServiceID: "ucloud"}, []string{"fresh", "taken"})
	wantError(t, err, chiterr.AlreadyExists, "item 1")
	_, err = s.Register(ctx, Caller{ServiceID: "ucloud"}, []string{"ok", "not ok"})
	wantError(t, err, chiterr.InvalidArgument, "item 1")
	_, err = s.Renew(ctx, Caller{ServiceID: "ucloud"}, []string{"taken", "ghost"})
	wantError(t, err, chiterr.NotFound, "item 1")
	_, err = s.Renew(ctx, Caller{ServiceID: "ucloud"}, []string{"taken", "x", "taken"})
	wantError(t, err, chiterr.InvalidArgument, "items 0 and 2")
	// Every bulk call refuses an item named twice, naming both indexes.
	claimTokens, err := s.Register(ctx, Caller{ServiceID: "ucloud"}, []string{"twice"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Claim(ctx, []string{claimTokens[0], claimTokens[0]})
	wantError(t, err, chiterr.InvalidArgument, "items 0 and 1")
	_, err = s.Register(ctx, Caller{ServiceID: "ucloud"}, []string{"a", "b", "a"})
	wantError(t, err, chiterr.InvalidArgument, "items 0 and 2")
	_, err = s.Refresh(ctx, []string{"r", "r"})
	wantError(t, err, chiterr.InvalidArgument, "items 0 and 1")
	_, err = s.RefreshAsOrchestrator(ctx, "ucloud", []string{"taken", "taken"})
	wantError(t, err, chiterr.InvalidArgument, "items 0 and 1")
	_, err = s.Refresh(ctx, []string{"unknown"})
	wantError(t, err, chiterr.Unauthenticated, "item 0")
	_, err = s.Register(ctx, Caller{ServiceID: "ucloud"}, nil)
	wantError(t, err, chiterr.InvalidArgument, "1 to 1000")
}

func TestClaimExpires(t *testing.T) {
	ctx := context.Background()
	s, c := newService(t)
	claimTokens, err := s.Register(ctx, Caller{ServiceID: "ucloud"}, []string{"late"})
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(24 * time.Hour)
	_, err = s.Claim(ctx, claimTokens)
	wantError(t, err, chiterr.NotFound, "expired")
}

func TestClaimRetryAnswersTheSameUntilExpiry(t *testing.T) {
	ctx := context.Background()
	s, c := newService(t)
	claimTokens, err := s.Register(ctx, Caller{ServiceID: "ucloud"}, []string{"site"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Claim(ctx, claimTokens)
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(23 * time.Hour)
	again, err := s.Claim(ctx, claimTokens)
	if err != nil || again[0] != first[0] {
		t.Fatalf("retry = %+v, %v; want %+v", again, err, first)
	}
	c.Advance(time.Hour)
	_, err = s.Claim(ctx, claimTokens)
	wantError(t, err, chiterr.NotFound, "expired")
}

// Concurrent first claims of one provider all get the winner's answer.
func TestConcurrentClaimsAgree(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t)
	claimTokens, err := s.Register(ctx, Caller{ServiceID: "ucloud"}, []string{"busy"})
	if err != nil {
		t.Fatal(err)
	}
	answers := make([]Credentials, 4)
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.Claim(ctx, claimTokens)
			errs[i] = err
			if err == nil {
				answers[i] = got[0]
			}
		}()
	}
	wg.Wait()
	for i := range answers {
		if errs[i] != nil || answers[i] != answers[0] {
			t.Fatalf("claim %d = %+v, %v; want %+v", i, answers[i], errs[i], answers[0])
		}
	}
}

func TestRefreshAsOrchestratorNeedsAClaimedProvider(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t)
	if _, err := s.Register(ctx, Caller{ServiceID: "ucloud"}, []string{"unclaimed"}); err != nil {
		t.Fatal(err)
	}
	_, err := s.RefreshAsOrchestrator(ctx, "ucloud", []string{"unclaimed"})
	wantError(t, err, chiterr.FailedPrecondition, "item 0")
	_, err = s.RefreshAsOrchestrator(ctx, "ucloud", []string{"missing"})
	wantError(t, err, chiterr.NotFound, "item 0")
}

func TestIssuedTokensAreCountedByKind(t *testing.T) {
	ctx := context.Background()
	counts := issuedCounts{}
	s, _ := newServiceCounting(t, counts)
	claimTokens, err := s.Register(ctx, Caller{ServiceID: "ucloud"}, []string{"p1", "p2"})
	if err != nil {
		t.Fatal(err)
	}
	credentials, err := s.Claim(ctx, claimTokens)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Refresh(ctx, []string{credentials[0].RefreshToken, credentials[1].RefreshToken}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RefreshAsOrchestrator(ctx, "ucloud", []string{"p1"}); err != nil {
		t.Fatal(err)
	}
	// A refused bulk request issues nothing, so counts nothing.
	if _, err := s.Refresh(ctx, []string{credentials[0].RefreshToken, "not-a-token"}); err == nil {
		t.Fatal("refresh with an invalid token succeeded")
	}
	want := issuedCounts{KindProvider: 2, KindOrchestrator: 1}
	if len(counts) != len(want) || counts[KindProvider] != want[KindProvider] || counts[KindOrchestrator] != want[KindOrchestrator] {
		t.Fatalf("counted %v, want %v", counts, want)
	}
}

// unreachableStore answers the reads of a renewal and of a refresh as
// orchestrator as a store that cannot be reached does.
type unreachableStore struct{ Store }

var errUnreachable = storage.Unavailable(errors.New("connection refused"))

func (unreachableStore) GetServiceAccount(context.Context, string) (storage.ServiceAccount, error) {
	return storage.ServiceAccount{}, errUnreachable
}

func (unreachableStore) GetProvider(context.Context, string) (storage.Provider, error) {
	return storage.Provider{}, errUnreachable
}

// A store that cannot be reached is "try again shortly", with its retry
// hint: not a refusal of the caller, nor the fault of an item.
func TestUnreachableStoreIsNotTheCallersFault(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t)
	s.store = unreachableStore{s.store}
	for name, call := range map[string]func() error{
		"Renew":                 func() error { _, err := s.Renew(ctx, Caller{ServiceID: "ucloud"}, []string{"p1"}); return err },
		"RefreshAsOrchestrator": func() error { _, err := s.RefreshAsOrchestrator(ctx, "ucloud", []string{"p1"}); return err },
	} {
		err := call()
		if chiterr.KindOf(err) != chiterr.Unavailable || chiterr.RetryAfter(err) != storage.UnavailableRetryAfter {
			t.Errorf("%s: %v (kind %v), want unavailable with its retry hint", name, err, chiterr.KindOf(err))
		}
	}
}
