package verifier

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"
)

// ErrRevoked is wrapped (beside ErrInvalidToken) by the refusal of a token
// that the revocation feed says was revoked: its login, its subject, a
// client or service it names, or its signing key.
var ErrRevoked = errors.New("token has been revoked")

// ErrRevocationFeedStale is wrapped (beside ErrInvalidToken) by the refusal
// of every token while the revocation feed is stale, when the verifier was
// configured to fail closed (RevocationConfig.FailClosed).
var ErrRevocationFeedStale = errors.New("the revocation feed is stale")

func revokedError(why string) error {
	return fmt.Errorf("%w: %w (%s)", ErrInvalidToken, ErrRevoked, why)
}

// The claims the revocation feed's kinds are matched with, named as the
// server issues them (internal/tokens: FamilyClaim, ClientIDClaim,
// SubjectClientClaim, IssuedAtMicrosClaim).
const (
	familyClaim         = "fid"
	clientIDClaim       = "client_id"
	subjectClientClaim  = "subject_client_id"
	issuedAtMicrosClaim = "iat_us"
)

// clientSubjectPrefix makes a client's principal key (accounts.ClientSubject
// in the server): revocations of a client are recorded under
// "client:" + its id.
const clientSubjectPrefix = "client:"

// readRevocationClaims fills in what the revocation check reads from a
// token: its login, the clients it names, and its issue time to the
// microsecond.
func readRevocationClaims(token jwt.Token, claims *Claims) {
	claims.FamilyID, _ = stringClaim(token, familyClaim)
	claims.ClientID, _ = stringClaim(token, clientIDClaim)
	claims.SubjectClientID, _ = stringClaim(token, subjectClientClaim)
	claims.issuedAtPrecisely = claims.IssuedAt
	// iat_us counts only when it agrees with iat's second, as the server
	// reads it: a token cannot claim an earlier microsecond than its iat.
	if raw, ok := token.Get(issuedAtMicrosClaim); ok {
		if micros, ok := raw.(float64); ok {
			precise := time.UnixMicro(int64(micros))
			if precise.Truncate(time.Second).Equal(claims.IssuedAt) {
				claims.issuedAtPrecisely = precise
			}
		}
	}
}

func stringClaim(token jwt.Token, name string) (string, bool) {
	raw, ok := token.Get(name)
	if !ok {
		return "", false
	}
	text, ok := raw.(string)
	return text, ok
}

// subjectCutoff refuses the tokens of a principal issued at or before
// revokedAt, until forgetAfter.
type subjectCutoff struct {
	revokedAt   time.Time
	forgetAfter time.Time
}

// revocationSet is what the feed has said is revoked and still matters.
// Every entry carries the time after which no token it refuses can still be
// accepted (the server's expiresAt plus our clock skew), when it is
// forgotten; the set never holds more than max entries.
type revocationSet struct {
	mu       sync.RWMutex
	families map[string]time.Time
	// subjects holds principal keys; clients holds the client ids of the
	// keys "client:<id>", so that a token's client_id is looked up as it
	// is, without building a key per check.
	subjects map[string]subjectCutoff
	clients  map[string]subjectCutoff
	keys     map[string]time.Time
	max      int
	// overflowed is set when an entry could not be added because the set
	// was full: the set then refuses less than the feed said, and counts
	// as stale until a full resync fits.
	overflowed bool
}

func newRevocationSet(max int) *revocationSet {
	return &revocationSet{
		families: map[string]time.Time{},
		subjects: map[string]subjectCutoff{},
		clients:  map[string]subjectCutoff{},
		keys:     map[string]time.Time{},
		max:      max,
	}
}

// revocationRecord is the data of an `event: revocation` record.
type revocationRecord struct {
	Cursor     string    `json:"cursor"`
	Kind       string    `json:"kind"`
	FamilyID   string    `json:"familyId"`
	Subject    string    `json:"subject"`
	RevokedAt  time.Time `json:"revokedAt"`
	ExpiresAt  time.Time `json:"expiresAt"`
	KeyID      string    `json:"keyId"`
	ProviderID string    `json:"providerId"`
}

// The kinds of revocation the feed sends.
const (
	kindFamily             = "family"
	kindSubject            = "subject"
	kindSigningKeyRemoved  = "signing_key_removed"
	kindProviderKeyRemoved = "provider_key_removed"
)

// errMalformedRecord is returned for a record of a known kind that lacks
// what that kind needs.
var errMalformedRecord = errors.New("malformed revocation record")

// applyOutcome says what add did with a record.
type applyOutcome int

const (
	applied applyOutcome = iota
	alreadyExpired
	ignoredKind
	ignoredProviderKey
	overflow
)

