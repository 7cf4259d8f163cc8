package dpop

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// The bounds of what Verify reads.
const (
	// MaxProofSize bounds a proof: a header with an RSA-4096 jwk and the
	// claims are about 1.5 KiB; refusing more keeps the parser's work small.
	MaxProofSize = 8 << 10
	// MaxIDLength bounds jti: a 128-bit random id is 22 characters, a UUID
	// 36; the replay memory keeps a hash, but a bound keeps ids ids.
	MaxIDLength = 256
)

// The defaults of Config.
const (
	DefaultMaxAge           = 60 * time.Second
	DefaultMaxFuture        = 5 * time.Second
	DefaultMaxReplayRecords = 1_000_000
)

// ProofType is the typ header of a DPoP proof (RFC 9449 §4.2).
const ProofType = "dpop+jwt"

// Request is what a proof must match.
type Request struct {
	// Method is the HTTP method the proof must name (htm), compared exactly.
	Method string
	// URL is the target URI (htu): compared without query and fragment,
	// scheme and host case-insensitively, default ports removed, percent
	// encodings and dot segments normalized (RFC 9449 §4.3, RFC 3986 §6).
	URL string
	// AccessToken, when not empty, must be the token the proof names
	// (ath); when empty, a proof with an ath is still accepted (a client may
	// send one to a token endpoint).
	AccessToken string
	// JKT, when not empty, is the thumbprint the proof's key must have: a
	// bound token's cnf.jkt (RFC 9449 §7.1). Checked before the replay
	// record is written, so a proof by another key does not use up its jti.
	JKT string
}

// Proof is what an accepted proof says.
type Proof struct {
	// JKT is the thumbprint of the proof's key, a bound token's cnf.jkt.
	JKT      string
	ID       string // jti
	IssuedAt time.Time
	Nonce    string
}

// Config is a Verifier's policy. The zero value is usable: defaults apply
// to every zero field.
type Config struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxAge is how old a proof's iat may be (default 60 s): the window
	// within which its jti is remembered.
	MaxAge time.Duration
	// MaxFuture is how far ahead iat may be (default 5 s), for clock skew.
	MaxFuture time.Duration
	// MaxReplayRecords bounds the jti records held (default 1 000 000, about
	// 40 MB when full: 15 000 proofs a second within the default window,
	// more than two cores verify). Records leave when their proof's window
	// ends; when the memory is full of live records a new proof is refused
	// (use_dpop_nonce is not the answer: retrying does not help until
	// records expire), because forgetting a live record would let its
	// proof be replayed. That turns a flood of valid proofs into refusals
	// for the rest of the window, never into accepted replays; size it
	// above the proofs a replica takes in MaxAge+MaxFuture.
	MaxReplayRecords int
	// Nonces, when set, makes every proof carry a current nonce of this
	// source (RFC 9449 §8); nil asks for none.
	Nonces *NonceSource
}

// Verifier checks proofs and remembers the ids of the proofs it accepted.
// It is safe for concurrent use.
type Verifier struct {
	now       func() time.Time
	maxAge    time.Duration
	maxFuture time.Duration
	nonces    *NonceSource
	replays   *replayMemory
	// headers remembers the keys of the protected headers verified
	// lately: a client sends the same header (typ, alg, jwk) with each of
	// its proofs, and reading it (two JSON passes, a JWK parse, a
	// thumbprint) cost a third of a proof's check.
	headers *headerCache
}

// NewVerifier returns a verifier with cfg's policy and an empty replay
// memory.
func NewVerifier(cfg Config) *Verifier {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxFuture <= 0 {
		cfg.MaxFuture = DefaultMaxFuture
	}
	if cfg.MaxReplayRecords <= 0 {
		cfg.MaxReplayRecords = DefaultMaxReplayRecords
	}
	return &Verifier{now: cfg.Now, maxAge: cfg.MaxAge, maxFuture: cfg.MaxFuture, nonces: cfg.Nonces,
		replays: newReplayMemory(cfg.MaxReplayRecords), headers: &headerCache{entries: map[string]proofKey{}}}
}

// Nonce is the nonce proofs should carry now, "" when the verifier asks
// for none: a server sends it with its answers (RFC 9449 §8.2) so that a
// client moves to the next nonce before the one it uses expires.
func (v *Verifier) Nonce() string {
	if v.nonces == nil {
		return ""
	}
	return v.nonces.Nonce()
}

// header is what a proof's protected header must hold.
type header struct {
	Typ  string          `json:"typ"`
	Alg  string          `json:"alg"`
	JWK  json.RawMessage `json:"jwk"`
	Crit json.RawMessage `json:"crit"`
}

// claims are a proof's claims. iat is read raw, since encoding/json would
// take a quoted number for a json.Number, and then checked to be a whole
// number of seconds, as NumericDate says.
type claims struct {
	ID       *string         `json:"jti"`
	Method   *string         `json:"htm"`
	URL      *string         `json:"htu"`
	IssuedAt json.RawMessage `json:"iat"`
	Hash     *string         `json:"ath"`
	Nonce    *string         `json:"nonce"`
}

