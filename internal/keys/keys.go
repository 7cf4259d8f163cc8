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

// Set is the server's signing keys: the active one signs, and the next,
// active and retired ones are published.
type Set struct {
	store  SigningKeyStore
	sealer *Sealer

	mu     sync.RWMutex
	signer jwk.Key
	// activeSince is when the signing key became active.
	activeSince time.Time
	// verifiers maps kid to the public key; each key carries its algorithm.
	verifiers map[string]jwk.Key
	jwks      []byte

	// missMu and lastMissReload rate-limit the reloads an unknown kid
	// causes (LookupContext).
	missMu         sync.Mutex
	lastMissReload time.Time
}

// Load reads the signing keys from store, first creating what is missing: an
// active key and a next key, both with algorithm alg.
func Load(ctx context.Context, store SigningKeyStore, alg jwa.SignatureAlgorithm, sealer *Sealer, now time.Time) (*Set, error) {
	if err := ensureKeys(ctx, store, alg, sealer, now); err != nil {
		return nil, err
	}
	set := &Set{store: store, sealer: sealer}
	if err := set.Reload(ctx); err != nil {
		return nil, err
	}
	return set, nil
}

func ensureKeys(ctx context.Context, store SigningKeyStore, alg jwa.SignatureAlgorithm, sealer *Sealer, now time.Time) error {
	stored, err := store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("list signing keys: %w", err)
	}
	hasActive, hasNext := false, false
	for _, key := range stored {
		hasActive = hasActive || key.State == storage.KeyActive
		hasNext = hasNext || key.State == storage.KeyNext
	}
	if !hasActive {
		key, err := newSealedKey(alg, sealer, now)
		if err != nil {
			return err
		}
		key.State, key.ActivatedAt = storage.KeyActive, now
		// Two processes starting on an empty store may both get here; both
		// keys are published, and the newest active one signs everywhere.
		if err := store.CreateSigningKey(ctx, key); err != nil && !errors.Is(err, storage.ErrAlreadyExists) {
			return fmt.Errorf("store signing key: %w", err)
		}
	}
	if !hasNext {
		key, err := newSealedKey(alg, sealer, now)
		if err != nil {
			return err
		}
		if err := store.RotateSigningKeys(ctx, "", key, now); err != nil && !errors.Is(err, storage.ErrConflict) {
			return fmt.Errorf("store next signing key: %w", err)
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

// Reload re-reads the keys from the store, picking up rotations made by
// another process or replica.
func (s *Set) Reload(ctx context.Context) error {
	stored, err := s.store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("list signing keys: %w", err)
	}
	verifiers := make(map[string]jwk.Key, len(stored))
	public := jwk.NewSet()
	var active *storage.SigningKey
	for i, record := range stored {
		pub, err := jwk.ParseKey(record.PublicKey)
		if err != nil {
			return fmt.Errorf("parse public key %s: %w", record.ID, err)
		}
		verifiers[record.ID] = pub
		if err := public.AddKey(pub); err != nil {
			return err
		}
		if record.State == storage.KeyActive {
			active = &stored[i] // the newest active key wins
		}
	}
	if active == nil {
		return errors.New("no active signing key in the store")
	}
	private, err := s.sealer.Open(active.PrivateKey)
	if err != nil {
		return fmt.Errorf("signing key %s: %w", active.ID, err)
	}
	signer, err := jwk.ParseKey(private)
	if err != nil {
		return fmt.Errorf("parse signing key %s: %w", active.ID, err)
	}
	jwks, err := json.Marshal(public)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signer, s.activeSince, s.verifiers, s.jwks = signer, active.ActivatedAt, verifiers, jwks
	return nil
}

// ActiveSince is when the signing key became active.
func (s *Set) ActiveSince() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.activeSince
}

