package grpcapi

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/clientaddr"
	"github.com/chit-auth/chit/internal/device"
	"github.com/chit-auth/chit/internal/grants"
	"github.com/chit-auth/chit/internal/paging"
	"github.com/chit-auth/chit/internal/possession"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/tokens"
)

// REST paths clients are told about in GetAuthStatus; they mirror
// proto/chit/auth/v1/auth_api.yaml.
const (
	TokenPath        = "/v1/auth/token"
	RefreshTokenPath = "/v1/auth/token/refresh"
	JWKSPath         = "/.well-known/jwks.json"
	RevokePath       = "/v1/auth/revoke"
	CheckPath        = "/v1/auth/check"
)

// The AuthService RPCs act as Chit's own first-party clients: Token,
// RefreshToken and Revoke as the API client, LoginCli and RefreshCli as the
// CLI. A refresh token refreshes only through the client it was issued to.
var (
	apiClient = grants.FirstPartyClient(accounts.APIClientID)
	cliClient = grants.FirstPartyClient(accounts.CLIClientID)
	// apiRevoker is the API client, as Revoke authenticates it.
	apiRevoker = accounts.FirstPartyClient(accounts.APIClientID)
)

// AuthServer serves chit.auth.v1.AuthService over the token core.
type AuthServer struct {
	authv1.UnimplementedAuthServiceServer
	tokens    *tokens.Service
	authorize *authorize.Service
	grants    *grants.Service
	device    *device.Service
	pages     *paging.Tokens
	// possession checks the DPoP proofs and client certificates of calls.
	possession *possession.Verifier
}

// issue runs req's grant bound to what the call to method proves it holds
// (a DPoP proof for method's documented URL, its client certificate).
func (s *AuthServer) issue(ctx context.Context, method string, req grants.Request) (tokens.Grant, error) {
	binding, err := s.possession.Call(ctx, method, "", possession.TokenRequest)
	if err != nil {
		return tokens.Grant{}, err
	}
	req.Binding = binding
	return s.grants.Issue(ctx, req)
}

var _ authv1.AuthServiceServer = (*AuthServer)(nil)

// NewAuthServer returns the AuthService handlers over deps.Tokens,
// deps.Authorize and deps.Grants.
func NewAuthServer(deps Dependencies) *AuthServer {
	return &AuthServer{tokens: deps.Tokens, authorize: deps.Authorize, pages: deps.Pages, grants: deps.Grants, device: deps.Device,
		possession: deps.Possession}
}

func (s *AuthServer) Token(ctx context.Context, req *authv1.TokenRequest) (*authv1.TokenResponse, error) {
	issue := grants.Request{Address: clientaddr.From(ctx), Scope: req.GetScope(), Audience: req.GetAudience()}
	switch credential := req.GetCredential().(type) {
	case *authv1.TokenRequest_PasswordCredential:
		issue.Type, issue.Client = grants.Password, apiClient
		issue.Username, issue.Password = credential.PasswordCredential.GetUsername(), credential.PasswordCredential.GetPassword()
	case *authv1.TokenRequest_ClientCredential:
		issue.Type = grants.ClientCredentials
		issue.Client = grants.Client{Authentication: grants.ClientSecretPost,
			ID: credential.ClientCredential.GetClientId(), Secret: credential.ClientCredential.GetClientSecret()}
	case *authv1.TokenRequest_ApiKeyCredential:
		issue.Type, issue.Client = grants.APIKey, grants.Client{Authentication: grants.NoClient}
		issue.APIKey = credential.ApiKeyCredential.GetApiKey()
	case *authv1.TokenRequest_FederatedCredential:
		issue.Type, issue.Client = grants.JWTBearer, grants.Client{Authentication: grants.NoClient}
		issue.Assertion = credential.FederatedCredential.GetAssertion()
	case *authv1.TokenRequest_TokenExchangeCredential:
		exchange := credential.TokenExchangeCredential
		issue.Type = grants.TokenExchange
		// A workload exchanging its platform's JWT has no client to name.
		issue.Client = grants.PresentedClient(exchange.GetClientId(), exchange.GetClientSecret(), false)
		issue.SubjectToken, issue.SubjectTokenType = exchange.GetSubjectToken(), exchange.GetSubjectTokenType()
		issue.RequestedTokenType = exchange.GetRequestedTokenType()
	default:
		return nil, chiterr.New(chiterr.InvalidArgument, "a credential is required: password_credential, client_credential, api_key_credential, federated_credential or token_exchange_credential")
	}
	grant, err := s.issue(ctx, authv1.AuthService_Token_FullMethodName, issue)
	if err != nil {
		return nil, err
	}
	return tokenResponse(grant), nil
}

func (s *AuthServer) RefreshToken(ctx context.Context, req *authv1.RefreshTokenRequest) (*authv1.TokenResponse, error) {
	grant, err := s.issue(ctx, authv1.AuthService_RefreshToken_FullMethodName,
		grants.Request{Type: grants.RefreshToken, Client: apiClient, RefreshToken: req.GetRefreshToken(), Scope: req.GetScope()})
	if err != nil {
		return nil, err
	}
	return tokenResponse(grant), nil
}