// Verify checks one proof (a DPoP header value) for req, in RFC 9449 §4.3's
// order. Every refusal is an *Error. The proof's jti is recorded only after
// the signature and every other check passed, so a forged proof cannot use
// up an id.
func (v *Verifier) Verify(proof string, req Request) (Proof, error) {
	if proof == "" {
		return Proof{}, invalid("no proof")
	}
	if len(proof) > MaxProofSize {
		return Proof{}, invalid(fmt.Sprintf("proof is larger than %d KiB", MaxProofSize>>10))
	}
	parts := strings.Split(proof, ".")
	if len(parts) != 3 || parts[2] == "" {
		return Proof{}, invalid("proof is not one compact JWS")
	}
	key, err := v.headers.read(parts[0])
	if err != nil {
		return Proof{}, err
	}
	signature, err := decodePart(parts[2])
	if err != nil {
		return Proof{}, invalid("signature is not base64url")
	}
	if err := key.verifier.Verify([]byte(proof[:len(parts[0])+1+len(parts[1])]), signature, key.public); err != nil {
		return Proof{}, invalid("signature does not verify with jwk")
	}
	payload, err := decodePart(parts[1])
	if err != nil {
		return Proof{}, invalid("claims are not base64url")
	}
	var c claims
	if err := decodeJSON(payload, &c); err != nil {
		return Proof{}, invalid("claims: " + err.Error())
	}
	accepted, err := v.checkClaims(c, req)
	if err != nil {
		return Proof{}, err
	}
	accepted.JKT = key.thumbprint
	if req.JKT != "" && accepted.JKT != req.JKT {
		return Proof{}, invalid("jwk is not the key the access token is bound to")
	}
	if v.nonces != nil && !v.nonces.Valid(accepted.Nonce) {
		// Checked last but for replay: a client retries with the nonce, so
		// the refusal should be the only thing wrong with its proof.
		return Proof{}, &Error{Code: CodeUseNonce, Description: "a current server nonce is required", Nonce: v.nonces.Nonce()}
	}
	if err := v.replays.remember(accepted.JKT, accepted.ID, accepted.IssuedAt.Add(v.maxAge), v.now()); err != nil {
		return Proof{}, err
	}
	return accepted, nil
}

func (v *Verifier) checkClaims(c claims, req Request) (Proof, error) {
	switch {
	case c.ID == nil || *c.ID == "":
		return Proof{}, invalid("jti is missing")
	case len(*c.ID) > MaxIDLength:
		return Proof{}, invalid(fmt.Sprintf("jti is longer than %d characters", MaxIDLength))
	case c.Method == nil:
		return Proof{}, invalid("htm is missing")
	case *c.Method != req.Method:
		return Proof{}, invalid("htm does not match")
	case c.URL == nil:
		return Proof{}, invalid("htu is missing")
	case c.IssuedAt == nil || bytes.Equal(c.IssuedAt, []byte("null")):
		return Proof{}, invalid("iat is missing")
	}
	want, err := normalizeURL(req.URL)
	if err != nil {
		return Proof{}, invalid("the request's URL is not absolute")
	}
	if got, err := normalizeURL(*c.URL); err != nil || got != want {
		return Proof{}, invalid("htu does not match")
	}
	var seconds float64
	if err := json.Unmarshal(c.IssuedAt, &seconds); err != nil || seconds != math.Trunc(seconds) || math.Abs(seconds) > 1<<53 {
		return Proof{}, invalid("iat is not a whole number of seconds")
	}
	issuedAt := time.Unix(int64(seconds), 0)
	now := v.now()
	switch {
	case issuedAt.Before(now.Add(-v.maxAge)):
		return Proof{}, invalid("iat is too old")
	case issuedAt.After(now.Add(v.maxFuture)):
		return Proof{}, invalid("iat is in the future")
	}
	if req.AccessToken != "" {
		switch {
		case c.Hash == nil:
			return Proof{}, invalid("ath is missing")
		case *c.Hash != AccessTokenHash(req.AccessToken):
			return Proof{}, invalid("ath does not match the access token")
		}
	}
	accepted := Proof{ID: *c.ID, IssuedAt: issuedAt}
	if c.Nonce != nil {
		accepted.Nonce = *c.Nonce
	}
	return accepted, nil
}

// decodePart decodes a compact JWS part: unpadded base64url, with no spare
// bits, so that one proof has one spelling.
func decodePart(part string) ([]byte, error) {
	return base64.RawURLEncoding.Strict().DecodeString(part)
}

