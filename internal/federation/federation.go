package federation

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/tokens"
)

// RulesRefresh is how often a Service rereads the rules: one created or
// deleted through another replica is followed here within it, through this
// one at once. Exchanges read no rule from the store: the rules, a handful
// an admin wrote, are held in memory whole.
const RulesRefresh = 10 * time.Second

// Config is the federation's own setting.
type Config struct {
	// ClockSkew is how far an assertion's times may be off: the server's
	// (tokens.Config.ClockSkew, --clock-skew), so that one setting says how
	// much the server trusts clocks.
	ClockSkew time.Duration
	// FetchTimeout bounds each fetch of a discovery document or JWKS; zero
	// is the package's FetchTimeout.
	FetchTimeout time.Duration
}

// Store is what federation persists.
type Store interface {
	storage.FederationRules
	storage.AssertionReplays
}

// Dependencies are the federation's live collaborators.
type Dependencies struct {
	Store     Store
	Directory *accounts.Directory
	// Tokens issues the service account's access token. Nil in a process
	// that only manages rules (chitd's commands).
	Tokens *tokens.Service
	// HTTPClient fetches issuers' discovery documents and keys; nil is a
	// default client. Redirects are refused whatever it says.
	HTTPClient *http.Client
	Now        func() time.Time
	// Logger receives the audit lines of exchanges and refusals.
	Logger *slog.Logger
}

// Service manages federation rules and exchanges assertions under them.
type Service struct {
	cfg Config
	Dependencies
	snapshot atomic.Pointer[ruleSet]
	loading  sync.Mutex
	// changes counts this replica's rule writes: a load that began before
	// one is not kept, so a write here is followed at once.
	changes atomic.Uint64
	// sources are the fetched issuers' keys, kept across reloads of the
	// rules so that a reload costs no fetch.
	sourcesMu sync.Mutex
	sources   map[string]*remoteKeys
	// verified are assertions whose signature verified, presented again.
	verified verifiedAssertions
}

// New returns the federation over deps.
func New(cfg Config, deps Dependencies) *Service {
	cfg.ClockSkew = max(cfg.ClockSkew, 0)
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = FetchTimeout
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	deps.HTTPClient = noRedirects(deps.HTTPClient)
	return &Service{cfg: cfg, Dependencies: deps, sources: map[string]*remoteKeys{}}
}

// CreateRule checks rule, fills its defaults and stores it.
func (s *Service) CreateRule(ctx context.Context, rule storage.FederationRule) (storage.FederationRule, error) {
	rule, err := validateRule(rule)
	if err != nil {
		return rule, err
	}
	if _, err := s.Directory.GetServiceAccount(ctx, rule.ServiceAccount); err != nil {
		return rule, err
	}
	rule.CreatedAt = s.Now()
	err = s.Store.CreateFederationRule(ctx, rule)
	if errors.Is(err, storage.ErrAlreadyExists) {
		return rule, chiterr.New(chiterr.AlreadyExists, "federation rule %q exists", rule.Name)
	}
	if err != nil {
		return rule, err
	}
	s.forgetRules()
	return rule, nil
}

// GetRule returns the rule name.
func (s *Service) GetRule(ctx context.Context, name string) (storage.FederationRule, error) {
	rule, err := s.Store.GetFederationRule(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return rule, chiterr.New(chiterr.NotFound, "federation rule %q does not exist", name)
	}
	return rule, err
}

// ListRules returns the rules of page, by name.
func (s *Service) ListRules(ctx context.Context, page storage.Page) ([]storage.FederationRule, error) {
	return s.Store.ListFederationRules(ctx, page)
}

// DeleteRule removes the rule name; this replica stops exchanging under it
// at once, the others within RulesRefresh.
func (s *Service) DeleteRule(ctx context.Context, name string) error {
	err := s.Store.DeleteFederationRule(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return chiterr.New(chiterr.NotFound, "federation rule %q does not exist", name)
	}
	if err != nil {
		return err
	}
	s.forgetRules()
	return nil
}

func (s *Service) forgetRules() {
	s.changes.Add(1)
	s.snapshot.Store(nil)
}

// DeleteExpiredAssertions forgets the single-use assertions that can no
// longer be presented (the maintenance sweep).
func (s *Service) DeleteExpiredAssertions(ctx context.Context, now time.Time) (int, error) {
	return s.Store.DeleteExpiredAssertions(ctx, now)
}

// ruleSet is every rule, by issuer, as read at loadedAt.
type ruleSet struct {
	byIssuer map[string][]compiledRule
	loadedAt time.Time
}

type compiledRule struct {
	storage.FederationRule
	keys keySource
}

// rules returns the rules, rereading them when older than RulesRefresh.
// When a reread fails the rules held go on being used, so an unreachable
// store does not stop exchanges that need no other write.
func (s *Service) rules(ctx context.Context) (*ruleSet, error) {
	now := s.Now()
	if set := s.snapshot.Load(); set != nil && now.Sub(set.loadedAt) < RulesRefresh {
		return set, nil
	}
	s.loading.Lock()
	defer s.loading.Unlock()
	held := s.snapshot.Load()
	if held != nil && now.Sub(held.loadedAt) < RulesRefresh {
		return held, nil
	}
	changes := s.changes.Load()
	set, err := s.load(ctx, now)
	if err != nil {
		if held != nil {
			s.Logger.WarnContext(ctx, "rereading the federation rules failed; using those held", "error", err)
			return held, nil
		}
		return nil, err
	}
	if s.changes.Load() == changes {
		s.snapshot.Store(set)
	}
	return set, nil
}

func (s *Service) load(ctx context.Context, now time.Time) (*ruleSet, error) {
	set := &ruleSet{byIssuer: map[string][]compiledRule{}, loadedAt: now}
	for after := ""; ; {
		page, err := s.Store.ListFederationRules(ctx, storage.Page{After: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		for _, rule := range page {
			compiled := compiledRule{FederationRule: rule}
			if rule.JWKS != "" {
				keys, err := parseInlineKeys(rule.JWKS)
				if err != nil {
					// Checked at creation; a rule that no longer parses is
					// skipped, not the whole set.
					s.Logger.WarnContext(ctx, "federation rule has unreadable keys; skipped", "rule", rule.Name)
					continue
				}
				compiled.keys = inlineKeys{keys}
			} else {
				compiled.keys = s.remote(rule.Issuer, rule.JWKSURI)
			}
			set.byIssuer[rule.Issuer] = append(set.byIssuer[rule.Issuer], compiled)
		}
		if len(page) < 1000 {
			return set, nil
		}
		after = page[len(page)-1].Name
	}
}

// remote returns the one key source of issuer at jwksURI ("" for its
// discovery document's).
func (s *Service) remote(issuer, jwksURI string) *remoteKeys {
	key := issuer + " " + jwksURI
	s.sourcesMu.Lock()
	defer s.sourcesMu.Unlock()
	source, ok := s.sources[key]
	if !ok {
		source = &remoteKeys{issuer: issuer, jwksURI: jwksURI, client: s.HTTPClient, timeout: s.cfg.FetchTimeout, now: s.Now}
		s.sources[key] = source
	}
	return source
}
