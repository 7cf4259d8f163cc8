package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/tokens"
)

// MaxAssertionBytes bounds an assertion: platform tokens are 1 to 2 KiB.
const MaxAssertionBytes = 16 << 10

// Algorithms are the signature algorithms an assertion may use: the
// asymmetric ones platforms sign with. HS256 would need a secret shared
// with the issuer, and none is no signature.
var Algorithms = []jwa.SignatureAlgorithm{jwa.RS256, jwa.ES256, jwa.EdDSA}

// The checks an exchange makes, by the name its refusal and audit line
// give.
const (
	CheckAlgorithm = "algorithm"
	CheckIssuer    = "issuer"
	CheckKeys      = "issuer_keys"
	CheckKeyID     = "kid"
	CheckSignature = "signature"
	CheckExpiry    = "exp"
	CheckNotBefore = "nbf"
	CheckIssuedAt  = "iat"
	CheckLifetime  = "lifetime"
	CheckAudience  = "aud"
	CheckClaims    = "claims"
	CheckJTI       = "jti"
	CheckReplay    = "replay"
	CheckService   = "service_account"
)

// ExchangeRequest is an assertion presented for an access token: RFC 7523's
// jwt-bearer grant, gRPC's federated_credential, or (later) an RFC 8693
// subject token of type jwt.
type ExchangeRequest struct {
	Assertion string
	// Scope and Audience are what is asked for ("" for the service
	// account's defaults and the server's own audience).
	Scope    string
	Audience string
	// Binding is the key the token is bound to; zero issues a bearer token.
	Binding tokens.Binding
}

// RefusedError is a refused assertion: Check says which check failed. It
// is a chiterr.Unauthenticated (invalid_grant on /oauth2/token, RFC 7523
// §3.1), and never holds the assertion.
type RefusedError struct {
	Check string
	err   *chiterr.Error
}

func (e *RefusedError) Error() string { return e.err.Error() }
func (e *RefusedError) Unwrap() error { return e.err }

// Exchange checks req's assertion against the rules of its issuer and
// issues the matched rule's service account an access token with that
// account's grants, expiring no later than the assertion. A malformed
// assertion is InvalidArgument; a refused one a *RefusedError. Every
// exchange and every refusal writes one audit line.
func (s *Service) Exchange(ctx context.Context, req ExchangeRequest) (tokens.Grant, error) {
	var assertion assertion
	var err error
	if cached, ok := s.verified.get(req.Assertion); ok {
		assertion = cached.parsed
	} else {
		assertion, err = parseAssertion(req.Assertion)
	}
	if err != nil {
		s.audit(ctx, "federated assertion refused", "federation_refused", "", "", "malformed", err)
		return tokens.Grant{}, err
	}
	rule, err := s.check(ctx, assertion)
	if err != nil {
		var refused *RefusedError
		check := "error"
		if errors.As(err, &refused) {
			check = refused.Check
		}
		s.audit(ctx, "federated assertion refused", "federation_refused", assertion.issuer, ruleName(rule), check, err,
			"assertion_sub", assertion.text("sub"), "assertion_jti", assertion.text("jti"))
		return tokens.Grant{}, err
	}
	grant, err := s.issue(ctx, assertion, rule, req)
	if err != nil {
		s.audit(ctx, "federated assertion refused", "federation_refused", assertion.issuer, rule.Name, checkOf(err), err,
			"assertion_sub", assertion.text("sub"), "assertion_jti", assertion.text("jti"))
		return tokens.Grant{}, err
	}
	s.Logger.InfoContext(ctx, "federated assertion exchanged", "audit", true, "event", "federation_exchange",
		"issuer", assertion.issuer, "rule", rule.Name, "service", rule.ServiceAccount,
		"assertion_sub", assertion.text("sub"), "assertion_jti", assertion.text("jti"), "scope", grant.Scope,
		"expires_in", grant.ExpiresIn.String())
	return grant, nil
}

func ruleName(rule *compiledRule) string {
	if rule == nil {
		return ""
	}
	return rule.Name
}

func checkOf(err error) string {
	var refused *RefusedError
	if errors.As(err, &refused) {
		return refused.Check
	}
	return "issue"
}

