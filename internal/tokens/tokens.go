package tokens

import (
	"io"
	"log/slog"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/secrets"
)

// Config is the token policy. server.Config.Validate checks it (and chitd its
// own stricter bounds) before it gets here.
type Config struct {
	// Issuer is the `iss` of every token.
	Issuer string
	// Audience is the `aud` of every access token.
	Audience string
	// AccessTokenTTL is how long an access token is valid.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is the absolute lifetime of a login: rotation does not
	// extend it.
	RefreshTokenTTL time.Duration
	// ClockSkew is how far a token's times may be off when it is checked.
	ClockSkew time.Duration
	// RefreshIdleTimeout ends a login whose refresh token is not used for
	// this long (never after RefreshTokenTTL). Zero means RefreshTokenTTL.
	RefreshIdleTimeout time.Duration
	// RefreshGracePeriod is how long after a rotation the rotated token may be
	// presented again and get the same successor, instead of counting as
	// reuse. Zero disables it.
	RefreshGracePeriod time.Duration
	// RevocationCacheTTL bounds how long a revocation may go unseen by Check.
	RevocationCacheTTL time.Duration
}

// Defaults, documented in the README's configuration table.
const (
	DefaultAccessTokenTTL  = 15 * time.Minute
	DefaultRefreshTokenTTL = 30 * 24 * time.Hour
	DefaultAudience        = "chit"
	DefaultClockSkew       = 30 * time.Second
	DefaultRefreshIdle     = 7 * 24 * time.Hour
	DefaultRefreshGrace    = 10 * time.Second
	DefaultRevocationCache = 3 * time.Second
)

// RefreshTokenPrefix marks Chit refresh tokens for secret scanners.
const RefreshTokenPrefix = "chit_rt_"

// MaxTokenLength bounds what Check will parse; Chit's own tokens are far
// shorter, and parsing huge input is work an attacker should not buy.
const MaxTokenLength = secrets.MaxTokenLength

// FamilyClaim is the access token claim naming its refresh family.
const FamilyClaim = "fid"

// SubjectClientClaim names, in a token issued by token exchange, the client
// its subject token was issued to (the first of a chain's): the client_id
// is the exchanging service, so without it ending or narrowing the client
// the subject signed in through would not refuse the exchanged token.
const SubjectClientClaim = "subject_client_id"

// TokenType is the OAuth token type of access tokens.
const TokenType = "Bearer"

// Grant is the result of a successful exchange.
type Grant struct {
	AccessToken string
	// RefreshToken is empty when the grant includes none (client credentials).
	RefreshToken string
	ExpiresIn    time.Duration
	Scope        string
	// IDToken is an OIDC ID token, only for sign-ins that asked for openid.
	IDToken string
	// IssuedTokenType is what a token exchange issued (RFC 8693 §2.2.1,
	// AccessTokenType); "" for other grants.
	IssuedTokenType string
	// TokenType is the access token's token_type: Bearer, or DPoP for a
	// token bound to a DPoP key.
	TokenType string
}

// ClientIDClaim names the OAuth client a token was issued to (RFC 9068 §2.2).
const ClientIDClaim = "client_id"

// Service issues, refreshes and checks tokens.
type Service struct {
	cfg Config
	Dependencies
	revocations  *revocationCache
	verified     *verifiedCache
	providerKeys *providerKeyCache
}

// Dependencies are the live collaborators of the core.
type Dependencies struct {
	Keys *keys.Set
	// RefreshKeys make and check the MACs of refresh tokens.
	RefreshKeys *keys.RefreshTokenKeys
	// ProviderKeys finds provider keys: CheckToken accepts provider tokens,
	// but they never authorize calls to Chit itself. May be nil.
	ProviderKeys keys.KeyLookup
	Store        Store
	Directory    *accounts.Directory
	Now          func() time.Time
	Random       io.Reader
	// Logger receives security events (refresh token reuse, revocations).
	Logger *slog.Logger
	// Events counts what the core does, for metrics. May be nil.
	Events Events
}

// Events receives counts of what the core did.
type Events interface {
	TokenIssued(kind string)
	RefreshReuseDetected()
}

type noEvents struct{}

func (noEvents) TokenIssued(string)    {}
func (noEvents) RefreshReuseDetected() {}

// NewService wires the core. now and random are injected so expiry and
// rotation can be tested without sleeping.
func NewService(cfg Config, deps Dependencies) *Service {
	if cfg.RefreshIdleTimeout <= 0 || cfg.RefreshIdleTimeout > cfg.RefreshTokenTTL {
		cfg.RefreshIdleTimeout = cfg.RefreshTokenTTL
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Events == nil {
		deps.Events = noEvents{}
	}
	return &Service{
		cfg: cfg, Dependencies: deps, verified: &verifiedCache{},
		revocations:  newRevocationCache(cfg.RevocationCacheTTL, deps.Store, deps.Now),
		providerKeys: &providerKeyCache{ttl: cfg.RevocationCacheTTL, now: deps.Now},
	}
}

// ForgetProviderKeys drops the provider keys the service remembers: call it
// when one was replaced or removed on this server, so the tokens it signed
// are refused at once here (other replicas re-read within the revocation
// cache time).
func (s *Service) ForgetProviderKeys() { s.providerKeys.forgetAll() }

// Config returns the policy the service runs with.
func (s *Service) Config() Config { return s.cfg }

func (s *Service) randomString(n int) (string, error) { return secrets.Random(s.Random, n) }
