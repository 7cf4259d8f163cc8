package grpcapi

import (
	"context"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/providers"
)

// ProvidersServer serves chit.auth.v1.AuthProviders over the provider core.
type ProvidersServer struct {
	authv1.UnimplementedAuthProvidersServer
	providers *providers.Service
}

var _ authv1.AuthProvidersServer = (*ProvidersServer)(nil)

// NewProvidersServer returns the AuthProviders handlers over deps.Providers.
func NewProvidersServer(deps Dependencies) *ProvidersServer {
	return &ProvidersServer{providers: deps.Providers}
}

// collect maps the items of a bulk request to what the core takes.
func collect[T any, V any](items []T, field func(T) V) []V {
	values := make([]V, len(items))
	for i, item := range items {
		values[i] = field(item)
	}
	return values
}

func (s *ProvidersServer) Register(ctx context.Context, req *authv1.AuthProvidersRegisterRequest) (*authv1.AuthProvidersRegisterResponse, error) {
	claimTokens, err := s.providers.Register(ctx, providerCaller(ctx), collect(req.GetItems(), (*authv1.AuthProvidersRegisterRequestItem).GetId))
	if err != nil {
		return nil, err
	}
	return &authv1.AuthProvidersRegisterResponse{Responses: collect(claimTokens, func(token string) *authv1.AuthProvidersRegisterResponseItem {
		return &authv1.AuthProvidersRegisterResponseItem{ClaimToken: token}
	})}, nil
}

func (s *ProvidersServer) Claim(ctx context.Context, req *authv1.AuthProvidersClaimRequest) (*authv1.AuthProvidersClaimResponse, error) {
	credentials, err := s.providers.Claim(ctx, collect(req.GetItems(), (*authv1.AuthProvidersRegisterResponseItem).GetClaimToken))
	if err != nil {
		return nil, err
	}
	return &authv1.AuthProvidersClaimResponse{Responses: collect(credentials, credentialsMessage)}, nil
}

func (s *ProvidersServer) Renew(ctx context.Context, req *authv1.AuthProvidersRenewRequest) (*authv1.AuthProvidersRenewResponse, error) {
	credentials, err := s.providers.Renew(ctx, providerCaller(ctx), collect(req.GetItems(), (*authv1.FindByStringId).GetId))
	if err != nil {
		return nil, err
	}
	return &authv1.AuthProvidersRenewResponse{Responses: collect(credentials, credentialsMessage)}, nil
}

func (s *ProvidersServer) Refresh(ctx context.Context, req *authv1.AuthProvidersRefreshRequest) (*authv1.AuthProvidersRefreshResponse, error) {
	accessTokens, err := s.providers.Refresh(ctx, collect(req.GetItems(), (*authv1.RefreshToken).GetRefreshToken))
	if err != nil {
		return nil, err
	}
	return &authv1.AuthProvidersRefreshResponse{Responses: collect(accessTokens, accessTokenMessage)}, nil
}

func (s *ProvidersServer) RetrievePublicKey(ctx context.Context, req *authv1.FindByStringId) (*authv1.AuthProvidersRetrievePublicKeyResponse, error) {
	publicKey, err := s.providers.RetrievePublicKey(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &authv1.AuthProvidersRetrievePublicKeyResponse{PublicKey: publicKey}, nil
}

func (s *ProvidersServer) RefreshAsOrchestrator(ctx context.Context, req *authv1.AuthProvidersRefreshAsOrchestratorRequest) (*authv1.AuthProvidersRefreshAsOrchestratorResponse, error) {
	caller, ok := CallerFrom(ctx)
	if !ok {
		return nil, chiterr.New(chiterr.Unauthenticated, "missing bearer token")
	}
	accessTokens, err := s.providers.RefreshAsOrchestrator(ctx, ServiceClientID(caller),
		collect(req.GetItems(), (*authv1.AuthProvidersRefreshAsProviderRequestItem).GetProviderId))
	if err != nil {
		return nil, err
	}
	return &authv1.AuthProvidersRefreshAsOrchestratorResponse{Responses: collect(accessTokens, accessTokenMessage)}, nil
}

func (s *ProvidersServer) GenerateKeyPair(ctx context.Context, _ *authv1.AuthProvidersGenerateKeyPairRequest) (*authv1.AuthProvidersGenerateKeyPairResponse, error) {
	pair, err := s.providers.GenerateKeyPair(ctx)
	if err != nil {
		return nil, err
	}
	return &authv1.AuthProvidersGenerateKeyPairResponse{PublicKey: pair.PublicBase64(), PrivateKey: pair.PrivateBase64()}, nil
}

// providerCaller is who calls a restricted AuthProviders RPC (the access
// rules let only services and admins in).
func providerCaller(ctx context.Context) providers.Caller {
	caller, _ := CallerFrom(ctx)
	if caller.Role == accounts.RoleAdmin {
		return providers.Caller{Admin: true}
	}
	return providers.Caller{ServiceID: ServiceClientID(caller)}
}

func credentialsMessage(c providers.Credentials) *authv1.PublicKeyAndRefreshToken {
	return &authv1.PublicKeyAndRefreshToken{ProviderId: c.ProviderID, PublicKey: c.PublicKey, RefreshToken: c.RefreshToken}
}

// accessTokenMessage fills only access_token: the UCloud answer is
// {"accessToken": "..."} and nothing else.
func accessTokenMessage(token string) *authv1.AccessToken {
	return &authv1.AccessToken{AccessToken: token}
}