// decodeJSON reads one JSON object into dst, refusing duplicate members at
// any depth: jwx and encoding/json keep the last one, another parser may
// keep the first, and a proof must have one meaning.
func decodeJSON(raw []byte, dst any) error {
	if err := uniqueMembers(json.NewDecoder(bytes.NewReader(raw))); err != nil {
		return err
	}
	decoder := json.NewDecoder(bytes.NewReader(raw))
	decoder.UseNumber()
	if err := decoder.Decode(dst); err != nil {
		if typeErr, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && typeErr.Field != "" {
			// Field is the member's JSON name; Type the Go type it fills.
			return fmt.Errorf("%s is not a JSON %s", typeErr.Field, typeErr.Type)
		}
		return errors.New("not a JSON object of the expected members")
	}
	if decoder.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// uniqueMembers walks one JSON value and fails on an object with a member
// name twice.
func uniqueMembers(decoder *json.Decoder) error {
	token, err := decoder.Token()
	if err != nil {
		return errors.New("not JSON")
	}
	delim, ok := token.(json.Delim)
	if !ok {
		return nil
	}
	switch delim {
	case '{':
		seen := map[string]bool{}
		for decoder.More() {
			name, err := decoder.Token()
			if err != nil {
				return errors.New("not JSON")
			}
			member, ok := name.(string)
			if !ok {
				return errors.New("not JSON")
			}
			if seen[member] {
				return fmt.Errorf("member %q appears twice", member)
			}
			seen[member] = true
			if err := uniqueMembers(decoder); err != nil {
				return err
			}
		}
	case '[':
		for decoder.More() {
			if err := uniqueMembers(decoder); err != nil {
				return err
			}
		}
	}
	if _, err := decoder.Token(); err != nil { // the closing delimiter
		return errors.New("not JSON")
	}
	return nil
}

// proofKey is what a proof's protected header says, once checked: the
// key's verifier, its public key and its thumbprint.
type proofKey struct {
	verifier   jws.Verifier
	public     any
	thumbprint string
}

// maxCachedHeaders bounds the header cache; past it the cache restarts.
const maxCachedHeaders = 10_000

// maxCachedHeaderBytes bounds the encoded headers the cache holds; past it
// the cache restarts too. A header is the client's choice (up to
// MaxProofSize) and is cached before the signature is checked, so without
// it anyone could pin 10 000 padded headers, 80 MB.
const maxCachedHeaderBytes = 4 << 20

// headerCache maps a protected header's encoding to its checked key. Only
// headers that passed every check are kept, so a refused one is refused
// again each time; what a header says never changes, so an entry needs no
// expiry.
type headerCache struct {
	mu      sync.Mutex
	entries map[string]proofKey
	bytes   int // the length of the entries' keys
}

// read checks a proof's encoded protected header (typ, alg, crit, a public
// jwk that fits alg) and returns its key.
func (c *headerCache) read(encoded string) (proofKey, error) {
	c.mu.Lock()
	key, ok := c.entries[encoded]
	c.mu.Unlock()
	if ok {
		return key, nil
	}
	key, err := readHeader(encoded)
	if err != nil {
		return proofKey{}, err
	}
	// A copy: encoded shares the memory of the whole proof (and its claims).
	encoded = strings.Clone(encoded)
	c.mu.Lock()
	if len(c.entries) >= maxCachedHeaders || c.bytes+len(encoded) > maxCachedHeaderBytes {
		c.entries, c.bytes = map[string]proofKey{}, 0
	}
	c.entries[encoded] = key
	c.bytes += len(encoded)
	c.mu.Unlock()
	return key, nil
}

func readHeader(encoded string) (proofKey, error) {
	rawHeader, err := decodePart(encoded)
	if err != nil {
		return proofKey{}, invalid("header is not base64url")
	}
	var head header
	if err := decodeJSON(rawHeader, &head); err != nil {
		return proofKey{}, invalid("header: " + err.Error())
	}
	if head.Typ != ProofType {
		return proofKey{}, invalid(`typ is not "` + ProofType + `"`)
	}
	alg, ok := algorithm(head.Alg)
	if !ok {
		return proofKey{}, invalid(fmt.Sprintf("alg %q is not one of %s", head.Alg, strings.Join(Algorithms(), ", ")))
	}
	if head.Crit != nil {
		// No extension is understood, so none may be critical (RFC 7515 §4.1.11).
		return proofKey{}, invalid("crit is not supported")
	}
	if len(head.JWK) == 0 || bytes.Equal(head.JWK, []byte("null")) {
		return proofKey{}, invalid("jwk is missing")
	}
	key, err := jwk.ParseKey(head.JWK)
	if err != nil {
		return proofKey{}, invalid("jwk is not a key")
	}
	if err := checkPublicKey(key, alg); err != nil {
		return proofKey{}, invalid(err.Error())
	}
	verifier, err := jws.NewVerifier(alg)
	if err != nil {
		return proofKey{}, invalid(fmt.Sprintf("alg %q cannot be verified", head.Alg))
	}
	var public any
	if err := key.Raw(&public); err != nil {
		return proofKey{}, invalid("jwk is not a key")
	}
	thumbprint, err := Thumbprint(key)
	if err != nil {
		return proofKey{}, invalid("jwk has no thumbprint")
	}
	return proofKey{verifier: verifier, public: public, thumbprint: thumbprint}, nil
}
