package grpcapi

import (
	"context"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
)

// ProvidersServer serves chit.auth.v1.AuthProviders. Its behaviour is the
// subject of the providers issue; until then every call answers
// UNIMPLEMENTED, after the access rules have run.
type ProvidersServer struct {
	authv1.UnimplementedAuthProvidersServer
}

var _ authv1.AuthProvidersServer = (*ProvidersServer)(nil)

func (ProvidersServer) Register(context.Context, *authv1.AuthProvidersRegisterRequest) (*authv1.AuthProvidersRegisterResponse, error) {
	return nil, notYet("AuthProviders.register")
}

func (ProvidersServer) Claim(context.Context, *authv1.AuthProvidersClaimRequest) (*authv1.AuthProvidersClaimResponse, error) {
	return nil, notYet("AuthProviders.claim")
}

func (ProvidersServer) Renew(context.Context, *authv1.AuthProvidersRenewRequest) (*authv1.AuthProvidersRenewResponse, error) {
	return nil, notYet("AuthProviders.renew")
}

func (ProvidersServer) Refresh(context.Context, *authv1.AuthProvidersRefreshRequest) (*authv1.AuthProvidersRefreshResponse, error) {
	return nil, notYet("AuthProviders.refresh")
}

func (ProvidersServer) RetrievePublicKey(context.Context, *authv1.FindByStringId) (*authv1.AuthProvidersRetrievePublicKeyResponse, error) {
	return nil, notYet("AuthProviders.retrievePublicKey")
}

func (ProvidersServer) RefreshAsOrchestrator(context.Context, *authv1.AuthProvidersRefreshAsOrchestratorRequest) (*authv1.AuthProvidersRefreshAsOrchestratorResponse, error) {
	return nil, notYet("AuthProviders.refreshAsOrchestrator")
}

func (ProvidersServer) GenerateKeyPair(context.Context, *authv1.AuthProvidersGenerateKeyPairRequest) (*authv1.AuthProvidersGenerateKeyPairResponse, error) {
	return nil, notYet("AuthProviders.generateKeyPair")
}
