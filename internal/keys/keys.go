package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/storage"
)

// Supported signing algorithms.
var supported = map[jwa.SignatureAlgorithm]bool{jwa.ES256: true, jwa.EdDSA: true, jwa.RS256: true}

// ParseAlgorithm returns the signing algorithm named by name, if supported.
func ParseAlgorithm(name string) (jwa.SignatureAlgorithm, error) {
	alg := jwa.SignatureAlgorithm(name)
	if !supported[alg] {
		return "", fmt.Errorf("unsupported signing algorithm %q (want ES256, EdDSA or RS256)", name)
	}
	return alg, nil
}

// SigningKeyStore is what the signing keys need of storage.
type SigningKeyStore interface {
	storage.SigningKeys
}

// RequiredIDTokenAlgorithm is the algorithm every OpenID Provider must be
// able to sign ID tokens with (OIDC Core §15.1): a server configured with
// another keeps an RS256 family beside it for the clients that ask for it
// (id_token_signed_response_alg).
const RequiredIDTokenAlgorithm = jwa.RS256

// Families are the algorithms whose key families a server configured with
// primary keeps: primary, which signs everything by default, and RS256,
// which signs only the ID tokens of clients registered for it.
func Families(primary jwa.SignatureAlgorithm) []jwa.SignatureAlgorithm {
	if primary == RequiredIDTokenAlgorithm {
		return []jwa.SignatureAlgorithm{primary}
	}
	return []jwa.SignatureAlgorithm{primary, RequiredIDTokenAlgorithm}
}

// FamilyNames are the names of Families(primary), sorted: the algorithms a
// server configured with primary signs ID tokens with, known without
// loading its keys.
func FamilyNames(primary jwa.SignatureAlgorithm) []string {
	var names []string
	for _, alg := range Families(primary) {
		names = append(names, alg.String())
	}
	slices.Sort(names)
	return names
}

// IDTokenOnlyMember marks, in the published key set, the keys of a family
// that signs ID tokens only (the RS256 family beside another configured
// algorithm). Members a verifier does not know are ignored (RFC 7517 §4);
// Chit's own verifiers (CheckToken, pkg/verifier) refuse an access token
// under such a key, so a key published for ID tokens never passes for an
// access token signer.
const IDTokenOnlyMember = "chit_id_token_only"

// Set is the server's signing keys: the primary family's active key signs
// access tokens and, by default, ID tokens; the RS256 family's active key
// signs the ID tokens of clients registered for RS256. The next, active and
// retired keys of every family are published.
type Set struct {
	store   SigningKeyStore
	sealer  *Sealer
	primary jwa.SignatureAlgorithm

	mu sync.RWMutex
	// signers holds each family's active key.
	signers map[jwa.SignatureAlgorithm]jwk.Key
	// activeSince is when each family's signing key became active.
	activeSince map[jwa.SignatureAlgorithm]time.Time
	// accessVerifiers maps kid to the public keys that may have signed an
	// access token: every published key but those of an ID-token-only
	// family. Each key carries its algorithm.
	accessVerifiers map[string]jwk.Key
	// idTokenVerifiers maps kid to every published public key: an ID
	// token may be signed by any family.
	idTokenVerifiers map[string]jwk.Key
	jwks             []byte

	// missMu and lastMissReload rate-limit the reloads an unknown kid
	// causes (LookupContext).
	missMu         sync.Mutex
	lastMissReload time.Time
}

// Load reads the signing keys from store, first creating what is missing:
// an active key and a next key in each of the Families of alg. A family of
// an algorithm no longer configured is retired: its keys stay published
// until the tokens they signed have expired, and sign nothing more.
func Load(ctx context.Context, store SigningKeyStore, alg jwa.SignatureAlgorithm, sealer *Sealer, now time.Time) (*Set, error) {
	if err := ensureKeys(ctx, store, alg, sealer, now); err != nil {
		return nil, err
	}
	set := &Set{store: store, sealer: sealer, primary: alg}
	if err := set.Reload(ctx); err != nil {
		return nil, err
	}
	return set, nil
}

