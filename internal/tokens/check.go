package tokens

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/keys"
)

// checkPresentedToken refuses the token field of a request that names a
// token (revocation, introspection) when it is empty or over
// MaxTokenLength.
func checkPresentedToken(token string) error {
	switch {
	case token == "":
		return chiterr.New(chiterr.InvalidArgument, "token is required")
	case len(token) > MaxTokenLength:
		return chiterr.New(chiterr.InvalidArgument, "token is longer than %d bytes", MaxTokenLength)
	}
	return nil
}

// Claims describe a valid access token.
type Claims struct {
	Subject string
	Role    accounts.Role
	Scopes  []string
	// ClientID is the client the token was issued to: the service account
	// itself, or the client a person signed in through. Empty in tokens
	// issued before clients were recorded.
	ClientID  string
	Issuer    string
	Audience  []string
	ID        string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// FamilyID is the login the token belongs to; empty for client credentials.
	FamilyID string
	// AuthTime is when the subject proved who they are, for tokens issued
	// for a sign-in or client credentials; zero for those issued by a
	// refresh or for an API key.
	AuthTime time.Time
	// APIKeyID names the API key the token was exchanged for, if any.
	APIKeyID string
	// Actor is the acting party of a token issued by token exchange
	// (delegation); nil for others, and for an impersonation.
	Actor *Actor
	// subjectClient is the client the subject token of a token exchange
	// was issued to (SubjectClientClaim); "" for other tokens.
	subjectClient string
	// Binding is the key the token's holder must prove it holds (cnf):
	// zero for a bearer token.
	Binding Binding
	// mayAct is the subject of the token's may_act claim (RFC 8693 §4.4),
	// "" when it has none: only that party may exchange it.
	mayAct string
	// signedBy names the key that verified the token, so that a cached
	// verification ends when the key is removed.
	signedBy verifyingKey
	// issuedAtPrecisely is IssuedAt to the microsecond (IssuedAtMicrosClaim),
	// for comparing with revocations within the same second.
	issuedAtPrecisely time.Time
}

// verifyingKey is the key a token was verified with.
type verifyingKey struct {
	id string
	// provider is true for a provider's key: such tokens never authorize
	// calls to Chit, and the key is looked up again before a cached answer.
	provider bool
}

var (
	errMissingToken = chiterr.New(chiterr.Unauthenticated, "missing bearer token")
	errInvalidToken = chiterr.New(chiterr.Unauthenticated, "access token is invalid")
	errExpiredToken = chiterr.New(chiterr.Unauthenticated, "access token has expired")
	errRevokedToken = chiterr.New(chiterr.Unauthenticated, "access token has been revoked")
)

// Check verifies an access token signed by the server or by a provider's key
// (for CheckToken and introspection) and returns its claims. Only tokens for
// the server's own audience pass: a token minted for another service is
// verified by that service (pkg/verifier), so CheckToken never vouches for
// a token to a service it was not minted for.
func (s *Service) Check(ctx context.Context, accessToken string) (Claims, error) {
	return s.verify(ctx, accessToken, false, s.cfg.Audience)
}

// Authenticate verifies an access token that authorizes a call to Chit
// itself: signed by the server, never by a provider's key.
func (s *Service) Authenticate(ctx context.Context, accessToken string) (Claims, error) {
	return s.authenticate(ctx, accessToken, false)
}

func (s *Service) authenticate(ctx context.Context, accessToken string, fromStore bool) (Claims, error) {
	claims, err := s.verify(ctx, accessToken, fromStore, s.cfg.Audience)
	if err != nil {
		return Claims{}, err
	}
	if claims.signedBy.provider {
		return Claims{}, errInvalidToken
	}
	return claims, nil
}