// add records a revocation. skew is added to expiresAt: the verifier
// accepts a token up to ClockSkew after its exp, so the entry must outlive
// the last token it refuses by as much.
func (s *revocationSet) add(record revocationRecord, now time.Time, skew time.Duration) (applyOutcome, error) {
	switch record.Kind {
	case kindFamily, kindSubject, kindSigningKeyRemoved:
	case kindProviderKeyRemoved:
		// This verifier accepts only tokens signed with Chit's own keys
		// (its JWKS holds no provider's key): a provider's key concerns
		// CheckToken and introspection, not us.
		return ignoredProviderKey, nil
	default:
		// A kind added to the feed after this verifier was built.
		return ignoredKind, nil
	}
	if record.ExpiresAt.IsZero() {
		return 0, fmt.Errorf("%w: %s without expiresAt", errMalformedRecord, record.Kind)
	}
	forgetAfter := record.ExpiresAt.Add(skew)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch record.Kind {
	case kindFamily:
		if record.FamilyID == "" {
			return 0, fmt.Errorf("%w: family without familyId", errMalformedRecord)
		}
		if !forgetAfter.After(now) {
			return alreadyExpired, nil
		}
		previous, exists := s.families[record.FamilyID]
		if !exists && s.full() {
			s.overflowed = true
			return overflow, nil
		}
		s.families[record.FamilyID] = later(previous, forgetAfter)
	case kindSubject:
		if record.Subject == "" || record.RevokedAt.IsZero() {
			return 0, fmt.Errorf("%w: subject without subject or revokedAt", errMalformedRecord)
		}
		if !forgetAfter.After(now) {
			return alreadyExpired, nil
		}
		table, key := s.subjects, record.Subject
		if id, isClient := strings.CutPrefix(record.Subject, clientSubjectPrefix); isClient {
			table, key = s.clients, id
		}
		previous, exists := table[key]
		if !exists && s.full() {
			s.overflowed = true
			return overflow, nil
		}
		// Of two cut-offs of one principal, the later refuses every token
		// the earlier does; it is kept as long as either would be.
		table[key] = subjectCutoff{revokedAt: later(previous.revokedAt, record.RevokedAt), forgetAfter: later(previous.forgetAfter, forgetAfter)}
	case kindSigningKeyRemoved:
		if record.KeyID == "" {
			return 0, fmt.Errorf("%w: signing_key_removed without keyId", errMalformedRecord)
		}
		if !forgetAfter.After(now) {
			return alreadyExpired, nil
		}
		previous, exists := s.keys[record.KeyID]
		if !exists && s.full() {
			s.overflowed = true
			return overflow, nil
		}
		s.keys[record.KeyID] = later(previous, forgetAfter)
	}
	return applied, nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// full must be called with mu held.
func (s *revocationSet) full() bool { return s.sizeLocked() >= s.max }

func (s *revocationSet) sizeLocked() int {
	return len(s.families) + len(s.subjects) + len(s.clients) + len(s.keys)
}

func (s *revocationSet) size() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sizeLocked()
}

func (s *revocationSet) isOverflowed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.overflowed
}

// prune forgets the entries whose tokens have all expired.
func (s *revocationSet) prune(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, forgetAfter := range s.families {
		if !forgetAfter.After(now) {
			delete(s.families, id)
		}
	}
	for key, cutoff := range s.subjects {
		if !cutoff.forgetAfter.After(now) {
			delete(s.subjects, key)
		}
	}
	for id, cutoff := range s.clients {
		if !cutoff.forgetAfter.After(now) {
			delete(s.clients, id)
		}
	}
	for kid, forgetAfter := range s.keys {
		if !forgetAfter.After(now) {
			delete(s.keys, kid)
		}
	}
}

// keyRemoved reports whether the feed said kid was removed.
func (s *revocationSet) keyRemoved(kid string, now time.Time) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	forgetAfter, ok := s.keys[kid]
	return ok && forgetAfter.After(now)
}

// refusal returns why the set refuses a token signed with kid, or "" when
// it does not. It mirrors the server's check (internal/tokens, verify): the
// login; the subject, the client it was issued to, the client its subject
// token was issued to, and each service of its actor chain, each refusing
// the tokens issued at or before its cut-off. It reads a few maps and
// allocates nothing.
func (s *revocationSet) refusal(claims *Claims, kid string, now time.Time) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if forgetAfter, ok := s.keys[kid]; ok && forgetAfter.After(now) {
		return "its signing key was removed"
	}
	if claims.FamilyID != "" {
		if forgetAfter, ok := s.families[claims.FamilyID]; ok && forgetAfter.After(now) {
			return "its login was revoked"
		}
	}
	issued := claims.issuedAtPrecisely
	if s.principalRevoked(claims.Subject, issued, now) {
		return "its subject's tokens were revoked"
	}
	if claims.ClientID != "" && s.cutoffRefuses(s.clients[claims.ClientID], issued, now) {
		return "its client's tokens were revoked"
	}
	if claims.SubjectClientID != "" && s.cutoffRefuses(s.clients[claims.SubjectClientID], issued, now) {
		return "its subject token's client's tokens were revoked"
	}
	for actor := claims.Actor; actor != nil; actor = actor.Actor {
		if s.principalRevoked(actor.Subject, issued, now) {
			return "a service of its actor chain was revoked"
		}
	}
	return ""
}

// principalRevoked must be called with mu held.
func (s *revocationSet) principalRevoked(key string, issued, now time.Time) bool {
	if id, isClient := strings.CutPrefix(key, clientSubjectPrefix); isClient {
		return s.cutoffRefuses(s.clients[id], issued, now)
	}
	return s.cutoffRefuses(s.subjects[key], issued, now)
}

func (s *revocationSet) cutoffRefuses(cutoff subjectCutoff, issued, now time.Time) bool {
	return !cutoff.revokedAt.IsZero() && cutoff.forgetAfter.After(now) && !issued.After(cutoff.revokedAt)
}