func ensureKeys(ctx context.Context, store SigningKeyStore, primary jwa.SignatureAlgorithm, sealer *Sealer, now time.Time) error {
	stored, err := store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("list signing keys: %w", err)
	}
	families := Families(primary)
	hasActive, hasNext, live := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, key := range stored {
		// Never store a clear key beside encrypted ones (Rotate refuses the
		// same): a start without the key encryption key fails anyway.
		if IsSealed(key.PrivateKey) && !sealer.Encrypts() {
			return ErrNoEncryptionKey
		}
		hasActive[key.Algorithm] = hasActive[key.Algorithm] || key.State == storage.KeyActive
		hasNext[key.Algorithm] = hasNext[key.Algorithm] || key.State == storage.KeyNext
		live[key.Algorithm] = hasActive[key.Algorithm] || hasNext[key.Algorithm]
	}
	for _, alg := range families {
		if !hasActive[alg.String()] {
			key, err := newSealedKey(alg, sealer, now)
			if err != nil {
				return err
			}
			key.State, key.ActivatedAt = storage.KeyActive, now
			// Two processes starting on an empty store may both get here:
			// the store keeps one active key per algorithm, and the other
			// process reads it below.
			if err := store.CreateSigningKey(ctx, key); err != nil && !errors.Is(err, storage.ErrAlreadyExists) {
				return fmt.Errorf("store %s signing key: %w", alg, err)
			}
		}
		if !hasNext[alg.String()] {
			key, err := newSealedKey(alg, sealer, now)
			if err != nil {
				return err
			}
			if err := store.RotateSigningKeys(ctx, "", key, now); err != nil && !errors.Is(err, storage.ErrConflict) {
				return fmt.Errorf("store next %s signing key: %w", alg, err)
			}
		}
	}
	for name := range live {
		if !slices.Contains(families, jwa.SignatureAlgorithm(name)) {
			if _, err := store.RetireSigningKeyFamily(ctx, name, now); err != nil {
				return fmt.Errorf("retire the %s signing keys: %w", name, err)
			}
		}
	}
	return nil
}

func newSealedKey(alg jwa.SignatureAlgorithm, sealer *Sealer, now time.Time) (storage.SigningKey, error) {
	key, err := Generate(alg, now)
	if err != nil {
		return storage.SigningKey{}, err
	}
	if key.PrivateKey, err = sealer.Seal(key.PrivateKey); err != nil {
		return storage.SigningKey{}, fmt.Errorf("encrypt signing key: %w", err)
	}
	return key, nil
}

// idTokenOnly reports whether keys of algorithm sign ID tokens only on a
// server whose primary algorithm is primary.
func idTokenOnly(algorithm string, primary jwa.SignatureAlgorithm) bool {
	return algorithm == RequiredIDTokenAlgorithm.String() && primary != RequiredIDTokenAlgorithm
}

// Reload re-reads the keys from the store, picking up rotations made by
// another process or replica.
func (s *Set) Reload(ctx context.Context) error {
	stored, err := s.store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("list signing keys: %w", err)
	}
	accessVerifiers := make(map[string]jwk.Key, len(stored))
	idTokenVerifiers := make(map[string]jwk.Key, len(stored))
	public := jwk.NewSet()
	active := map[jwa.SignatureAlgorithm]storage.SigningKey{}
	families := Families(s.primary)
	for _, record := range stored {
		pub, err := jwk.ParseKey(record.PublicKey)
		if err != nil {
			return fmt.Errorf("parse public key %s: %w", record.ID, err)
		}
		published := pub
		if idTokenOnly(record.Algorithm, s.primary) {
			if published, err = jwk.ParseKey(record.PublicKey); err != nil {
				return err
			}
			if err := published.Set(IDTokenOnlyMember, true); err != nil {
				return err
			}
		} else {
			accessVerifiers[record.ID] = pub
		}
		idTokenVerifiers[record.ID] = pub
		if err := public.AddKey(published); err != nil {
			return err
		}
		alg := jwa.SignatureAlgorithm(record.Algorithm)
		if record.State == storage.KeyActive && slices.Contains(families, alg) {
			active[alg] = record
		}
	}
	if _, ok := active[s.primary]; !ok {
		return fmt.Errorf("no active %s signing key in the store", s.primary)
	}
	signers := make(map[jwa.SignatureAlgorithm]jwk.Key, len(active))
	activeSince := make(map[jwa.SignatureAlgorithm]time.Time, len(active))
	for alg, record := range active {
		private, err := s.sealer.Open(record.PrivateKey)
		if err != nil {
			return fmt.Errorf("signing key %s: %w", record.ID, err)
		}
		signer, err := jwk.ParseKey(private)
		if err != nil {
			return fmt.Errorf("parse signing key %s: %w", record.ID, err)
		}
		signers[alg], activeSince[alg] = signer, record.ActivatedAt
	}
	jwks, err := json.Marshal(public)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signers, s.activeSince, s.accessVerifiers, s.idTokenVerifiers, s.jwks = signers, activeSince, accessVerifiers, idTokenVerifiers, jwks
	return nil
}