// verify checks signature, issuer, times and revocation, and returns the
// claims. With revocationFromStore the revocations are read from the store,
// not from what this replica read within RevocationCacheTTL. Only a token
// addressed to audience passes: the server's own, or for a token exchange
// the exchanging service's id.
func (s *Service) verify(ctx context.Context, accessToken string, revocationFromStore bool, audience string) (Claims, error) {
	// A token checked before is not verified again: its signature and claims
	// cannot have changed. Its key can be removed, and it can be revoked:
	// both are checked every time. The cache is shared by every audience, so
	// the audience is checked on every answer it gives.
	claims, ok := s.verified.get(accessToken, s.Now().Add(-s.cfg.ClockSkew))
	if ok {
		if !s.keyStillTrusted(ctx, claims.signedBy) {
			return Claims{}, errInvalidToken
		}
		if !slices.Contains(claims.Audience, audience) {
			return Claims{}, chiterr.New(chiterr.Unauthenticated, "%s: aud does not name %s", errInvalidToken.Message, chiterr.Quote(audience))
		}
	} else {
		var err error
		if claims, err = s.parse(ctx, accessToken, audience); err != nil {
			return Claims{}, err
		}
		s.verified.put(accessToken, claims)
	}
	var client string
	if claims.ClientID != "" {
		client = accounts.ClientSubject(claims.ClientID)
	}
	revocation, err := s.revocations.get(ctx, claims.FamilyID, claims.Subject, client, revocationFromStore)
	if err != nil {
		return Claims{}, fmt.Errorf("check revocation: %w", err)
	}
	if revocation.FamilyRevoked || (!revocation.SubjectRevokedAt.IsZero() && !claims.issuedAtPrecisely.After(revocation.SubjectRevokedAt)) {
		return Claims{}, errRevokedToken
	}
	// An exchanged token ends with the client its subject signed in
	// through, as its subject token does.
	if claims.subjectClient != "" {
		revocation, err := s.revocations.get(ctx, "", accounts.ClientSubject(claims.subjectClient), "", revocationFromStore)
		if err != nil {
			return Claims{}, fmt.Errorf("check revocation of the subject's client: %w", err)
		}
		if !revocation.SubjectRevokedAt.IsZero() && !claims.issuedAtPrecisely.After(revocation.SubjectRevokedAt) {
			return Claims{}, errRevokedToken
		}
	}
	// An exchanged token ends with any service of its actor chain: deleting
	// one, or narrowing what it may exchange, refuses the tokens it acted
	// for. The chain is at most MaxActorDepth long.
	for actor := claims.Actor; actor != nil; actor = actor.Actor {
		revocation, err := s.revocations.get(ctx, "", actor.Subject, "", revocationFromStore)
		if err != nil {
			return Claims{}, fmt.Errorf("check revocation of actor: %w", err)
		}
		if !revocation.SubjectRevokedAt.IsZero() && !claims.issuedAtPrecisely.After(revocation.SubjectRevokedAt) {
			return Claims{}, errRevokedToken
		}
	}
	return claims, nil
}

// keyStillTrusted tells whether the key that verified a cached token is
// still published: the server's keys are in memory; a provider's is looked
// up again (within the revocation propagation time, see providerKeyCache).
func (s *Service) keyStillTrusted(ctx context.Context, key verifyingKey) bool {
	if !key.provider {
		_, ok := s.Keys.Lookup(key.id)
		return ok
	}
	_, ok := s.providerKeys.lookup(ctx, s.ProviderKeys, key.id)
	return ok
}