// audit writes a refusal's line: the check and the message, never the
// assertion.
func (s *Service) audit(ctx context.Context, message, event, issuer, rule, check string, err error, attrs ...any) {
	args := append([]any{"audit", true, "event", event, "issuer", limit(issuer), "rule", rule, "check", check,
		"reason", chiterr.PublicMessage(err)}, attrs...)
	s.Logger.InfoContext(ctx, message, args...)
}

// limit bounds what an unauthenticated caller wrote before it is logged.
func limit(text string) string {
	if len(text) > 256 {
		return text[:256] + "…"
	}
	return text
}

func refuse(check, format string, args ...any) *RefusedError {
	return &RefusedError{Check: check, err: chiterr.New(chiterr.Unauthenticated, "assertion refused: "+format, args...)}
}

// assertion is a parsed, not yet verified, compact JWS.
type assertion struct {
	raw    []byte
	alg    jwa.SignatureAlgorithm
	kid    string
	issuer string
	claims map[string]any
}

// text is claim name as a string, "" when absent or not a string; bounded
// for logging.
func (a assertion) text(name string) string {
	value, _ := a.claims[name].(string)
	return limit(value)
}

func malformed(format string, args ...any) error {
	return chiterr.New(chiterr.InvalidArgument, "assertion is malformed: "+format, args...)
}

func parseAssertion(text string) (assertion, error) {
	switch {
	case text == "":
		return assertion{}, chiterr.New(chiterr.InvalidArgument, "assertion is required")
	case len(text) > MaxAssertionBytes:
		return assertion{}, malformed("longer than %d KiB", MaxAssertionBytes>>10)
	case strings.Count(text, ".") != 2:
		return assertion{}, malformed("not a JWT in compact form (three dot-separated parts)")
	}
	raw := []byte(text)
	message, err := jws.Parse(raw, jws.WithCompact())
	if err != nil || len(message.Signatures()) != 1 {
		return assertion{}, malformed("not a JWS")
	}
	headers := message.Signatures()[0].ProtectedHeaders()
	// RFC 7515 §4.1.11: a recipient refuses a JWS whose crit names what it
	// does not understand, and Chit understands no extension (it refuses
	// its own tokens with crit too).
	if _, critical := headers.Get(jws.CriticalKey); critical {
		return assertion{}, malformed("its header names critical extensions (crit), which Chit does not understand")
	}
	claims, err := decodeClaims(message.Payload())
	if err != nil {
		return assertion{}, err
	}
	issuer, ok := claims["iss"].(string)
	if !ok || issuer == "" {
		return assertion{}, malformed("it has no iss")
	}
	return assertion{raw: raw, alg: headers.Algorithm(), kid: headers.KeyID(), issuer: issuer, claims: claims}, nil
}

// decodeClaims reads a payload that is one JSON object, numbers kept as
// written. A claim named twice is refused rather than read as its last
// value (RFC 7519 §4 allows either): the issuer, or another party reading
// the same token, may have taken the first, and Chit refuses its own tokens
// with a claim named twice too.
func decodeClaims(payload []byte) (map[string]any, error) {
	notObject := malformed("its payload is not a JSON object")
	decoder := json.NewDecoder(bytes.NewReader(payload))
	decoder.UseNumber()
	if start, err := decoder.Token(); err != nil || start != json.Delim('{') {
		return nil, notObject
	}
	claims := map[string]any{}
	for decoder.More() {
		key, err := decoder.Token()
		if err != nil {
			return nil, notObject
		}
		name, _ := key.(string)
		if _, seen := claims[name]; seen {
			return nil, malformed("claim %s appears more than once", chiterr.Quote(limit(name)))
		}
		var value any
		if err := decoder.Decode(&value); err != nil {
			return nil, notObject
		}
		claims[name] = value
	}
	if _, err := decoder.Token(); err != nil { // the closing brace
		return nil, notObject
	}
	if _, err := decoder.Token(); err != io.EOF {
		return nil, malformed("its payload has data after its JSON object")
	}
	return claims, nil
}

