package grants

import (
	"context"
	"slices"

	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/device"
	"github.com/chit-auth/chit/internal/federation"
	"github.com/chit-auth/chit/internal/tokens"
)

// Type names a grant: the grant_type of /oauth2/token.
type Type string

// The grants, by their RFC 6749 names (§4.1.3, §4.3, §4.4, §6) or, for
// Chit's own extension grant (§4.5), a URI of Chit's.
const (
	Password          Type = "password"
	RefreshToken      Type = "refresh_token"
	ClientCredentials Type = "client_credentials"
	AuthorizationCode Type = "authorization_code"
	// APIKey exchanges an API key (the api_key parameter) for an access
	// token. No client authenticates: the key is the credential.
	APIKey Type = "urn:chit:params:oauth:grant-type:api-key"
	// DeviceCode redeems an approved device authorization (RFC 8628 §3.4).
	DeviceCode Type = "urn:ietf:params:oauth:grant-type:device_code"
	// JWTBearer exchanges a JWT a trusted external issuer gave a workload
	// (the assertion parameter, RFC 7523 §2.1) for an access token of the
	// service account a federation rule maps it to. No client
	// authenticates: the assertion is the credential.
	JWTBearer Type = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// TokenExchange is RFC 8693 token exchange: a service account, the
	// client, exchanges a token addressed to it for one addressed to an
	// audience its policy allows.
	TokenExchange Type = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// Clients says who a grant's client is, and so how Issue authenticates it.
type Clients string

const (
	// OAuthClients: a registered client, one of Chit's own, or a service
	// account acting as its own client (accounts.Directory.AuthenticateClient).
	OAuthClients Clients = "oauth_client"
	// ServiceAccounts: the client is the service account the grant signs
	// in. A refused authentication is a failed sign-in (ClientRefusedError).
	ServiceAccounts Clients = "service_account"
	// NoClients: the grant's own credential is the whole credential; a
	// request that authenticates a client is refused.
	NoClients Clients = "none"
)

// Grant is one way of obtaining tokens. Every grant has this shape, so a
// new one (device code, token exchange, JWT bearer) is one more entry of
// table.
type Grant struct {
	Type Type
	// SubjectTokenType, when set, makes the entry answer only the requests
	// of Type with this subject_token_type (RFC 8693 §2.1), which then
	// decides who the client is: a token exchange of a workload's JWT has
	// none. The entry of Type without one answers the others.
	SubjectTokenType string
	// Client is who authenticates as the request's client.
	Client Clients
	// Authentications are the ways the client may prove who it is; a
	// request that authenticates another way is refused with refusedClient.
	Authentications []ClientAuthentication
	// Reads are the request parameters the grant reads. Issue clears the
	// others before the grant runs, so a grant cannot depend on a parameter
	// it does not declare.
	Reads []Parameter
	// Issues is what a success carries besides the access token; Issue
	// checks it.
	Issues Issues
	// refusedClient answers a request whose client authenticates in a way
	// the grant does not accept.
	refusedClient error
	issue         func(ctx context.Context, s *Service, client authenticated, req Request) (tokens.Grant, error)
}

// oauthClientAuthentications are how an OAuth client authenticates: a
// confidential one with its secret, a public one by its id, Chit's own by
// the transport that acts as them; none at all is Chit's API client.
var oauthClientAuthentications = []ClientAuthentication{NoClient, PublicClientID, ClientSecretBasic, ClientSecretPost, FirstParty}

// table is every grant, in the order discovery advertises them.
var table = []Grant{
	{
		Type:            Password,
		Client:          OAuthClients,
		Authentications: oauthClientAuthentications,
		Reads:           []Parameter{ParamUsername, ParamPassword, ParamScope, ParamResource},
		// A person's sign-in: an ID token when it was granted openid.
		Issues: Issues{RefreshToken: Always, IDToken: WithOpenID},
		issue: func(ctx context.Context, s *Service, client authenticated, req Request) (tokens.Grant, error) {
			return s.tokens.IssueForPassword(ctx, tokens.PasswordRequest{Client: client.client, Address: req.Address,
				Username: req.Username, Password: req.Password, Scope: req.Scope, Audience: req.Audience, Binding: req.Binding})
		},
	},
	{
		Type:            RefreshToken,
		Client:          OAuthClients,
		Authentications: oauthClientAuthentications,
		// resource is read to refuse it.
		Reads: []Parameter{ParamRefreshToken, ParamScope, ParamResource},
		// OIDC Core §12.2: a refresh of a login granted openid answers an ID
		// token too, as long as the new access token keeps openid.
		Issues: Issues{RefreshToken: Always, IDToken: WithOpenID},
		issue: func(ctx context.Context, s *Service, client authenticated, req Request) (tokens.Grant, error) {
			if req.Audience != "" {
				return tokens.Grant{}, errRefreshKeepsAudience
			}
			return s.tokens.Refresh(ctx, tokens.RefreshRequest{Client: client.client, RefreshToken: req.RefreshToken, Scope: req.Scope,
				Binding: req.Binding})
		},
	},
	{
		Type:   ClientCredentials,
		Client: ServiceAccounts,
		// In the body: the form's client_id and client_secret, or gRPC's
		// client_credential.
		Authentications: []ClientAuthentication{ClientSecretBasic, ClientSecretPost},
		Reads:           []Parameter{ParamScope, ParamResource},
		// It holds its secret and simply asks again (RFC 6749 §4.4.3).
		Issues:        Issues{RefreshToken: Never, IDToken: Never},
		refusedClient: &ClientRefusedError{Err: chiterr.New(chiterr.InvalidArgument, "client_id and client_secret are required")},
		issue: func(ctx context.Context, s *Service, client authenticated, req Request) (tokens.Grant, error) {
			return s.tokens.IssueForClient(ctx, tokens.ClientRequest{Service: client.service, Scope: req.Scope, Audience: req.Audience,
				Binding: req.Binding})
		},
	},
	{
		Type:            AuthorizationCode,
		Client:          OAuthClients,
		Authentications: oauthClientAuthentications,
		Reads:           []Parameter{ParamCode, ParamRedirectURI, ParamCodeVerifier, ParamResource},
		Issues:          Issues{RefreshToken: Always, IDToken: WithOpenID},
		issue: func(ctx context.Context, s *Service, client authenticated, req Request) (tokens.Grant, error) {
			return s.authorize.Exchange(ctx, authorize.CodeRequest{Client: client.client, Code: req.Code, RedirectURI: req.RedirectURI,
				CodeVerifier: req.CodeVerifier, Audience: req.Audience, Binding: req.Binding})
		},
	},
	{
		Type:            APIKey,
		Client:          NoClients,
		Authentications: []ClientAuthentication{NoClient},
		Reads:           []Parameter{ParamAPIKey, ParamScope, ParamResource},
		// The key itself is the long-lived credential.
		Issues:        Issues{RefreshToken: Never, IDToken: Never},
		refusedClient: chiterr.New(chiterr.InvalidArgument, "an API key is the whole credential: send no client authentication with it"),
		issue: func(ctx context.Context, s *Service, _ authenticated, req Request) (tokens.Grant, error) {
			return s.tokens.IssueForAPIKey(ctx, tokens.APIKeyRequest{Key: req.APIKey, Scope: req.Scope, Audience: req.Audience,
				Binding: req.Binding})
		},
	},
	{
		Type:            DeviceCode,
		Client:          OAuthClients,
		Authentications: oauthClientAuthentications,
		Reads:           []Parameter{ParamDeviceCode, ParamResource},
		// A person's sign-in on the verification page, as a code's.
		Issues: Issues{RefreshToken: Always, IDToken: WithOpenID},
		issue: func(ctx context.Context, s *Service, client authenticated, req Request) (tokens.Grant, error) {
			if s.device == nil {
				return tokens.Grant{}, ErrUnsupportedGrantType
			}
			return s.device.Poll(ctx, device.PollRequest{Client: client.client, DeviceCode: req.DeviceCode, Audience: req.Audience,
				Binding: req.Binding})
		},
	},
	{
		Type:            JWTBearer,
		Client:          NoClients,
		Authentications: []ClientAuthentication{NoClient},
		Reads:           []Parameter{ParamAssertion, ParamScope, ParamResource},
		// The workload asks again with its platform's next token; the
		// access token never outlives the assertion.
		Issues:        Issues{RefreshToken: Never, IDToken: Never},
		refusedClient: chiterr.New(chiterr.InvalidArgument, "an assertion is the whole credential: send no client authentication with it"),
		issue: func(ctx context.Context, s *Service, _ authenticated, req Request) (tokens.Grant, error) {
			if s.federation == nil {
				return tokens.Grant{}, chiterr.New(chiterr.InvalidArgument, "workload identity federation is not enabled")
			}
			return s.federation.Exchange(ctx, federation.ExchangeRequest{Assertion: req.Assertion, Scope: req.Scope, Audience: req.Audience,
				Binding: req.Binding})
		},
	},
	{
		Type:   TokenExchange,
		Client: ServiceAccounts,
		// The exchanging service authenticates as the client, as with
		// client credentials; it is the actor of the token it gets.
		Authentications: []ClientAuthentication{ClientSecretBasic, ClientSecretPost},
		Reads: []Parameter{ParamSubjectToken, ParamSubjectTokenType, ParamActorToken, ParamActorTokenType,
			ParamRequestedTokenType, ParamAudience, ParamResource, ParamScope},
		// An exchanged token ends with its subject token's: nothing renews it.
		Issues:        Issues{RefreshToken: Never, IDToken: Never},
		refusedClient: &ClientRefusedError{Err: chiterr.New(chiterr.InvalidArgument, "client_id and client_secret are required")},
		issue: func(ctx context.Context, s *Service, client authenticated, req Request) (tokens.Grant, error) {
			audience, err := exchangeAudience(req)
			if err != nil {
				return tokens.Grant{}, err
			}
			return s.tokens.IssueForExchange(ctx, tokens.ExchangeRequest{Service: client.service,
				SubjectToken: req.SubjectToken, SubjectTokenType: req.SubjectTokenType, RequestedTokenType: req.RequestedTokenType,
				ActorToken: req.ActorToken, ActorTokenType: req.ActorTokenType, Scope: req.Scope, Audience: audience,
				Binding: req.Binding})
		},
	},
	{
		// A workload's token exchange (RFC 8693 with a JWT of another
		// issuer, as cloud token services take one): the same federation
		// rules as the jwt-bearer grant. The subject token is the whole
		// credential, as the assertion is: the workload has no secret, so
		// no client authenticates.
		Type:             TokenExchange,
		SubjectTokenType: tokens.JWTTokenType,
		Client:           NoClients,
		Authentications:  []ClientAuthentication{NoClient},
		// actor_token is read to refuse it: nothing acts for a workload.
		Reads: []Parameter{ParamSubjectToken, ParamSubjectTokenType, ParamActorToken, ParamActorTokenType, ParamRequestedTokenType,
			ParamAudience, ParamResource, ParamScope},
		Issues:        Issues{RefreshToken: Never, IDToken: Never},
		refusedClient: chiterr.New(chiterr.InvalidArgument, "a workload's subject token is the whole credential: send no client authentication with it"),
		issue: func(ctx context.Context, s *Service, _ authenticated, req Request) (tokens.Grant, error) {
			if s.federation == nil {
				return tokens.Grant{}, chiterr.New(chiterr.InvalidArgument, "workload identity federation is not enabled")
			}
			if req.RequestedTokenType != "" && req.RequestedTokenType != tokens.AccessTokenType {
				return tokens.Grant{}, chiterr.New(chiterr.InvalidArgument, "requested_token_type %s is not supported: only %s",
					chiterr.Quote(req.RequestedTokenType), tokens.AccessTokenType)
			}
			if req.ActorToken != "" || req.ActorTokenType != "" {
				return tokens.Grant{}, chiterr.New(chiterr.InvalidArgument, "actor_token is not accepted with a workload's subject token: the workload acts for itself")
			}
			audience, err := exchangeAudience(req)
			if err != nil {
				return tokens.Grant{}, err
			}
			grant, err := s.federation.Exchange(ctx, federation.ExchangeRequest{Assertion: req.SubjectToken, Scope: req.Scope, Audience: audience,
				Binding: req.Binding})
			if err != nil {
				return tokens.Grant{}, err
			}
			grant.IssuedTokenType = tokens.AccessTokenType
			return grant, nil
		},
	},
}

// exchangeAudience is the one audience a token exchange names, by
// audience, resource (RFC 8693 §2.1) or both alike.
func exchangeAudience(req Request) (string, error) {
	if req.ExchangeAudience != "" && req.Audience != "" && req.ExchangeAudience != req.Audience {
		return "", chiterr.New(chiterr.InvalidArgument, "audience and resource name different audiences: a token carries one").WithReason(chiterr.ReasonInvalidTarget)
	}
	if req.ExchangeAudience != "" {
		return req.ExchangeAudience, nil
	}
	return req.Audience, nil
}

var errRefreshKeepsAudience = chiterr.New(chiterr.InvalidArgument, "a refresh keeps the login's audience; resource is not accepted").WithReason(chiterr.ReasonInvalidTarget)

// Types are the grant types of the table, in its order: what
// /oauth2/token accepts and discovery advertises.
func Types() []string {
	var names []string
	for _, grant := range table {
		if !slices.Contains(names, string(grant.Type)) {
			names = append(names, string(grant.Type))
		}
	}
	return names
}

// TokenEndpointAuthMethods are the client authentications some grant of
// the table accepts from a registered client, by their RFC 8414 names: what
// discovery advertises. (An absent or first-party authentication is not a
// registered client's.)
func TokenEndpointAuthMethods() []string {
	var methods []string
	for _, method := range []struct {
		authentication ClientAuthentication
		name           string
	}{{ClientSecretBasic, "client_secret_basic"}, {ClientSecretPost, "client_secret_post"}, {PublicClientID, "none"}} {
		for _, grant := range table {
			if slices.Contains(grant.Authentications, method.authentication) {
				methods = append(methods, method.name)
				break
			}
		}
	}
	return methods
}

// lookup is the entry of the table that answers req: the one of its type
// for its subject_token_type when the type has such entries, else the
// type's plain entry.
func lookup(req Request) (Grant, bool) {
	var plain *Grant
	for i, grant := range table {
		switch {
		case grant.Type != req.Type:
		case grant.SubjectTokenType != "" && grant.SubjectTokenType == req.SubjectTokenType:
			return grant, true
		case grant.SubjectTokenType == "" && plain == nil:
			plain = &table[i]
		}
	}
	if plain == nil {
		return Grant{}, false
	}
	return *plain, true
}