// ErrNextTooYoung refuses a rotation that would start signing with a key
// verifiers may not have fetched yet.
// ErrNoNextKey: a rotation needs the next key that a running server
// publishes ahead of its use.
var ErrNoNextKey = errors.New("there is no next signing key to activate; start chitd once to create it")

// ErrNextTooYoung: the next key has not been published long enough.
var ErrNextTooYoung = errors.New("the next signing key was published too recently; verifiers that cache the key set may not know it yet")

// Rotate makes the next key active, retires the active one and publishes a
// new next key of algorithm alg. Unless force is set, it refuses while the
// next key is younger than minPublished. Of concurrent rotations, one wins
// and the others get storage.ErrConflict.
func Rotate(ctx context.Context, store SigningKeyStore, alg jwa.SignatureAlgorithm, sealer *Sealer, now time.Time, minPublished time.Duration, force bool) error {
	stored, err := store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("list signing keys: %w", err)
	}
	var next *storage.SigningKey
	for i := range stored {
		if stored[i].State == storage.KeyNext {
			next = &stored[i]
		}
		// Never store a clear key beside encrypted ones.
		if IsSealed(stored[i].PrivateKey) && !sealer.Encrypts() {
			return ErrNoEncryptionKey
		}
	}
	if next == nil {
		return ErrNoNextKey
	}
	if !force && now.Sub(next.CreatedAt) < minPublished {
		return ErrNextTooYoung
	}
	key, err := newSealedKey(alg, sealer, now)
	if err != nil {
		return err
	}
	return store.RotateSigningKeys(ctx, next.ID, key, now)
}

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
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
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

// Sign serializes token as a JWS signed by the active key, with its kid in
// the header.
func (s *Set) Sign(token jwt.Token) (string, error) { return s.SignAs(token, "") }

// SignAs signs token with the active key, with typ as its `typ` header
// (jwx's default, JWT, when empty): access tokens are at+jwt (RFC 9068), so
// that no other signed JWT, an ID token say, passes for one.
func (s *Set) SignAs(token jwt.Token, typ string) (string, error) {
	s.mu.RLock()
	signer := s.signer
	s.mu.RUnlock()
	return sign(signer, token, typ)
}

// SignBuilt signs the token build makes for the algorithm of the key that
// signs it: claims that depend on the algorithm (an ID token's at_hash,
// OIDC Core §3.1.3.6) are computed for the very key that signs, even when
// a rotation is picked up meanwhile.
func (s *Set) SignBuilt(build func(alg jwa.SignatureAlgorithm) (jwt.Token, error)) (string, error) {
	s.mu.RLock()
	signer := s.signer
	s.mu.RUnlock()
	alg, _ := signer.Algorithm().(jwa.SignatureAlgorithm)
	token, err := build(alg)
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

// Algorithm is the algorithm of the key that signs now.
func (s *Set) Algorithm() jwa.SignatureAlgorithm {
	s.mu.RLock()
	defer s.mu.RUnlock()
	alg, _ := s.signer.Algorithm().(jwa.SignatureAlgorithm)
	return alg
}

// Algorithms lists the algorithms of the published keys, without repeats.
func (s *Set) Algorithms() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	seen := map[string]bool{}
	var algorithms []string
	for _, key := range s.verifiers {
		name := key.Algorithm().String()
		if !seen[name] {
			seen[name] = true
			algorithms = append(algorithms, name)
		}
	}
	slices.Sort(algorithms)
	return algorithms
}

// Lookup returns the public key named kid. The key carries its algorithm: a
// token whose header names another algorithm must be refused.
func (s *Set) Lookup(kid string) (jwk.Key, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	key, ok := s.verifiers[kid]
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
	if key, ok := s.Lookup(kid); ok || kid == "" {
		return key, ok
	}
	s.missMu.Lock()
	if time.Since(s.lastMissReload) >= time.Second {
		s.lastMissReload = time.Now()
		_ = s.Reload(ctx) // on failure the token is refused, as before
	}
	s.missMu.Unlock()
	return s.Lookup(kid)
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