// check verifies a against the rules of its issuer and returns the first
// rule (by name) it matches.
func (s *Service) check(ctx context.Context, a assertion) (*compiledRule, error) {
	if !slices.Contains(Algorithms, a.alg) {
		return nil, refuse(CheckAlgorithm, "algorithm %s is not accepted (RS256, ES256 or EdDSA)", chiterr.Quote(a.alg.String()))
	}
	rules, err := s.rules(ctx)
	if err != nil {
		return nil, err
	}
	candidates := rules.byIssuer[a.issuer]
	if len(candidates) == 0 {
		return nil, refuse(CheckIssuer, "issuer %s is not trusted", chiterr.Quote(limit(a.issuer)))
	}
	// The signature, with the keys of each source the issuer's rules name
	// (one, nearly always); a rule whose keys do not verify it is out.
	verified := map[keySource]error{}
	var firstErr error
	var signed []*compiledRule
	for i := range candidates {
		rule := &candidates[i]
		err, done := verified[rule.keys]
		if !done {
			err = s.verify(ctx, rule.keys, a)
			verified[rule.keys] = err
		}
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		signed = append(signed, rule)
	}
	if len(signed) == 0 {
		return nil, firstErr
	}
	now := s.Now()
	times, err := s.checkTimes(a, now)
	if err != nil {
		return nil, err
	}
	// The rules' own checks: the first rule that accepts the assertion
	// wins; when none does, the refusal is the first rule's.
	var refusal error
	for _, rule := range signed {
		if err := checkRule(rule, a, times); err != nil {
			refusal = cmpErr(refusal, err)
			continue
		}
		return rule, nil
	}
	return nil, refusal
}

func cmpErr(first, next error) error {
	if first != nil {
		return first
	}
	return next
}

func (s *Service) verify(ctx context.Context, source keySource, a assertion) error {
	set, err := source.keys(ctx, a.kid)
	if err != nil {
		// The cause says what failed (a status, a size, a redirect, a
		// discovery document's jwks_uri); none of it is a secret.
		return refuse(CheckKeys, "the issuer's keys are unavailable: %s", err.Error())
	}
	key, found := set.LookupKeyID(a.kid)
	if a.kid == "" {
		found = set.Len() == 1
		if found {
			key, _ = set.Key(0)
		}
	}
	if !found {
		return refuse(CheckKeyID, "no key of the issuer has kid %s", chiterr.Quote(limit(a.kid)))
	}
	if alg := key.Algorithm().String(); alg != "" && alg != a.alg.String() {
		return refuse(CheckSignature, "the key %s is for %s, not %s", chiterr.Quote(limit(a.kid)), alg, a.alg)
	}
	if cached, ok := s.verified.get(string(a.raw)); ok && cached.key == key {
		return nil
	}
	if _, err := jws.Verify(a.raw, jws.WithKey(a.alg, key)); err != nil {
		return refuse(CheckSignature, "the signature does not verify with the issuer's key")
	}
	s.verified.put(a, key)
	return nil
}

// assertionTimes are an assertion's exp and iat (iat zero when absent).
type assertionTimes struct {
	expires, issued time.Time
	now             time.Time
}