// ActiveSince is when the primary family's signing key became active.
func (s *Set) ActiveSince() time.Time { return s.FamilyActiveSince(s.primary) }

// FamilyActiveSince is when the signing key of alg's family became active
// (zero when this server has no such family).
func (s *Set) FamilyActiveSince(alg jwa.SignatureAlgorithm) time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.activeSince[alg]
}

// ErrNoNextKey: a rotation needs the next key that a running server
// publishes ahead of its use.
var ErrNoNextKey = errors.New("there is no next signing key to activate; start chitd once to create it")

// ErrNextTooYoung refuses a rotation that would start signing with a key
// verifiers may not have fetched yet.
var ErrNextTooYoung = errors.New("the next signing key was published too recently; verifiers that cache the key set may not know it yet")

// Rotate rotates every family of a server configured with alg (Families):
// in each, the next key becomes active, the active one is retired and a new
// next key is published. Unless force is set, it refuses, before rotating
// any, while a next key is younger than minPublished. Of concurrent
// rotations of a family, one wins and the others get storage.ErrConflict.
func Rotate(ctx context.Context, store SigningKeyStore, alg jwa.SignatureAlgorithm, sealer *Sealer, now time.Time, minPublished time.Duration, force bool) error {
	return rotateFamilies(ctx, store, Families(alg), sealer, now, minPublished, force)
}

// RotateFamily rotates the family of alg alone, as Rotate does.
func RotateFamily(ctx context.Context, store SigningKeyStore, alg jwa.SignatureAlgorithm, sealer *Sealer, now time.Time, minPublished time.Duration, force bool) error {
	return rotateFamilies(ctx, store, []jwa.SignatureAlgorithm{alg}, sealer, now, minPublished, force)
}

func rotateFamilies(ctx context.Context, store SigningKeyStore, families []jwa.SignatureAlgorithm, sealer *Sealer, now time.Time, minPublished time.Duration, force bool) error {
	stored, err := store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("list signing keys: %w", err)
	}
	next := map[string]storage.SigningKey{}
	for _, key := range stored {
		if key.State == storage.KeyNext {
			next[key.Algorithm] = key
		}
		// Never store a clear key beside encrypted ones.
		if IsSealed(key.PrivateKey) && !sealer.Encrypts() {
			return ErrNoEncryptionKey
		}
	}
	for _, alg := range families {
		key, ok := next[alg.String()]
		if !ok {
			return fmt.Errorf("%s: %w", alg, ErrNoNextKey)
		}
		if !force && now.Sub(key.CreatedAt) < minPublished {
			return fmt.Errorf("%s: %w", alg, ErrNextTooYoung)
		}
	}
	for _, alg := range families {
		key, err := newSealedKey(alg, sealer, now)
		if err != nil {
			return err
		}
		if err := store.RotateSigningKeys(ctx, next[alg.String()].ID, key, now); err != nil {
			return fmt.Errorf("rotate the %s keys: %w", alg, err)
		}
	}
	return nil
}

// rsaKeyBits is the size of RS256 keys. 2048 bits (112-bit security) is
// what NIST SP 800-57 accepts through 2030 and what the OpenID Providers
// relying parties meet every day publish; a key lives one rotation period
// plus its publication, not years, so 3072 bits' longer horizon buys little,
// while it costs about three times the signing time on every ID token and
// several times the generation time at each rotation and first start.
const rsaKeyBits = 2048