func (s *AuthServer) CheckToken(ctx context.Context, _ *authv1.CheckTokenRequest) (*authv1.CheckTokenResponse, error) {
	claims, err := checkCaller(ctx, s.tokens.Check, s.possession, authv1.AuthService_CheckToken_FullMethodName)
	if err != nil {
		return nil, err
	}
	return &authv1.CheckTokenResponse{
		Subject:   claims.Subject,
		Role:      string(claims.Role),
		Scopes:    claims.Scopes,
		ExpiresAt: timestamppb.New(claims.ExpiresAt),
		IssuedAt:  timestamppb.New(claims.IssuedAt),
		Issuer:    claims.Issuer,
		Audience:  claims.Audience,
		TokenId:   claims.ID,
		Actor:     actorMessage(claims.Actor),
	}, nil
}

// actorMessage is a token's act claim (RFC 8693 §4.1), nested as it is.
func actorMessage(actor *tokens.Actor) *authv1.Actor {
	if actor == nil {
		return nil
	}
	return &authv1.Actor{Subject: actor.Subject, Actor: actorMessage(actor.Actor)}
}

func (s *AuthServer) GetAuthStatus(context.Context, *authv1.GetAuthStatusRequest) (*authv1.GetAuthStatusResponse, error) {
	cfg := s.tokens.Config()
	return &authv1.GetAuthStatusResponse{
		IsEnabled:        true,
		Issuer:           cfg.Issuer,
		TokenPath:        TokenPath,
		RefreshTokenPath: RefreshTokenPath,
		JwksPath:         JWKSPath,
		Audience:         cfg.Audience,
	}, nil
}

func (s *AuthServer) GetAuthorizeUrl(ctx context.Context, req *authv1.GetAuthorizeUrlRequest) (*authv1.GetAuthorizeUrlResponse, error) {
	url, err := s.authorize.AuthorizeURL(ctx, authorize.Request{
		ClientID:            req.GetClientId(),
		RedirectURI:         req.GetRedirectUri(),
		State:               req.GetState(),
		Scope:               req.GetScope(),
		CodeChallenge:       req.GetCodeChallenge(),
		CodeChallengeMethod: req.GetCodeChallengeMethod(),
		Nonce:               req.GetNonce(),
	})
	if err != nil {
		return nil, err
	}
	return &authv1.GetAuthorizeUrlResponse{Url: url}, nil
}

func (s *AuthServer) LoginCli(ctx context.Context, req *authv1.LoginCliRequest) (*authv1.LoginCliResponse, error) {
	grant, err := s.issue(ctx, authv1.AuthService_LoginCli_FullMethodName, grants.Request{Type: grants.AuthorizationCode, Client: cliClient,
		Code: req.GetCode(), RedirectURI: req.GetRedirectUri(), CodeVerifier: req.GetCodeVerifier()})
	if err != nil {
		return nil, err
	}
	return &authv1.LoginCliResponse{AccessToken: accessToken(grant)}, nil
}

func (s *AuthServer) RefreshCli(ctx context.Context, req *authv1.RefreshCliRequest) (*authv1.RefreshCliResponse, error) {
	grant, err := s.issue(ctx, authv1.AuthService_RefreshCli_FullMethodName,
		grants.Request{Type: grants.RefreshToken, Client: cliClient, RefreshToken: req.GetRefreshToken()})
	if err != nil {
		return nil, err
	}
	return &authv1.RefreshCliResponse{AccessToken: accessToken(grant)}, nil
}

// StartDeviceLogin starts a device authorization as the CLI's client.
func (s *AuthServer) StartDeviceLogin(ctx context.Context, req *authv1.StartDeviceLoginRequest) (*authv1.StartDeviceLoginResponse, error) {
	if s.device == nil {
		return nil, status.Error(codes.Unimplemented, "device authorization is not enabled")
	}
	started, err := s.device.Start(ctx, device.StartRequest{Client: accounts.FirstPartyClient(accounts.CLIClientID),
		Scope: req.GetScope(), Address: clientaddr.From(ctx)})
	if err != nil {
		return nil, err
	}
	return &authv1.StartDeviceLoginResponse{DeviceCode: started.DeviceCode, UserCode: started.UserCode,
		VerificationUri: started.VerificationURI, VerificationUriComplete: started.VerificationURIComplete,
		ExpiresIn: int64(started.ExpiresIn.Seconds()), Interval: int64(started.Interval.Seconds())}, nil
}

// PollDeviceLogin is the device code grant of the table, as the CLI.
func (s *AuthServer) PollDeviceLogin(ctx context.Context, req *authv1.PollDeviceLoginRequest) (*authv1.PollDeviceLoginResponse, error) {
	grant, err := s.issue(ctx, authv1.AuthService_PollDeviceLogin_FullMethodName,
		grants.Request{Type: grants.DeviceCode, Client: cliClient, DeviceCode: req.GetDeviceCode()})
	if err != nil {
		return nil, err
	}
	return &authv1.PollDeviceLoginResponse{AccessToken: accessToken(grant)}, nil
}

