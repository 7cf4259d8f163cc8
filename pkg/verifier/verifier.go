package verifier

import (
	"context"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/pkg/dpop"
)

// Config says whose tokens to accept.
type Config struct {
	// Issuer is Chit's issuer URL; tokens with another `iss` are refused.
	Issuer string
	// Audience is the `aud` tokens must carry (Chit's --audience, "chit").
	Audience string
	// JWKSURL defaults to Issuer + "/.well-known/jwks.json".
	JWKSURL string
	// HTTPClient fetches the key set; defaults to a client with a timeout.
	HTTPClient *http.Client
	// RefreshInterval is how often the key set is refetched in the
	// background (default 5 minutes, the server's Cache-Control).
	RefreshInterval time.Duration
	// MinRefetchInterval rate-limits refetches caused by unknown key ids
	// (default 10 seconds), so forged kids cannot make us hammer the server.
	MinRefetchInterval time.Duration
	// ClockSkew tolerated on token times (default 30 seconds).
	ClockSkew time.Duration
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
	// DPoP, when set, accepts DPoP-bound tokens (cnf.jkt) with proofs
	// checked under this policy and a replay memory of this verifier's own;
	// nil refuses them. See VerifyRequest.
	DPoP *dpop.Config
	// PublicURL is this service's base URL as its clients know it
	// ("https://api.example.com"): a DPoP proof names PublicURL + the path.
	// Required with DPoP.
	PublicURL string
	// ClientCertProxies are the peers ("10.0.0.0/8", "192.0.2.7") trusted
	// to pass, when TLS ends at them, the client certificate they verified
	// in a Client-Cert header (RFC 9440): VerifyRequest then checks a
	// certificate-bound token against it. A certificate is public, so a
	// Client-Cert from any other peer is ignored; the proxies must remove
	// the header their clients send. Empty: only the TLS connection's own
	// certificate counts.
	ClientCertProxies []string
	// Revocations subscribes the verifier to Chit's revocation feed, so
	// that it refuses revoked tokens (see RevocationConfig). Nil: no
	// subscription, tokens are checked on signature and claims alone.
	Revocations *RevocationConfig
}

// Claims are what a valid token says.
type Claims struct {
	Subject   string
	Role      string
	Scopes    []string
	ExpiresAt time.Time
	IssuedAt  time.Time
	ID        string
	// Actor is who acts for Subject when the token came from a token
	// exchange (RFC 8693 §4.1, the act claim): the service that exchanged
	// it, and in Actor.Actor the one before it in a chain. Nil for a token
	// the subject obtained itself (and for an impersonation).
	Actor *Actor
	// Confirmation is what the token is bound to (cnf); VerifyRequest and
	// the interceptors and Middleware enforce it, Verify does not.
	Confirmation Confirmation
	// FamilyID is the login the token belongs to (fid); empty for client
	// credentials.
	FamilyID string
	// ClientID is the client the token was issued to (client_id).
	ClientID string
	// SubjectClientID is, for a token from a token exchange, the client
	// its subject token was issued to (subject_client_id).
	SubjectClientID string
	// issuedAtPrecisely is IssuedAt to the microsecond (iat_us), for
	// comparing with revocations within the same second.
	issuedAtPrecisely time.Time
}

// Actor is one acting party of an act claim.
type Actor struct {
	// Subject is the acting service's subject, service:<client id>.
	Subject string
	// Actor is the party it acted for in turn; nil at the chain's start.
	Actor *Actor
}

// maxActorDepth bounds the act chains Verify reads: Chit issues at most
// four (tokens.MaxActorDepth); a deeper one is refused, not walked.
const maxActorDepth = 4

// parseActor reads an act claim: an object with a string sub and maybe a
// nested act.
func parseActor(raw any, depth int) (*Actor, error) {
	object, ok := raw.(map[string]any)
	if !ok || depth > maxActorDepth {
		return nil, errors.New("act is not a chain of at most 4 objects")
	}
	subject, ok := object["sub"].(string)
	if !ok || subject == "" {
		return nil, errors.New("act has no sub")
	}
	actor := &Actor{Subject: subject}
	if nested, ok := object["act"]; ok {
		var err error
		if actor.Actor, err = parseActor(nested, depth+1); err != nil {
			return nil, err
		}
	}
	return actor, nil
}

// HasScope reports whether the token was granted scope.
func (c Claims) HasScope(scope string) bool { return slices.Contains(c.Scopes, scope) }

// ErrInvalidToken is wrapped by every refusal.
var ErrInvalidToken = errors.New("invalid token")