// Generate makes a new signing key record for alg.
func Generate(alg jwa.SignatureAlgorithm, now time.Time) (storage.SigningKey, error) {
	var raw crypto.Signer
	var err error
	switch alg {
	case jwa.ES256:
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jwa.EdDSA:
		_, raw, err = ed25519.GenerateKey(rand.Reader)
	case jwa.RS256:
		raw, err = rsa.GenerateKey(rand.Reader, rsaKeyBits)
	default:
		return storage.SigningKey{}, fmt.Errorf("unsupported signing algorithm %q", alg)
	}
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("generate %s key: %w", alg, err)
	}
	private, err := jwk.FromRaw(raw)
	if err != nil {
		return storage.SigningKey{}, err
	}
	thumbprint, err := private.Thumbprint(crypto.SHA256)
	if err != nil {
		return storage.SigningKey{}, err
	}
	kid := base64.RawURLEncoding.EncodeToString(thumbprint)
	for name, value := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: alg, jwk.KeyUsageKey: jwk.ForSignature} {
		if err := private.Set(name, value); err != nil {
			return storage.SigningKey{}, err
		}
	}
	public, err := private.PublicKey()
	if err != nil {
		return storage.SigningKey{}, err
	}
	privateJSON, err := json.Marshal(private)
	if err != nil {
		return storage.SigningKey{}, err
	}
	publicJSON, err := json.Marshal(public)
	if err != nil {
		return storage.SigningKey{}, err
	}
	return storage.SigningKey{ID: kid, Algorithm: alg.String(), PrivateKey: privateJSON, PublicKey: publicJSON, CreatedAt: now}, nil
}

// Sign serializes token as a JWS signed by the primary family's active
// key, with its kid in the header.
func (s *Set) Sign(token jwt.Token) (string, error) { return s.SignAs(token, "") }

// SignAs signs token with the primary family's active key, with typ as its
// `typ` header (jwx's default, JWT, when empty): access tokens are at+jwt
// (RFC 9068), so that no other signed JWT, an ID token say, passes for one.
func (s *Set) SignAs(token jwt.Token, typ string) (string, error) {
	s.mu.RLock()
	signer := s.signers[s.primary]
	s.mu.RUnlock()
	return sign(signer, token, typ)
}

// SignBuilt signs the token build makes with the active key of alg's
// family (the primary family when alg is empty or names no family of this
// server), for the algorithm of the key that signs it: claims that depend on
// the algorithm (an ID token's at_hash, OIDC Core §3.1.3.6) are computed for
// the very key that signs, even when a rotation is picked up meanwhile.
func (s *Set) SignBuilt(alg jwa.SignatureAlgorithm, build func(alg jwa.SignatureAlgorithm) (jwt.Token, error)) (string, error) {
	s.mu.RLock()
	signer, ok := s.signers[alg]
	if !ok {
		signer = s.signers[s.primary]
	}
	s.mu.RUnlock()
	signerAlg, _ := signer.Algorithm().(jwa.SignatureAlgorithm)
	token, err := build(signerAlg)
	if err != nil {
		return "", err
	}
	return sign(signer, token, "")
}

func sign(signer jwk.Key, token jwt.Token, typ string) (string, error) {
	var options []jwt.Option
	if typ != "" {
		headers := jws.NewHeaders()
		if err := headers.Set(jws.TypeKey, typ); err != nil {
			return "", err
		}
		options = append(options, jws.WithProtectedHeaders(headers))
	}
	signed, err := jwt.Sign(token, jwt.WithKey(signer.Algorithm(), signer, options...))
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	alg, _ := signer.Algorithm().(jwa.SignatureAlgorithm)
	if signed, err = NormalizeLowS(signed, alg); err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return string(signed), nil
}

// Algorithm is the primary family's algorithm, which signs access tokens.
func (s *Set) Algorithm() jwa.SignatureAlgorithm { return s.primary }

// IDTokenAlgorithms lists the algorithms ID tokens can be signed with: the
// families that have an active key, sorted.
func (s *Set) IDTokenAlgorithms() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	algorithms := make([]string, 0, len(s.signers))
	for alg := range s.signers {
		algorithms = append(algorithms, alg.String())
	}
	slices.Sort(algorithms)
	return algorithms
}