// parse verifies an access token's signature, issuer, audience and times.
func (s *Service) parse(ctx context.Context, accessToken, audience string) (Claims, error) {
	if accessToken == "" {
		return Claims{}, errMissingToken
	}
	if len(accessToken) > MaxTokenLength {
		return Claims{}, errInvalidToken
	}
	if err := checkPayloadShape(accessToken); err != nil {
		return Claims{}, chiterr.Wrap(chiterr.Unauthenticated, err, errInvalidToken.Message)
	}
	var signedBy verifyingKey
	serverKey := func(_ context.Context, kid string) (jwk.Key, bool) {
		key, ok := s.Keys.Lookup(kid)
		signedBy = verifyingKey{id: kid}
		return key, ok
	}
	providerKey := func(ctx context.Context, kid string) (jwk.Key, bool) {
		signedBy = verifyingKey{id: kid, provider: true}
		return s.providerKeys.lookup(ctx, s.ProviderKeys, kid)
	}
	// A kid neither knows may be a server key another replica activated
	// moments ago: the keys are read again, last, so that provider tokens
	// (found second) never cost a reload.
	newServerKey := func(ctx context.Context, kid string) (jwk.Key, bool) {
		key, ok := s.Keys.LookupContext(ctx, kid)
		signedBy = verifyingKey{id: kid}
		return key, ok
	}
	var typ string
	keyProvider := keys.KeyProvider(serverKey, providerKey, newServerKey)
	typed := jws.KeyProviderFunc(func(ctx context.Context, sink jws.KeySink, sig *jws.Signature, message *jws.Message) error {
		headers := sig.ProtectedHeaders()
		typ = headers.Type()
		if !keys.HasLowS(accessToken, headers.Algorithm()) {
			return errors.New("an ES256 signature must have the low s (a token has one encoding)")
		}
		return keyProvider.FetchKeys(ctx, sink, sig, message)
	})
	token, err := jwt.ParseString(accessToken,
		jwt.WithContext(ctx),
		jwt.WithKeyProvider(typed),
		jwt.WithValidate(true),
		jwt.WithIssuer(s.cfg.Issuer),
		jwt.WithAudience(audience),
		jwt.WithClock(jwt.ClockFunc(s.Now)),
		jwt.WithAcceptableSkew(s.cfg.ClockSkew),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.SubjectKey),
		jwt.WithRequiredClaim("role"),
	)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired()) {
			return Claims{}, errExpiredToken
		}
		return Claims{}, chiterr.Wrap(chiterr.Unauthenticated, err, errInvalidToken.Message)
	}
	role, hasRole := stringClaim(token, "role")
	if !hasRole {
		return Claims{}, chiterr.New(chiterr.Unauthenticated, "%s: role is not a string", errInvalidToken.Message)
	}
	if !keys.IsAccessTokenType(typ, hasRole) {
		// An ID token, or any other JWT signed with the same keys, is not
		// an access token.
		return Claims{}, chiterr.New(chiterr.Unauthenticated, "%s: typ %q is not an access token", errInvalidToken.Message, typ)
	}
	scope, _ := stringClaim(token, "scope")
	familyID, _ := stringClaim(token, FamilyClaim)
	clientID, _ := stringClaim(token, ClientIDClaim)
	apiKeyID, _ := stringClaim(token, APIKeyClaim)
	subjectClient, _ := stringClaim(token, SubjectClientClaim)
	var actor *Actor
	if raw, ok := token.Get(ActorClaim); ok {
		if actor, err = parseActor(raw, 1); err != nil {
			return Claims{}, chiterr.Wrap(chiterr.Unauthenticated, err, errInvalidToken.Message)
		}
	}
	var mayAct string
	if raw, ok := token.Get(MayActClaim); ok {
		allowed, err := parseActor(raw, 1)
		if err != nil {
			return Claims{}, chiterr.Wrap(chiterr.Unauthenticated, err, errInvalidToken.Message)
		}
		mayAct = allowed.Subject
	}
	binding, err := parseBinding(token)
	if err != nil {
		return Claims{}, err
	}
	var authTime time.Time
	if raw, ok := token.Get(AuthTimeClaim); ok {
		if seconds, ok := raw.(float64); ok && seconds > 0 {
			authTime = time.Unix(int64(seconds), 0)
		}
	}
	issuedAt := token.IssuedAt()
	issuedAtPrecisely := issuedAt
	if precise, ok := token.Get(IssuedAtMicrosClaim); ok {
		if micros, ok := precise.(float64); ok && time.UnixMicro(int64(micros)).Truncate(time.Second).Equal(issuedAt) {
			issuedAtPrecisely = time.UnixMicro(int64(micros))
		}
	}
	return Claims{
		AuthTime: authTime,
		APIKeyID: apiKeyID,
		Actor:    actor,
		Binding:  binding,
		mayAct:   mayAct,
		FamilyID: familyID,

		subjectClient: subjectClient,
		Subject:       token.Subject(),
		Role:          accounts.Role(role),
		Scopes:        strings.Fields(scope),
		ClientID:      clientID,
		Issuer:        token.Issuer(),
		Audience:      token.Audience(),
		ID:            token.JwtID(),
		IssuedAt:      issuedAt,
		ExpiresAt:     token.Expiration(),
		signedBy:      signedBy,

		issuedAtPrecisely: issuedAtPrecisely,
	}, nil
}

// IssuedAtMicrosClaim carries the issue time in microseconds: `iat` has
// whole seconds, and a revocation must tell a token issued just before it
// from one issued just after it within the same second.
const IssuedAtMicrosClaim = "iat_us"

func stringClaim(token jwt.Token, name string) (string, bool) {
	value, ok := token.Get(name)
	if !ok {
		return "", false
	}
	text, ok := value.(string)
	return text, ok
}
