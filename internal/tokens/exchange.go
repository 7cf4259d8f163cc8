package tokens

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
)

// Token type URIs of token exchange (RFC 8693 §3).
const (
	AccessTokenType = "urn:ietf:params:oauth:token-type:access_token"
	// JWTTokenType is a JWT from another issuer: workload federation, which
	// the grant routes elsewhere (internal/grants).
	JWTTokenType = "urn:ietf:params:oauth:token-type:jwt"
)

// ExchangeRequest is a service's exchange of a token addressed to it for
// one addressed to another audience (RFC 8693).
type ExchangeRequest struct {
	// Service is the exchanging service account, authenticated with its
	// secret (accounts.Directory.AuthenticateService).
	Service accounts.Principal
	// SubjectToken is a Chit access token whose aud is Service's client id.
	SubjectToken     string
	SubjectTokenType string
	// RequestedTokenType is AccessTokenType or "" (the same).
	RequestedTokenType string
	// ActorToken, when sent, must be an access token of Service itself
	// (client credentials, Chit's audience): the client already proved who
	// acts, so another actor is refused.
	ActorToken     string
	ActorTokenType string
	// Scope narrows the subject token's scopes ("" keeps them all).
	Scope string
	// Audience is the audience to exchange for; "" is the server's own,
	// which, like any other, the service's policy must name.
	Audience string
	// Binding is the key the exchanged token is bound to: the exchanging
	// service's proof, whatever bound the subject token (which the service
	// was shown, and cannot prove it holds the key of).
	Binding Binding
}

var (
	errExchangeRefreshToken = chiterr.New(chiterr.Unauthenticated, "subject_token is a refresh token: only access tokens are exchanged")
	errExchangeAPIKey       = chiterr.New(chiterr.Unauthenticated, "subject_token is an API key: only access tokens are exchanged")
	errExchangeOwnAudience  = chiterr.New(chiterr.Unauthenticated, "subject_token is addressed to Chit itself: only a token addressed to the exchanging service is exchanged")
	errExchangeAdmin        = chiterr.New(chiterr.Unauthenticated, "subject_token carries the ADMIN role: an admin's token is never exchanged")
	errExchangeProvider     = chiterr.New(chiterr.Unauthenticated, "subject_token is a provider's: only tokens Chit issued to people and services are exchanged")
	errExchangeFromAPIKey   = chiterr.New(chiterr.Unauthenticated, "subject_token was issued for an API key: only tokens of a sign-in or client credentials are exchanged")
)