// Verifier validates Chit access tokens.
type Verifier struct {
	cfg Config

	mu          sync.RWMutex
	keys        jwk.Set
	lastFetch   time.Time
	refetchLock sync.Mutex
	// proofs checks DPoP proofs; nil when Config.DPoP is.
	proofs *dpop.Verifier
	// certProxies are Config.ClientCertProxies, parsed.
	certProxies []netip.Prefix

	// feed is the revocation subscription, nil without one.
	feed *revocationFeed
	stop context.CancelFunc
}

// New fetches the key set once and keeps it fresh until ctx ends.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("verifier: Issuer and Audience are required")
	}
	if cfg.JWKSURL == "" {
		cfg.JWKSURL = strings.TrimSuffix(cfg.Issuer, "/") + "/.well-known/jwks.json"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 5 * time.Minute
	}
	if cfg.MinRefetchInterval <= 0 {
		cfg.MinRefetchInterval = 10 * time.Second
	}
	if cfg.ClockSkew <= 0 {
		cfg.ClockSkew = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ctx, stop := context.WithCancel(ctx)
	v := &Verifier{cfg: cfg, stop: stop}
	var err error
	if v.proofs, err = newProofVerifier(cfg); err != nil {
		stop()
		return nil, err
	}
	if v.certProxies, err = parseProxies(cfg.ClientCertProxies); err != nil {
		stop()
		return nil, err
	}
	if err := v.fetch(ctx); err != nil {
		stop()
		return nil, err
	}
	go v.refreshLoop(ctx)
	if err := v.subscribe(ctx); err != nil {
		stop()
		return nil, err
	}
	return v, nil
}

func (v *Verifier) refreshLoop(ctx context.Context) {
	ticker := time.NewTicker(v.cfg.RefreshInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			_ = v.fetch(ctx) // a failed refresh keeps the keys we have
		}
	}
}

func (v *Verifier) fetch(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return err
	}
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("verifier: fetch key set: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("verifier: fetch key set: HTTP %d", resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		return fmt.Errorf("verifier: parse key set: %w", err)
	}
	v.mu.Lock()
	v.keys, v.lastFetch = set, v.cfg.Now()
	v.mu.Unlock()
	return nil
}

// lookup finds kid, refetching the set once (rate-limited) when it is unknown:
// a key rotated in since our last fetch is then accepted.
func (v *Verifier) lookup(ctx context.Context, kid string) (jwk.Key, bool) {
	v.mu.RLock()
	key, ok := v.keys.LookupKeyID(kid)
	v.mu.RUnlock()
	if ok {
		return key, true
	}
	v.refetchLock.Lock()
	defer v.refetchLock.Unlock()
	v.mu.RLock()
	recent := v.cfg.Now().Sub(v.lastFetch) < v.cfg.MinRefetchInterval
	key, ok = v.keys.LookupKeyID(kid)
	v.mu.RUnlock()
	if ok || recent {
		return key, ok
	}
	if err := v.fetch(ctx); err != nil {
		return nil, false
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.keys.LookupKeyID(kid)
}

// Verify validates token and returns its claims. It does not check what a
// sender-constrained token is bound to (Claims.Confirmation): that takes the
// request, see VerifyRequest.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	if token == "" || len(token) > 8<<10 {
		return Claims{}, fmt.Errorf("%w: missing or oversized", ErrInvalidToken)
	}
	if !oneEncoding(token) {
		return Claims{}, fmt.Errorf("%w: not the token's one encoding (compact, canonical base64url, low-s ES256)", ErrInvalidToken)
	}
	// One variable for what the key provider saw, so that the closure
	// costs one allocation.
	var seen struct {
		typ, kid   string
		keyRemoved bool
	}
	provider := jws.KeyProviderFunc(func(ctx context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
		headers := sig.ProtectedHeaders()
		seen.typ, seen.kid = headers.Type(), headers.KeyID()
		if seen.keyRemoved = v.signingKeyRemoved(seen.kid); seen.keyRemoved {
			return errors.New("signing key removed")
		}
		key, ok := v.lookup(ctx, headers.KeyID())
		if !ok {
			return errors.New("unknown key id")
		}
		if idTokenOnly(key) {
			return errors.New("the key signs ID tokens only, never an access token")
		}
		alg, ok := key.Algorithm().(jwa.SignatureAlgorithm)
		if !ok || alg != headers.Algorithm() {
			return errors.New("token algorithm does not match its key")
		}
		sink.Key(alg, key)
		return nil
	})
	parsed, err := jwt.ParseString(token,
		jwt.WithContext(ctx),
		jwt.WithKeyProvider(provider),
		jwt.WithValidate(true),
		jwt.WithIssuer(v.cfg.Issuer),
		jwt.WithAudience(v.cfg.Audience),
		jwt.WithClock(jwt.ClockFunc(v.cfg.Now)),
		jwt.WithAcceptableSkew(v.cfg.ClockSkew),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.SubjectKey),
	)
	if seen.keyRemoved {
		return Claims{}, revokedError("its signing key was removed")
	}
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	claims := Claims{Subject: parsed.Subject(), ExpiresAt: parsed.Expiration(), IssuedAt: parsed.IssuedAt(), ID: parsed.JwtID()}
	if role, ok := parsed.Get("role"); ok {
		claims.Role, _ = role.(string)
	}
	if !isAccessToken(seen.typ, claims.Role != "") {
		return Claims{}, fmt.Errorf("%w: typ %q is not an access token", ErrInvalidToken, seen.typ)
	}
	if scope, ok := parsed.Get("scope"); ok {
		text, _ := scope.(string)
		claims.Scopes = strings.Fields(text)
	}
	if claims.Confirmation, err = parseConfirmation(parsed); err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if act, ok := parsed.Get("act"); ok {
		if claims.Actor, err = parseActor(act, 1); err != nil {
			return Claims{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
		}
	}
	readRevocationClaims(parsed, &claims)
	if err := v.checkRevocations(&claims, seen.kid); err != nil {
		return Claims{}, err
	}
	return claims, nil
}