// accessToken is the Neosync AccessToken message of a grant; the optional
// fields stay unset when the grant has none.
func accessToken(grant tokens.Grant) *authv1.AccessToken {
	message := &authv1.AccessToken{
		AccessToken: grant.AccessToken,
		ExpiresIn:   int64(grant.ExpiresIn.Seconds()),
		Scope:       grant.Scope,
		TokenType:   grant.TokenType,
	}
	if grant.RefreshToken != "" {
		message.RefreshToken = &grant.RefreshToken
	}
	if grant.IDToken != "" {
		message.IdToken = &grant.IDToken
	}
	return message
}

func tokenResponse(grant tokens.Grant) *authv1.TokenResponse {
	return &authv1.TokenResponse{
		AccessToken:  grant.AccessToken,
		RefreshToken: grant.RefreshToken,
		ExpiresIn:    int64(grant.ExpiresIn.Seconds()),
		TokenType:    grant.TokenType,
		Scope:        grant.Scope,
		IdToken:      grant.IDToken,
		// RFC 8693 §2.2.1: a token exchange says what it issued.
		IssuedTokenType: grant.IssuedTokenType,
	}
}

func (s *AuthServer) Revoke(ctx context.Context, req *authv1.RevokeRequest) (*authv1.RevokeResponse, error) {
	if req.GetToken() != "" {
		if req.GetSubject() != "" {
			return nil, chiterr.New(chiterr.InvalidArgument, "send token or subject, not both")
		}
		if err := s.tokens.Revoke(ctx, apiRevoker, req.GetToken()); err != nil {
			return nil, err
		}
		return &authv1.RevokeResponse{}, nil
	}
	// Ending someone else's sessions is an admin's power: the caller is read
	// from the store, as for the Admin API.
	caller, err := s.tokens.AuthenticateCurrent(ctx, bearerToken(ctx))
	if err != nil {
		return nil, err
	}
	if err := s.tokens.RevokeSessions(ctx, caller, req.GetSubject()); err != nil {
		return nil, err
	}
	return &authv1.RevokeResponse{}, nil
}

func (s *AuthServer) CreateApiKey(ctx context.Context, req *authv1.CreateApiKeyRequest) (*authv1.CreateApiKeyResponse, error) {
	caller, _ := CallerFrom(ctx)
	var lifetime time.Duration
	if req.GetTtl() != nil {
		if err := req.GetTtl().CheckValid(); err != nil {
			return nil, chiterr.New(chiterr.InvalidArgument, "ttl: %v", err)
		}
		if lifetime = req.GetTtl().AsDuration(); lifetime <= 0 {
			return nil, chiterr.New(chiterr.InvalidArgument, "ttl must be positive")
		}
	}
	key, record, err := s.tokens.CreateAPIKey(ctx, caller, tokens.NewAPIKey{Name: req.GetName(), Scopes: req.GetScopes(), Lifetime: lifetime})
	if err != nil {
		return nil, err
	}
	return &authv1.CreateApiKeyResponse{ApiKey: APIKeyMessage(record), Key: key}, nil
}

func (s *AuthServer) ListApiKeys(ctx context.Context, req *authv1.ListApiKeysRequest) (*authv1.ListApiKeysResponse, error) {
	caller, _ := CallerFrom(ctx)
	keys, next, err := listAPIKeys(ctx, s.tokens, s.pages, caller.Subject, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &authv1.ListApiKeysResponse{ApiKeys: keys, NextPageToken: next}, nil
}

func (s *AuthServer) RevokeApiKey(ctx context.Context, req *authv1.RevokeApiKeyRequest) (*authv1.RevokeApiKeyResponse, error) {
	caller, _ := CallerFrom(ctx)
	// A person revokes their own keys here, whatever their role; an admin
	// revokes anyone's through the Admin API.
	caller.Role = accounts.RoleUser
	if err := s.tokens.RevokeAPIKey(ctx, caller, req.GetId()); err != nil {
		return nil, err
	}
	return &authv1.RevokeApiKeyResponse{}, nil
}

// listAPIKeys is one page of subject's API keys, for its owner or an admin.
func listAPIKeys(ctx context.Context, tokenService *tokens.Service, pages *paging.Tokens, subject string, size int32, token string) ([]*authv1.ApiKey, string, error) {
	return paging.List(ctx, pages, "api-keys:"+subject, paging.Request{Size: size, Token: token},
		func(page storage.Page) ([]storage.APIKey, error) { return tokenService.ListAPIKeys(ctx, subject, page) },
		func(key storage.APIKey) string { return key.ID }, APIKeyMessage)
}

// APIKeyMessage describes an API key without its secret.
func APIKeyMessage(record storage.APIKey) *authv1.ApiKey {
	return &authv1.ApiKey{Id: record.ID, Name: record.Name, Scopes: record.Scopes, Subject: record.Subject,
		CreateTime: timestamppb.New(record.CreatedAt), ExpireTime: timestamppb.New(record.ExpiresAt)}
}