// issueForExchange is token exchange (RFC 8693): it verifies the subject
// token (a Chit access token addressed to the exchanging service, not
// revoked, read from the store), checks the service's policy, and issues an
// access token for the same subject and role, addressed to req.Audience,
// with the subject token's scopes or fewer, expiring no later than it, and
// carrying its login (fid) so that ending the login ends it too. A
// delegation's act names the service, nesting the subject token's act;
// an impersonation (the service's policy) keeps the subject token's act.
// It returns the subject's sub beside the grant, for the audit line.
func (s *Service) issueForExchange(ctx context.Context, req ExchangeRequest) (Grant, string, error) {
	service := req.Service
	if service.Role != accounts.RoleService {
		return Grant{}, "", chiterr.New(chiterr.PermissionDenied, "token exchange is for service accounts, not %s %q", service.Role, service.Subject).WithReason(chiterr.ReasonUnauthorizedClient)
	}
	if req.RequestedTokenType != "" && req.RequestedTokenType != AccessTokenType {
		return Grant{}, "", chiterr.New(chiterr.InvalidArgument, "requested_token_type %s is not supported: only %s", chiterr.Quote(req.RequestedTokenType), AccessTokenType)
	}
	switch {
	case req.SubjectToken == "":
		return Grant{}, "", chiterr.New(chiterr.InvalidArgument, "subject_token is required")
	case len(req.SubjectToken) > MaxTokenLength:
		return Grant{}, "", chiterr.New(chiterr.InvalidArgument, "subject_token is longer than %d bytes", MaxTokenLength)
	case req.SubjectTokenType == "":
		return Grant{}, "", chiterr.New(chiterr.InvalidArgument, "subject_token_type is required")
	case req.SubjectTokenType != AccessTokenType:
		return Grant{}, "", chiterr.New(chiterr.InvalidArgument, "subject_token_type %s is not supported: only %s", chiterr.Quote(req.SubjectTokenType), AccessTokenType)
	}
	requested, err := accounts.ParseScope(req.Scope)
	if err != nil {
		return Grant{}, "", err
	}
	policy := service.TokenExchange
	if len(policy.Audiences) == 0 {
		return Grant{}, "", chiterr.New(chiterr.PermissionDenied, "%s may not exchange tokens: an admin allows it (service set-token-exchange)", service.Subject).WithReason(chiterr.ReasonUnauthorizedClient)
	}
	audience := req.Audience
	if audience == "" {
		audience = s.cfg.Audience
	}
	if len(audience) > accounts.MaxAudienceLength {
		return Grant{}, "", chiterr.New(chiterr.InvalidArgument, "audience is longer than %d characters", accounts.MaxAudienceLength).WithReason(chiterr.ReasonInvalidTarget)
	}
	if !slices.Contains(policy.Audiences, audience) {
		return Grant{}, "", chiterr.New(chiterr.InvalidArgument, "%s may not exchange tokens for audience %s", service.Subject, chiterr.Quote(audience)).WithReason(chiterr.ReasonInvalidTarget)
	}
	if err := s.refuseClientAudience(ctx, audience); err != nil {
		return Grant{}, "", err
	}
	if err := s.checkActorToken(ctx, service, req.ActorToken, req.ActorTokenType); err != nil {
		return Grant{}, "", err
	}
	subject, err := s.verifySubjectToken(ctx, service, req.SubjectToken)
	if err != nil {
		return Grant{}, "", err
	}
	actor := subject.Actor
	if !policy.Impersonation {
		actor = &Actor{Subject: service.Subject, Actor: subject.Actor}
	}
	if actor.Depth() > MaxActorDepth {
		return Grant{}, "", chiterr.New(chiterr.Unauthenticated, "subject_token's actor chain is %d long already: an exchange may make it at most %d", subject.Actor.Depth(), MaxActorDepth)
	}
	scopes := subject.Scopes
	if len(requested) > 0 {
		for _, scope := range requested {
			if !slices.Contains(subject.Scopes, scope) {
				return Grant{}, "", chiterr.New(chiterr.InvalidArgument, "scope %q is not among the subject token's: an exchange only narrows", scope).WithReason(chiterr.ReasonInvalidScope)
			}
		}
		scopes = requested
	}
	// The token counts as issued when the service's record was read, as a
	// client-credentials token does: a narrowing of its policy committed
	// since refuses it.
	issuedAt := s.Now()
	if !service.ReadAt.IsZero() && service.ReadAt.Before(issuedAt) {
		issuedAt = service.ReadAt
	}
	expiresAt := earliest(issuedAt.Add(s.cfg.AccessTokenTTL), subject.ExpiresAt)
	if !expiresAt.After(issuedAt) {
		return Grant{}, "", errExpiredToken
	}
	// The role is the subject token's (USER or SERVICE, never ADMIN); the
	// client is the exchanging service, whose revocations (client:ID) end the
	// token too, impersonated or not.
	grantee := accounts.Grantee{Principal: accounts.Principal{Subject: subject.Subject, Role: subject.Role}, Client: accounts.Client{ID: service.Name, Service: true,
		RequireDPoP: service.RequireDPoP}}
	// The client the subject signed in through (the first of a chain's):
	// ending or narrowing it refuses this token too.
	subjectClient := subject.subjectClient
	if subjectClient == "" {
		subjectClient = subject.ClientID
	}
	access, err := s.signAccess(accessToken{grantee: grantee, scopes: scopes, audience: audience, familyID: subject.FamilyID,
		issuedAt: issuedAt, expiresAt: expiresAt, actor: actor, subjectClient: subjectClient, binding: req.Binding})
	if err != nil {
		return Grant{}, "", err
	}
	s.Events.TokenIssued("token_exchange")
	return Grant{AccessToken: access, ExpiresIn: expiresAt.Sub(s.Now()).Truncate(time.Second), Scope: strings.Join(scopes, " "), IssuedTokenType: AccessTokenType,
		TokenType: req.Binding.TokenType()}, subject.Subject, nil
}