func (s *Service) checkTimes(a assertion, now time.Time) (assertionTimes, error) {
	skew := s.cfg.ClockSkew
	exp, ok, err := a.time("exp")
	switch {
	case err != nil:
		return assertionTimes{}, err
	case !ok:
		return assertionTimes{}, refuse(CheckExpiry, "it has no exp")
	case !now.Before(exp.Add(skew)):
		return assertionTimes{}, refuse(CheckExpiry, "it expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if nbf, ok, err := a.time("nbf"); err != nil {
		return assertionTimes{}, err
	} else if ok && nbf.After(now.Add(skew)) {
		return assertionTimes{}, refuse(CheckNotBefore, "it is not valid before %s", nbf.UTC().Format(time.RFC3339))
	}
	iat, ok, err := a.time("iat")
	if err != nil {
		return assertionTimes{}, err
	}
	if ok && iat.After(now.Add(skew)) {
		return assertionTimes{}, refuse(CheckIssuedAt, "it was issued in the future (%s)", iat.UTC().Format(time.RFC3339))
	}
	return assertionTimes{expires: exp, issued: iat, now: now}, nil
}

// time reads a NumericDate claim (RFC 7519 §2).
func (a assertion) time(name string) (time.Time, bool, error) {
	value, present := a.claims[name]
	if !present {
		return time.Time{}, false, nil
	}
	number, ok := value.(json.Number)
	if !ok {
		return time.Time{}, false, malformed("%s is not a number", name)
	}
	seconds, err := number.Float64()
	if err != nil || math.IsNaN(seconds) || seconds < 0 || seconds > 1<<40 {
		return time.Time{}, false, malformed("%s is not a date", name)
	}
	whole, fraction := math.Modf(seconds)
	return time.Unix(int64(whole), int64(fraction*1e9)), true, nil
}

// checkRule makes rule's own checks: audience, lifetime and claims.
func checkRule(rule *compiledRule, a assertion, times assertionTimes) error {
	if !audienceHas(a.claims["aud"], rule.Audience) {
		return refuse(CheckAudience, "aud does not contain %s", chiterr.Quote(rule.Audience))
	}
	// Without iat, what is left of its life counts (a JWT-SVID may omit
	// iat).
	lifetime := times.expires.Sub(times.issued)
	if times.issued.IsZero() {
		lifetime = times.expires.Sub(times.now)
	}
	maxLifetime := rule.MaxAssertionLifetime
	if maxLifetime <= 0 {
		maxLifetime = DefaultMaxAssertionLifetime
	}
	if lifetime > maxLifetime {
		return refuse(CheckLifetime, "it lives %s, longer than the %s its rule allows", lifetime.Round(time.Second), maxLifetime)
	}
	for _, name := range sortedKeys(rule.Claims) {
		want := rule.Claims[name]
		got, ok := claimText(a.claims[name])
		if !ok {
			return refuse(CheckClaims, "claim %s is missing or not a string or number", chiterr.Quote(name))
		}
		if !claimMatches(want, got) {
			return refuse(CheckClaims, "claim %s does not match its rule", chiterr.Quote(name))
		}
	}
	if rule.SingleUse {
		if jti, _ := a.claims["jti"].(string); jti == "" {
			return refuse(CheckJTI, "its rule is single-use and it has no jti")
		}
	}
	return nil
}

func sortedKeys(claims map[string]string) []string {
	names := make([]string, 0, len(claims))
	for name := range claims {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// claimText is a claim compared as text: a string as it is, a number as
// written (GitLab's project_id and GitHub's ids are strings, but an issuer
// may send numbers), a boolean as true or false.
func claimText(value any) (string, bool) {
	switch v := value.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// audienceHas reports whether aud (a string or an array of them, RFC 7519
// §4.1.3) contains want.
func audienceHas(aud any, want string) bool {
	switch v := aud.(type) {
	case string:
		return v == want
	case []any:
		for _, item := range v {
			if item == want {
				return true
			}
		}
	}
	return false
}

// issue issues the rule's service account its access token, capped at the
// assertion's expiry, then, for a single-use rule, records the assertion:
// the token is returned only if this exchange recorded it first. Recording
// after issuing means an assertion refused by the service's grant policy
// (a scope it does not hold) is not spent; a token signed for a replay is
// dropped, never returned.
func (s *Service) issue(ctx context.Context, a assertion, rule *compiledRule, req ExchangeRequest) (tokens.Grant, error) {
	exp, _, _ := a.time("exp")
	if s.Tokens == nil {
		return tokens.Grant{}, errors.New("federation: no token service to issue with")
	}
	principal, err := s.Directory.LookupSubject(ctx, accounts.ServiceSubjectPrefix+rule.ServiceAccount)
	// Deleting the account deleted the rule, but the rules held in memory
	// may still have it until the next reread: an account created since
	// under the name is another one, which the rule was not written for.
	if errors.Is(err, storage.ErrNotFound) || (err == nil && !rule.CreatedAt.IsZero() && principal.CreatedAt.After(rule.CreatedAt)) {
		return tokens.Grant{}, refuse(CheckService, "its rule's service account no longer exists")
	}
	if err != nil {
		return tokens.Grant{}, err
	}
	grant, err := s.Tokens.IssueForClient(ctx, tokens.ClientRequest{Service: principal, Scope: req.Scope, Audience: req.Audience,
		NotAfter: exp, Grant: "jwt_bearer", Federated: true, Binding: req.Binding})
	if err != nil || !rule.SingleUse {
		return grant, err
	}
	jti, _ := a.claims["jti"].(string)
	// Remembered while it could be presented: until exp and the skew.
	err = s.Store.RecordAssertion(ctx, a.issuer, jti, exp.Add(s.cfg.ClockSkew))
	if errors.Is(err, storage.ErrConflict) {
		return tokens.Grant{}, refuse(CheckReplay, "it was exchanged already and its rule is single-use")
	}
	if err != nil {
		return tokens.Grant{}, fmt.Errorf("record assertion: %w", err)
	}
	return grant, nil
}