// Requirement is what a method demands of a caller's token.
type Requirement struct {
	// Public methods take no token.
	Public bool
	// Scopes must all be granted.
	Scopes []string
	// Roles: the token's role must be one of them (any role when empty).
	Roles []string
}

// ErrForbidden is returned for a valid token that lacks a required scope or
// role.
var ErrForbidden = errors.New("token lacks a required scope or role")

// Authorize verifies token and checks it against req. Like Verify, it does
// not check a sender-constrained token's binding.
func (v *Verifier) Authorize(ctx context.Context, token string, req Requirement) (Claims, error) {
	claims, err := v.Verify(ctx, token)
	if err != nil {
		return Claims{}, err
	}
	if err := meets(claims, req); err != nil {
		return Claims{}, err
	}
	return claims, nil
}

type claimsKey struct{}

// ClaimsFrom returns the verified claims the interceptor or middleware put in
// the context.
func ClaimsFrom(ctx context.Context) (Claims, bool) {
	claims, ok := ctx.Value(claimsKey{}).(Claims)
	return claims, ok
}

// WithClaims returns ctx carrying claims.
func WithClaims(ctx context.Context, claims Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, claims)
}

// isAccessToken is the server's keys.IsAccessTokenType, repeated here so
// that the verifier, which other services import, depends on no part of the
// server; the two must accept the same tokens.
//
// isAccessToken reports whether a token's typ header names an access token
// (at+jwt, RFC 9068): an ID token or another JWT signed with the same keys
// must not pass for one. Chit's access tokens from before they were typed
// (typ JWT) are recognised by their role claim, which ID tokens never carry.
func isAccessToken(typ string, hasRole bool) bool {
	switch strings.ToLower(typ) {
	case "at+jwt", "application/at+jwt":
		return true
	case "jwt", "":
		return hasRole
	}
	return false
}

// idTokenOnlyMember is the server's keys.IDTokenOnlyMember, repeated here
// for the same reason as isAccessToken: Chit publishes, beside the keys of
// its configured algorithm, an RS256 family that signs ID tokens only (OIDC
// Core §15.1), and marks those keys with it.
const idTokenOnlyMember = "chit_id_token_only"

// idTokenOnly reports whether key is marked as signing ID tokens only.
func idTokenOnly(key jwk.Key) bool {
	marked, ok := key.Get(idTokenOnlyMember)
	if !ok {
		return false
	}
	only, isBool := marked.(bool)
	return !isBool || only // a mark that is not false is taken as set
}

var (
	p256Order     = elliptic.P256().Params().N
	p256HalfOrder = new(big.Int).Rsh(p256Order, 1)
)

// oneEncoding accepts a token only in the form Chit signs it: the compact
// serialization with canonical unpadded base64url parts and, for ES256, the
// low-s signature. Any other form of a genuine token (padding, the standard
// alphabet, spare bits, s replaced by n−s) is refused, as CheckToken does.
func oneEncoding(token string) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	decoded := make([][]byte, 3)
	for i, part := range parts {
		raw, err := base64.RawURLEncoding.Strict().DecodeString(part)
		if err != nil || base64.RawURLEncoding.EncodeToString(raw) != part {
			return false
		}
		decoded[i] = raw
	}
	var header struct {
		Alg  string          `json:"alg"`
		Crit json.RawMessage `json:"crit"`
	}
	if json.Unmarshal(decoded[0], &header) != nil || header.Crit != nil {
		return false
	}
	if header.Alg == "ES256" {
		return len(decoded[2]) == 64 && new(big.Int).SetBytes(decoded[2][32:]).Cmp(p256HalfOrder) <= 0
	}
	return true
}