// verifySubjectToken checks the subject token of an exchange by service:
// an access token Chit signed, addressed to the service (and not to Chit),
// of a person or a service, not revoked as the store says now (an exchange
// must not outlive a revocation this replica has not seen yet), and, when
// it has may_act, allowing the service to act.
func (s *Service) verifySubjectToken(ctx context.Context, service accounts.Principal, token string) (Claims, error) {
	switch {
	case strings.HasPrefix(token, RefreshTokenPrefix):
		return Claims{}, errExchangeRefreshToken
	case strings.HasPrefix(token, APIKeyPrefix):
		return Claims{}, errExchangeAPIKey
	}
	claims, err := s.verify(ctx, token, true, service.Name)
	if err != nil {
		if chiterr.KindOf(err) == chiterr.Unauthenticated {
			return Claims{}, chiterr.Wrap(chiterr.Unauthenticated, err, "subject_token is not a valid access token addressed to "+chiterr.Quote(service.Name)+": "+chiterr.PublicMessage(err))
		}
		return Claims{}, err
	}
	switch {
	case claims.signedBy.provider || claims.Role == accounts.RoleProvider:
		return Claims{}, errExchangeProvider
	case slices.Contains(claims.Audience, s.cfg.Audience):
		return Claims{}, errExchangeOwnAudience
	case claims.Role == accounts.RoleAdmin:
		return Claims{}, errExchangeAdmin
	case claims.Role != accounts.RoleUser && claims.Role != accounts.RoleService:
		return Claims{}, chiterr.New(chiterr.Unauthenticated, "subject_token's role %q is not exchanged", claims.Role)
	case claims.APIKeyID != "":
		return Claims{}, errExchangeFromAPIKey
	case claims.mayAct != "" && claims.mayAct != service.Subject:
		// RFC 8693 §4.4: the subject token names who may act for it.
		return Claims{}, chiterr.New(chiterr.Unauthenticated, "subject_token's may_act does not name %s", service.Subject)
	}
	return claims, nil
}

// checkActorToken accepts an absent actor token, or one that is the
// exchanging service's own access token: the service authenticated as the
// client, so it is the actor (RFC 8693 §1.1), and naming another is
// refused rather than recorded.
func (s *Service) checkActorToken(ctx context.Context, service accounts.Principal, token, tokenType string) error {
	switch {
	case token == "" && tokenType == "":
		return nil
	case token == "":
		return chiterr.New(chiterr.InvalidArgument, "actor_token_type is sent without actor_token")
	case tokenType == "":
		return chiterr.New(chiterr.InvalidArgument, "actor_token_type is required with actor_token")
	case tokenType != AccessTokenType:
		return chiterr.New(chiterr.InvalidArgument, "actor_token_type %s is not supported: only %s", chiterr.Quote(tokenType), AccessTokenType)
	case len(token) > MaxTokenLength:
		return chiterr.New(chiterr.InvalidArgument, "actor_token is longer than %d bytes", MaxTokenLength)
	}
	claims, err := s.Authenticate(ctx, token)
	if err != nil {
		if chiterr.KindOf(err) == chiterr.Unauthenticated {
			return chiterr.Wrap(chiterr.Unauthenticated, err, "actor_token is not a valid access token: "+chiterr.PublicMessage(err))
		}
		return err
	}
	if claims.Subject != service.Subject || claims.Actor != nil {
		return chiterr.New(chiterr.Unauthenticated, "actor_token must be the authenticated service's own access token, not %s's", chiterr.Quote(claims.Subject))
	}
	return nil
}

// refuseClientAudience refuses to address an exchanged token to a
// registered OAuth client. Such a token would carry the person's sub and
// the client's id as its aud, as the client's ID tokens do, and a relying
// party that does not check typ would take it for one: the exchanging
// service could sign in to that client as the person. An exchange policy
// may name an id that becomes a client's later, so the check is made at
// each exchange, not only when the policy is set.
func (s *Service) refuseClientAudience(ctx context.Context, audience string) error {
	if audience == s.cfg.Audience || s.Directory == nil {
		return nil
	}
	client, err := s.Directory.IsRegisteredClient(ctx, audience)
	switch {
	case err != nil:
		return err
	case client:
		return chiterr.New(chiterr.InvalidArgument, "audience %s is an OAuth client: an exchanged token is never addressed to one", chiterr.Quote(audience)).WithReason(chiterr.ReasonInvalidTarget)
	}
	return nil
}