// SignsIDTokensWith reports whether the server can sign ID tokens with alg.
func (s *Set) SignsIDTokensWith(alg string) bool {
	return slices.Contains(s.IDTokenAlgorithms(), alg)
}

// Lookup returns the public key named kid if it may have signed an access
// token: a key of an ID-token-only family is not found. The key carries its
// algorithm: a token whose header names another algorithm must be refused.
func (s *Set) Lookup(kid string) (jwk.Key, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	key, ok := s.accessVerifiers[kid]
	return key, ok
}

// JWKS returns the public keys as a JSON Web Key Set document (RFC 7517).
func (s *Set) JWKS() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.jwks
}

// ErrUnknownKey is returned for a token whose kid names no published key.
var ErrUnknownKey = errors.New("keys: unknown key id")

// ErrAlgorithmMismatch is returned for a token whose header alg differs from
// the algorithm of the key its kid names (the classic alg-confusion attack).
var ErrAlgorithmMismatch = errors.New("keys: token algorithm does not match its key")

// AccessTokenType is the `typ` of access tokens (RFC 9068 §2.1).
const AccessTokenType = "at+jwt"

// IsAccessTokenType reports whether typ names an access token: at+jwt or
// its media type, in any case (RFC 9068 §4). hasRole says the token carries
// Chit's role claim: access tokens issued before they were typed (typ JWT
// or none) are recognised by it, which ID tokens never carry.
func IsAccessTokenType(typ string, hasRole bool) bool {
	switch strings.ToLower(typ) {
	case AccessTokenType, "application/" + AccessTokenType:
		return true
	case "jwt", "":
		return hasRole
	}
	return false
}

// KeyLookup finds the public key a token's kid names.
type KeyLookup func(ctx context.Context, kid string) (jwk.Key, bool)

// LookupContext is Lookup in the shape of a KeyLookup.
//
// A kid this replica does not know may be a key another replica activated
// moments ago (a forced rotation publishes and activates at once): the keys
// are read again, at most once a second, before the token is refused, so a
// rotation on one replica does not make the others refuse its tokens until
// their next KeyCheckInterval.
func (s *Set) LookupContext(ctx context.Context, kid string) (jwk.Key, bool) {
	return s.lookupReloading(ctx, kid, s.Lookup)
}

// LookupIDTokenKey is LookupContext for a token that is an ID token (an
// id_token_hint): any published key, those of an ID-token-only family
// included.
func (s *Set) LookupIDTokenKey(ctx context.Context, kid string) (jwk.Key, bool) {
	return s.lookupReloading(ctx, kid, func(kid string) (jwk.Key, bool) {
		s.mu.RLock()
		defer s.mu.RUnlock()
		key, ok := s.idTokenVerifiers[kid]
		return key, ok
	})
}

// lookupReloading looks kid up, and once more after reloading the keys
// (at most once a second) when it is unknown.
func (s *Set) lookupReloading(ctx context.Context, kid string, lookup func(string) (jwk.Key, bool)) (jwk.Key, bool) {
	if key, ok := lookup(kid); ok || kid == "" {
		return key, ok
	}
	s.missMu.Lock()
	if time.Since(s.lastMissReload) >= time.Second {
		s.lastMissReload = time.Now()
		_ = s.Reload(ctx) // on failure the token is refused, as before
	}
	s.missMu.Unlock()
	return lookup(kid)
}

// KeyProvider returns a jws.KeyProvider that offers exactly the key a token's
// kid names (asking each lookup in turn), with that key's own algorithm, and
// refuses anything else.
func KeyProvider(lookups ...KeyLookup) jws.KeyProvider {
	return jws.KeyProviderFunc(func(ctx context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
		headers := sig.ProtectedHeaders()
		var key jwk.Key
		found := false
		for _, lookup := range lookups {
			if key, found = lookup(ctx, headers.KeyID()); found {
				break
			}
		}
		if !found {
			return ErrUnknownKey
		}
		alg, ok := key.Algorithm().(jwa.SignatureAlgorithm)
		if !ok || alg != headers.Algorithm() {
			return ErrAlgorithmMismatch
		}
		sink.Key(alg, key)
		return nil
	})
}
