package grpcapi

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/federation"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/paging"
	"github.com/chit-auth/chit/internal/providers"
	"github.com/chit-auth/chit/internal/sessions"
	"github.com/chit-auth/chit/internal/ssf"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/tokens"
)

// AdminServer serves chit.admin.v1.AdminService over the same core
// functions the chitd commands call. The access rule (ADMIN only) and the
// audit line are the interceptors'.
type AdminServer struct {
	adminv1.UnimplementedAdminServiceServer
	directory   *accounts.Directory
	tokens      *tokens.Service
	providers   *providers.Service
	signingKeys SigningKeys
	sessions    *sessions.Service
	pages       *paging.Tokens
	federation  *federation.Service
	// securityEvents manages the Shared Signals streams; nil when the
	// server has none.
	securityEvents *ssf.Service
}

var _ adminv1.AdminServiceServer = (*AdminServer)(nil)

// NewAdminServer returns the AdminService handlers over deps.Directory,
// its lists' page tokens made with deps.Pages.
func NewAdminServer(deps Dependencies) *AdminServer {
	return &AdminServer{directory: deps.Directory, tokens: deps.Tokens, providers: deps.Providers, signingKeys: deps.SigningKeys, sessions: deps.Sessions, pages: deps.Pages, federation: deps.Federation,
		securityEvents: deps.SecurityEvents}
}

// grantFields name the Admin API's grant fields in the messages that
// refuse one.
var grantFields = accounts.GrantFields{Allowed: "allowed_scopes", Default: "default_scopes", Audiences: "allowed_audiences"}

// The lists' names in their page tokens: a token of one list is refused by
// another.
const usersList = "users"

func (s *AdminServer) CreateUser(ctx context.Context, req *adminv1.CreateUserRequest) (*adminv1.CreateUserResponse, error) {
	role := accounts.RoleUser
	if req.GetRole() != "" {
		var err error
		if role, err = accounts.ParseUserRole(req.GetRole()); err != nil {
			return nil, err
		}
	}
	grants, err := accounts.NewGrants(grantFields, req.GetAllowedScopes(), req.GetDefaultScopes(), nil)
	if err != nil {
		return nil, err
	}
	if err := s.directory.AddUser(ctx, accounts.NewUser{Name: req.GetName(), Password: req.GetPassword(), Role: role, Grants: grants,
		Profile: storage.Profile{Email: req.GetEmail(), EmailVerified: req.GetEmailVerified(), DisplayName: req.GetDisplayName(), Groups: req.GetGroups()}}); err != nil {
		return nil, err
	}
	user, err := s.directory.GetUser(afterWrite(ctx), req.GetName())
	if err != nil {
		return nil, err
	}
	return &adminv1.CreateUserResponse{User: userMessage(user)}, nil
}

func (s *AdminServer) GetUser(ctx context.Context, req *adminv1.GetUserRequest) (*adminv1.GetUserResponse, error) {
	if err := accounts.ValidateName("user", req.GetName()); err != nil {
		return nil, err
	}
	user, err := s.directory.GetUser(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetUserResponse{User: userMessage(user)}, nil
}

func (s *AdminServer) ListUsers(ctx context.Context, req *adminv1.ListUsersRequest) (*adminv1.ListUsersResponse, error) {
	users, next, err := paging.List(ctx, s.pages, usersList, paging.Request{Size: req.GetPageSize(), Token: req.GetPageToken()},
		func(page storage.Page) ([]storage.User, error) { return s.directory.ListUsers(ctx, page) },
		func(user storage.User) string { return user.Name }, userMessage)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListUsersResponse{Users: users, NextPageToken: next}, nil
}

func (s *AdminServer) SetUserRole(ctx context.Context, req *adminv1.SetUserRoleRequest) (*adminv1.SetUserRoleResponse, error) {
	if req.GetRole() == "" {
		return nil, chiterr.New(chiterr.InvalidArgument, "role is required: USER or ADMIN")
	}
	role, err := accounts.ParseUserRole(req.GetRole())
	if err != nil {
		return nil, err
	}
	if err := accounts.ValidateName("user", req.GetName()); err != nil {
		return nil, err
	}
	if err := s.directory.SetUserRole(ctx, req.GetName(), role); err != nil {
		return nil, err
	}
	user, err := s.directory.GetUser(afterWrite(ctx), req.GetName())
	if err != nil {
		return nil, err
	}
	return &adminv1.SetUserRoleResponse{User: userMessage(user)}, nil
}

func (s *AdminServer) SetUserScopes(ctx context.Context, req *adminv1.SetUserScopesRequest) (*adminv1.SetUserScopesResponse, error) {
	if err := accounts.ValidateName("user", req.GetName()); err != nil {
		return nil, err
	}
	grants, err := accounts.NewGrants(grantFields, req.GetAllowedScopes(), req.GetDefaultScopes(), nil)
	if err != nil {
		return nil, err
	}
	if err := s.directory.SetUserGrants(ctx, req.GetName(), grants); err != nil {
		return nil, err
	}
	user, err := s.directory.GetUser(afterWrite(ctx), req.GetName())
	if err != nil {
		return nil, err
	}
	return &adminv1.SetUserScopesResponse{User: userMessage(user)}, nil
}

func (s *AdminServer) SetUserProfile(ctx context.Context, req *adminv1.SetUserProfileRequest) (*adminv1.SetUserProfileResponse, error) {
	if err := accounts.ValidateName("user", req.GetName()); err != nil {
		return nil, err
	}
	fields, err := accounts.ParseProfileFields(req.GetUpdateMask().GetPaths())
	if err != nil {
		return nil, err
	}
	profile := storage.Profile{Email: req.GetEmail(), EmailVerified: req.GetEmailVerified(), DisplayName: req.GetDisplayName(), Groups: req.GetGroups()}
	if err := s.directory.SetUserProfile(ctx, req.GetName(), profile, fields); err != nil {
		return nil, err
	}
	user, err := s.directory.GetUser(afterWrite(ctx), req.GetName())
	if err != nil {
		return nil, err
	}
	return &adminv1.SetUserProfileResponse{User: userMessage(user)}, nil
}

func (s *AdminServer) DeleteUser(ctx context.Context, req *adminv1.DeleteUserRequest) (*adminv1.DeleteUserResponse, error) {
	if err := accounts.ValidateName("user", req.GetName()); err != nil {
		return nil, err
	}
	if err := s.directory.DeleteUser(ctx, req.GetName()); err != nil {
		return nil, err
	}
	return &adminv1.DeleteUserResponse{}, nil
}

func userMessage(user storage.User) *adminv1.User {
	return &adminv1.User{
		Name:          user.Name,
		Role:          user.Role,
		AllowedScopes: user.AllowedScopes,
		DefaultScopes: user.DefaultScopes,
		CreateTime:    timestamppb.New(user.CreatedAt),
		Email:         user.Email,
		EmailVerified: user.EmailVerified,
		DisplayName:   user.DisplayName,
		Groups:        user.Groups,
	}
}

const serviceAccountsList = "service-accounts"

func (s *AdminServer) CreateServiceAccount(ctx context.Context, req *adminv1.CreateServiceAccountRequest) (*adminv1.CreateServiceAccountResponse, error) {
	grants, err := accounts.NewGrants(grantFields, req.GetAllowedScopes(), req.GetDefaultScopes(), req.GetAllowedAudiences())
	if err != nil {
		return nil, err
	}
	exchange, err := accounts.NewTokenExchange(req.GetTokenExchangeAudiences(), req.GetTokenExchangeImpersonation())
	if err != nil {
		return nil, err
	}
	secret, err := s.directory.AddServiceAccount(ctx, accounts.NewServiceAccount{Name: req.GetClientId(), Grants: grants, TokenExchange: exchange,
		RequireDPoP: req.GetRequireDpop()})
	if err != nil {
		return nil, err
	}
	account, err := s.directory.GetServiceAccount(afterWrite(ctx), req.GetClientId())
	if err != nil {
		return nil, err
	}
	return &adminv1.CreateServiceAccountResponse{ServiceAccount: serviceAccountMessage(account), ClientSecret: secret}, nil
}

func (s *AdminServer) GetServiceAccount(ctx context.Context, req *adminv1.GetServiceAccountRequest) (*adminv1.GetServiceAccountResponse, error) {
	if err := accounts.ValidateClientID(req.GetClientId()); err != nil {
		return nil, err
	}
	account, err := s.directory.GetServiceAccount(ctx, req.GetClientId())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetServiceAccountResponse{ServiceAccount: serviceAccountMessage(account)}, nil
}

func (s *AdminServer) ListServiceAccounts(ctx context.Context, req *adminv1.ListServiceAccountsRequest) (*adminv1.ListServiceAccountsResponse, error) {
	accounts, next, err := paging.List(ctx, s.pages, serviceAccountsList, paging.Request{Size: req.GetPageSize(), Token: req.GetPageToken()},
		func(page storage.Page) ([]storage.ServiceAccount, error) {
			return s.directory.ListServiceAccounts(ctx, page)
		},
		func(account storage.ServiceAccount) string { return account.ClientID }, serviceAccountMessage)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListServiceAccountsResponse{ServiceAccounts: accounts, NextPageToken: next}, nil
}

func (s *AdminServer) SetServiceAccountGrants(ctx context.Context, req *adminv1.SetServiceAccountGrantsRequest) (*adminv1.SetServiceAccountGrantsResponse, error) {
	if err := accounts.ValidateClientID(req.GetClientId()); err != nil {
		return nil, err
	}
	grants, err := accounts.NewGrants(grantFields, req.GetAllowedScopes(), req.GetDefaultScopes(), req.GetAllowedAudiences())
	if err != nil {
		return nil, err
	}
	if err := s.directory.SetServiceGrants(ctx, req.GetClientId(), grants); err != nil {
		return nil, err
	}
	account, err := s.directory.GetServiceAccount(afterWrite(ctx), req.GetClientId())
	if err != nil {
		return nil, err
	}
	return &adminv1.SetServiceAccountGrantsResponse{ServiceAccount: serviceAccountMessage(account)}, nil
}

func (s *AdminServer) SetServiceAccountTokenExchange(ctx context.Context, req *adminv1.SetServiceAccountTokenExchangeRequest) (*adminv1.SetServiceAccountTokenExchangeResponse, error) {
	if err := accounts.ValidateClientID(req.GetClientId()); err != nil {
		return nil, err
	}
	exchange, err := accounts.NewTokenExchange(req.GetTokenExchangeAudiences(), req.GetTokenExchangeImpersonation())
	if err != nil {
		return nil, err
	}
	if err := s.directory.SetServiceTokenExchange(ctx, req.GetClientId(), exchange); err != nil {
		return nil, err
	}
	account, err := s.directory.GetServiceAccount(afterWrite(ctx), req.GetClientId())
	if err != nil {
		return nil, err
	}
	return &adminv1.SetServiceAccountTokenExchangeResponse{ServiceAccount: serviceAccountMessage(account)}, nil
}

func (s *AdminServer) SetServiceAccountDpop(ctx context.Context, req *adminv1.SetServiceAccountDpopRequest) (*adminv1.SetServiceAccountDpopResponse, error) {
	if err := accounts.ValidateClientID(req.GetClientId()); err != nil {
		return nil, err
	}
	if err := s.directory.SetServiceAccountRequireDPoP(ctx, req.GetClientId(), req.GetRequireDpop()); err != nil {
		return nil, err
	}
	account, err := s.directory.GetServiceAccount(afterWrite(ctx), req.GetClientId())
	if err != nil {
		return nil, err
	}
	return &adminv1.SetServiceAccountDpopResponse{ServiceAccount: serviceAccountMessage(account)}, nil
}

func (s *AdminServer) RotateServiceAccountSecret(ctx context.Context, req *adminv1.RotateServiceAccountSecretRequest) (*adminv1.RotateServiceAccountSecretResponse, error) {
	if err := accounts.ValidateClientID(req.GetClientId()); err != nil {
		return nil, err
	}
	var overlap time.Duration
	if req.GetOverlap() != nil {
		if err := req.GetOverlap().CheckValid(); err != nil {
			return nil, chiterr.New(chiterr.InvalidArgument, "overlap: %v", err)
		}
		overlap = req.GetOverlap().AsDuration()
	}
	secret, err := s.directory.RotateServiceSecret(ctx, req.GetClientId(), overlap)
	if err != nil {
		return nil, err
	}
	account, err := s.directory.GetServiceAccount(afterWrite(ctx), req.GetClientId())
	if err != nil {
		return nil, err
	}
	return &adminv1.RotateServiceAccountSecretResponse{ServiceAccount: serviceAccountMessage(account), ClientSecret: secret}, nil
}

func (s *AdminServer) DeleteServiceAccount(ctx context.Context, req *adminv1.DeleteServiceAccountRequest) (*adminv1.DeleteServiceAccountResponse, error) {
	if err := accounts.ValidateClientID(req.GetClientId()); err != nil {
		return nil, err
	}
	if err := s.directory.DeleteServiceAccount(ctx, req.GetClientId()); err != nil {
		return nil, err
	}
	return &adminv1.DeleteServiceAccountResponse{}, nil
}

func serviceAccountMessage(account storage.ServiceAccount) *adminv1.ServiceAccount {
	message := &adminv1.ServiceAccount{
		ClientId:         account.ClientID,
		AllowedScopes:    account.AllowedScopes,
		DefaultScopes:    account.DefaultScopes,
		AllowedAudiences: account.AllowedAudiences,
		CreateTime:       timestamppb.New(account.CreatedAt),

		TokenExchangeAudiences:     account.TokenExchange.Audiences,
		TokenExchangeImpersonation: account.TokenExchange.Impersonation,
		RequireDpop:                account.RequireDPoP,
	}
	if len(account.PreviousSecretHash) > 0 {
		message.PreviousSecretExpireTime = timestamppb.New(account.PreviousSecretExpiresAt)
	}
	return message
}

const clientsList = "clients"

func (s *AdminServer) CreateClient(ctx context.Context, req *adminv1.CreateClientRequest) (*adminv1.CreateClientResponse, error) {
	// The same checks, in the same order, as chitd client create.
	if err := authorize.ValidateRedirectURIs(req.GetRedirectUris()); err != nil {
		return nil, err
	}
	grants, err := accounts.NewGrants(grantFields, req.GetAllowedScopes(), req.GetDefaultScopes(), req.GetAllowedAudiences())
	if err != nil {
		return nil, err
	}
	if err := accounts.ValidateOrigins(req.GetAllowedOrigins()); err != nil {
		return nil, err
	}
	logout := storage.ClientLogout{PostLogoutRedirectURIs: req.GetPostLogoutRedirectUris(), BackchannelLogoutURI: req.GetBackchannelLogoutUri(),
		RevokesRefreshTokens: req.GetLogoutRevokesRefreshTokens()}
	if err := authorize.ValidateClientLogout(logout); err != nil {
		return nil, err
	}
	pkceOptional, err := parsePKCE(req.GetPkce())
	if err != nil {
		return nil, err
	}
	secret, err := s.directory.RegisterClient(ctx, accounts.ClientRegistration{ID: req.GetClientId(), RedirectURIs: req.GetRedirectUris(),
		Confidential: req.GetConfidential(), PKCEOptional: pkceOptional, IDTokenSignedResponseAlg: req.GetIdTokenSignedResponseAlg(),
		DeviceAuthorization: req.GetDeviceAuthorization(), RequireDPoP: req.GetRequireDpop(), Grants: grants})
	if err != nil {
		return nil, err
	}
	// What is kept beside the client is written after it; should that
	// fail, the client is not answered, so it must not stay half made: an
	// admin retrying the create would meet it.
	var besides []func() error
	if len(req.GetAllowedOrigins()) > 0 {
		besides = append(besides, func() error { return s.directory.SetClientOrigins(ctx, req.GetClientId(), req.GetAllowedOrigins()) })
	}
	if len(logout.PostLogoutRedirectURIs) > 0 || logout.BackchannelLogoutURI != "" || logout.RevokesRefreshTokens {
		besides = append(besides, func() error { return s.directory.SetClientLogout(ctx, req.GetClientId(), logout) })
	}
	for _, write := range besides {
		if err := write(); err != nil {
			if deleteErr := s.directory.DeleteClient(context.WithoutCancel(ctx), req.GetClientId()); deleteErr != nil {
				return nil, errors.Join(err, deleteErr)
			}
			return nil, err
		}
	}
	message, err := s.clientAnswer(afterWrite(ctx), req.GetClientId())
	if err != nil {
		return nil, err
	}
	return &adminv1.CreateClientResponse{Client: message, ClientSecret: secret}, nil
}

// SetClientOrigins replaces a client's browser origins.
func (s *AdminServer) SetClientOrigins(ctx context.Context, req *adminv1.SetClientOriginsRequest) (*adminv1.SetClientOriginsResponse, error) {
	if err := accounts.ValidateClientID(req.GetClientId()); err != nil {
		return nil, err
	}
	if err := s.directory.SetClientOrigins(ctx, req.GetClientId(), req.GetAllowedOrigins()); err != nil {
		return nil, err
	}
	message, err := s.clientAnswer(afterWrite(ctx), req.GetClientId())
	if err != nil {
		return nil, err
	}
	return &adminv1.SetClientOriginsResponse{Client: message}, nil
}

// SetClientLogout replaces a client's logout settings.
func (s *AdminServer) SetClientLogout(ctx context.Context, req *adminv1.SetClientLogoutRequest) (*adminv1.SetClientLogoutResponse, error) {
	if err := accounts.ValidateClientID(req.GetClientId()); err != nil {
		return nil, err
	}
	logout := storage.ClientLogout{PostLogoutRedirectURIs: req.GetPostLogoutRedirectUris(), BackchannelLogoutURI: req.GetBackchannelLogoutUri(),
		RevokesRefreshTokens: req.GetLogoutRevokesRefreshTokens()}
	if err := authorize.ValidateClientLogout(logout); err != nil {
		return nil, err
	}
	if err := s.directory.SetClientLogout(ctx, req.GetClientId(), logout); err != nil {
		return nil, err
	}
	message, err := s.clientAnswer(afterWrite(ctx), req.GetClientId())
	if err != nil {
		return nil, err
	}
	return &adminv1.SetClientLogoutResponse{Client: message}, nil
}

// clientAnswer reads client id as the Admin API answers it: its record and
// what is kept beside the record.
func (s *AdminServer) clientAnswer(ctx context.Context, id string) (*adminv1.Client, error) {
	client, err := s.directory.GetClient(ctx, id)
	if err != nil {
		return nil, err
	}
	message := clientMessage(client)
	if err := s.addClientBesides(ctx, message); err != nil {
		return nil, err
	}
	return message, nil
}

// addClientBesides fills in what is kept beside a client's record: its
// origins and its logout settings.
func (s *AdminServer) addClientBesides(ctx context.Context, message *adminv1.Client) error {
	origins, err := s.directory.ClientOrigins(ctx, message.GetClientId())
	if err != nil {
		return err
	}
	message.AllowedOrigins = origins
	logout, err := s.directory.ClientLogout(ctx, message.GetClientId())
	if err != nil {
		return err
	}
	message.PostLogoutRedirectUris = logout.PostLogoutRedirectURIs
	message.BackchannelLogoutUri = logout.BackchannelLogoutURI
	message.LogoutRevokesRefreshTokens = logout.RevokesRefreshTokens
	return nil
}

func (s *AdminServer) GetClient(ctx context.Context, req *adminv1.GetClientRequest) (*adminv1.GetClientResponse, error) {
	if err := accounts.ValidateClientID(req.GetClientId()); err != nil {
		return nil, err
	}
	message, err := s.clientAnswer(ctx, req.GetClientId())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetClientResponse{Client: message}, nil
}

func (s *AdminServer) ListClients(ctx context.Context, req *adminv1.ListClientsRequest) (*adminv1.ListClientsResponse, error) {
	clients, next, err := paging.List(ctx, s.pages, clientsList, paging.Request{Size: req.GetPageSize(), Token: req.GetPageToken()},
		func(page storage.Page) ([]storage.Client, error) { return s.directory.ListClients(ctx, page) },
		func(client storage.Client) string { return client.ID }, clientMessage)
	if err != nil {
		return nil, err
	}
	for _, client := range clients {
		if err := s.addClientBesides(ctx, client); err != nil {
			return nil, err
		}
	}
	return &adminv1.ListClientsResponse{Clients: clients, NextPageToken: next}, nil
}

func (s *AdminServer) UpdateClient(ctx context.Context, req *adminv1.UpdateClientRequest) (*adminv1.UpdateClientResponse, error) {
	if err := accounts.ValidateClientID(req.GetClientId()); err != nil {
		return nil, err
	}
	if req.GetPkce() != "" {
		optional, err := parsePKCE(req.GetPkce())
		if err != nil {
			return nil, err
		}
		if err := s.directory.SetClientPKCE(ctx, req.GetClientId(), optional); err != nil {
			return nil, err
		}
	}
	if alg := req.GetIdTokenSignedResponseAlg(); alg != "" {
		if err := s.directory.SetClientIDTokenAlgorithm(ctx, req.GetClientId(), alg); err != nil {
			return nil, err
		}
	}
	if req.DeviceAuthorization != nil {
		if err := s.directory.SetClientDeviceAuthorization(ctx, req.GetClientId(), req.GetDeviceAuthorization()); err != nil {
			return nil, err
		}
	}
	if req.RequireDpop != nil {
		if err := s.directory.SetClientRequireDPoP(ctx, req.GetClientId(), req.GetRequireDpop()); err != nil {
			return nil, err
		}
	}
	message, err := s.clientAnswer(afterWrite(ctx), req.GetClientId())
	if err != nil {
		return nil, err
	}
	return &adminv1.UpdateClientResponse{Client: message}, nil
}

// The values of Client.pkce.
const (
	clientPKCERequired = "required"
	clientPKCEOptional = "optional"
)

// parsePKCE reads a pkce field: whether PKCE is optional; empty is required.
func parsePKCE(value string) (bool, error) {
	switch value {
	case "", clientPKCERequired:
		return false, nil
	case clientPKCEOptional:
		return true, nil
	}
	return false, chiterr.New(chiterr.InvalidArgument, "pkce must be %q or %q, not %s", clientPKCERequired, clientPKCEOptional, chiterr.Quote(value))
}

func (s *AdminServer) SetClientGrants(ctx context.Context, req *adminv1.SetClientGrantsRequest) (*adminv1.SetClientGrantsResponse, error) {
	if err := accounts.ValidateClientID(req.GetClientId()); err != nil {
		return nil, err
	}
	grants, err := accounts.NewGrants(grantFields, req.GetAllowedScopes(), req.GetDefaultScopes(), req.GetAllowedAudiences())
	if err != nil {
		return nil, err
	}
	if err := s.directory.SetClientGrants(ctx, req.GetClientId(), grants); err != nil {
		return nil, err
	}
	message, err := s.clientAnswer(afterWrite(ctx), req.GetClientId())
	if err != nil {
		return nil, err
	}
	return &adminv1.SetClientGrantsResponse{Client: message}, nil
}

func (s *AdminServer) RotateClientSecret(ctx context.Context, req *adminv1.RotateClientSecretRequest) (*adminv1.RotateClientSecretResponse, error) {
	if err := accounts.ValidateClientID(req.GetClientId()); err != nil {
		return nil, err
	}
	secret, err := s.directory.RotateClientSecret(ctx, req.GetClientId())
	if err != nil {
		return nil, err
	}
	message, err := s.clientAnswer(afterWrite(ctx), req.GetClientId())
	if err != nil {
		return nil, err
	}
	return &adminv1.RotateClientSecretResponse{Client: message, ClientSecret: secret}, nil
}

func (s *AdminServer) DeleteClient(ctx context.Context, req *adminv1.DeleteClientRequest) (*adminv1.DeleteClientResponse, error) {
	if err := accounts.ValidateClientID(req.GetClientId()); err != nil {
		return nil, err
	}
	if err := s.directory.DeleteClient(ctx, req.GetClientId()); err != nil {
		return nil, err
	}
	return &adminv1.DeleteClientResponse{}, nil
}

func clientMessage(client storage.Client) *adminv1.Client {
	return &adminv1.Client{
		ClientId:                 client.ID,
		RedirectUris:             client.RedirectURIs,
		Confidential:             len(client.SecretHash) > 0,
		AllowedScopes:            client.AllowedScopes,
		DefaultScopes:            client.DefaultScopes,
		AllowedAudiences:         client.AllowedAudiences,
		CreateTime:               timestamppb.New(client.CreatedAt),
		Pkce:                     map[bool]string{false: clientPKCERequired, true: clientPKCEOptional}[client.PKCEOptional],
		IdTokenSignedResponseAlg: client.IDTokenSignedResponseAlg,
		DeviceAuthorization:      client.DeviceAuthorization,
		RequireDpop:              client.RequireDPoP,
	}
}

const (
	providersList   = "providers"
	signingKeysList = "signing-keys"
)

func (s *AdminServer) GetProvider(ctx context.Context, req *adminv1.GetProviderRequest) (*adminv1.GetProviderResponse, error) {
	provider, err := s.providers.Get(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetProviderResponse{Provider: providerMessage(provider)}, nil
}

func (s *AdminServer) ListProviders(ctx context.Context, req *adminv1.ListProvidersRequest) (*adminv1.ListProvidersResponse, error) {
	providers, next, err := paging.List(ctx, s.pages, providersList, paging.Request{Size: req.GetPageSize(), Token: req.GetPageToken()},
		func(page storage.Page) ([]storage.Provider, error) { return s.providers.List(ctx, page) },
		func(provider storage.Provider) string { return provider.ID }, providerMessage)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListProvidersResponse{Providers: providers, NextPageToken: next}, nil
}

func (s *AdminServer) DeleteProvider(ctx context.Context, req *adminv1.DeleteProviderRequest) (*adminv1.DeleteProviderResponse, error) {
	if err := s.providers.Delete(ctx, req.GetId()); err != nil {
		return nil, err
	}
	return &adminv1.DeleteProviderResponse{}, nil
}

func (s *AdminServer) ListSigningKeys(ctx context.Context, req *adminv1.ListSigningKeysRequest) (*adminv1.ListSigningKeysResponse, error) {
	keys, next, err := paging.List(ctx, s.pages, signingKeysList, paging.Request{Size: req.GetPageSize(), Token: req.GetPageToken()},
		func(page storage.Page) ([]storage.SigningKey, error) { return s.signingKeyPage(ctx, page) },
		func(key storage.SigningKey) string { return key.ID }, signingKeyMessage)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListSigningKeysResponse{SigningKeys: keys, NextPageToken: next}, nil
}

// signingKeyPage is page of the signing keys by key id. A server holds a
// handful of keys (next, active, the retired still published): they are
// paged in memory.
func (s *AdminServer) signingKeyPage(ctx context.Context, page storage.Page) ([]storage.SigningKey, error) {
	stored, err := s.signingKeys.List(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(stored, func(a, b storage.SigningKey) int { return strings.Compare(a.ID, b.ID) })
	stored = slices.DeleteFunc(stored, func(key storage.SigningKey) bool { return key.ID <= page.After })
	if page.Limit > 0 && len(stored) > page.Limit {
		stored = stored[:page.Limit]
	}
	return stored, nil
}

func (s *AdminServer) RotateSigningKeys(ctx context.Context, req *adminv1.RotateSigningKeysRequest) (*adminv1.RotateSigningKeysResponse, error) {
	if err := s.signingKeys.Rotate(ctx, req.GetForce()); err != nil {
		return nil, err
	}
	stored, err := s.signingKeys.List(afterWrite(ctx))
	if err != nil {
		return nil, err
	}
	slices.SortFunc(stored, func(a, b storage.SigningKey) int { return strings.Compare(a.ID, b.ID) })
	return &adminv1.RotateSigningKeysResponse{SigningKeys: signingKeyMessages(stored)}, nil
}

func providerMessage(provider storage.Provider) *adminv1.Provider {
	message := &adminv1.Provider{
		Id:           provider.ID,
		Claimed:      !provider.ClaimedAt.IsZero(),
		RegisteredBy: provider.RegisteredBy,
		CreateTime:   timestamppb.New(provider.CreatedAt),
		KeyId:        provider.Credentials.KeyID,
	}
	if message.Claimed {
		message.ClaimTime = timestamppb.New(provider.ClaimedAt)
	} else if !provider.ClaimExpiresAt.IsZero() {
		message.ClaimExpireTime = timestamppb.New(provider.ClaimExpiresAt)
	}
	return message
}

func signingKeyMessages(stored []storage.SigningKey) []*adminv1.SigningKey {
	messages := make([]*adminv1.SigningKey, len(stored))
	for i, key := range stored {
		messages[i] = signingKeyMessage(key)
	}
	return messages
}

func signingKeyMessage(key storage.SigningKey) *adminv1.SigningKey {
	return &adminv1.SigningKey{
		KeyId:        key.ID,
		Algorithm:    key.Algorithm,
		State:        key.State,
		Encrypted:    keys.IsSealed(key.PrivateKey),
		CreateTime:   optionalTime(key.CreatedAt),
		ActivateTime: optionalTime(key.ActivatedAt),
		RetireTime:   optionalTime(key.RetiredAt),
	}
}

// optionalTime is t as a message field, unset when t is zero.
func optionalTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func (s *AdminServer) ListLogins(ctx context.Context, req *adminv1.ListLoginsRequest) (*adminv1.ListLoginsResponse, error) {
	if err := accounts.ValidateLoginSubject(req.GetSubject()); err != nil {
		return nil, err
	}
	// Each subject's list has its own tokens: one of alice's pages does not
	// page bob's.
	logins, next, err := paging.List(ctx, s.pages, "logins:"+req.GetSubject(), paging.Request{Size: req.GetPageSize(), Token: req.GetPageToken()},
		func(page storage.Page) ([]storage.RefreshToken, error) {
			return s.tokens.ListLogins(ctx, req.GetSubject(), page)
		},
		func(login storage.RefreshToken) string { return login.FamilyID }, loginMessage)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListLoginsResponse{Logins: logins, NextPageToken: next}, nil
}

func loginMessage(login storage.RefreshToken) *adminv1.Login {
	return &adminv1.Login{
		LoginId:        login.FamilyID,
		Subject:        login.Subject,
		ClientId:       login.ClientID,
		Scopes:         strings.Fields(login.Scope),
		Audience:       login.Audience,
		RefreshTime:    timestamppb.New(login.IssuedAt),
		IdleExpireTime: timestamppb.New(login.ExpiresAt),
		ExpireTime:     optionalTime(login.FamilyExpiresAt),
		Generation:     login.Generation,
	}
}

func (s *AdminServer) RevokeLogin(ctx context.Context, req *adminv1.RevokeLoginRequest) (*adminv1.RevokeLoginResponse, error) {
	if req.GetLoginId() == "" {
		return nil, chiterr.New(chiterr.InvalidArgument, "login_id is required")
	}
	caller, _ := CallerFrom(ctx)
	if err := s.tokens.RevokeLogin(ctx, req.GetSubject(), req.GetLoginId(), "revoked by admin "+caller.Subject); err != nil {
		return nil, err
	}
	return &adminv1.RevokeLoginResponse{}, nil
}

func (s *AdminServer) RevokeLogins(ctx context.Context, req *adminv1.RevokeLoginsRequest) (*adminv1.RevokeLoginsResponse, error) {
	if req.GetSubject() == "" {
		// RevokeSessions takes an empty subject as the caller's own.
		return nil, chiterr.New(chiterr.InvalidArgument, "subject is required")
	}
	caller, _ := CallerFrom(ctx)
	if err := s.tokens.RevokeSessions(ctx, caller, req.GetSubject()); err != nil {
		return nil, err
	}
	return &adminv1.RevokeLoginsResponse{}, nil
}

func (s *AdminServer) ListSessions(ctx context.Context, req *adminv1.ListSessionsRequest) (*adminv1.ListSessionsResponse, error) {
	if err := accounts.ValidateName("user", req.GetName()); err != nil {
		return nil, err
	}
	subject := accounts.UserSubject(req.GetName())
	listed, next, err := paging.List(ctx, s.pages, "sessions:"+subject, paging.Request{Size: req.GetPageSize(), Token: req.GetPageToken()},
		func(page storage.Page) ([]sessions.Session, error) { return s.sessions.List(ctx, subject, page) },
		func(session sessions.Session) string { return session.ID }, sessionMessage)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListSessionsResponse{Sessions: listed, NextPageToken: next}, nil
}

func sessionMessage(session sessions.Session) *adminv1.Session {
	return &adminv1.Session{
		SessionId:      session.ID,
		Name:           session.Subject,
		AuthTime:       timestamppb.New(session.AuthTime),
		Amr:            session.AMR,
		ClientIds:      session.ClientIDs,
		CreateTime:     timestamppb.New(session.CreatedAt),
		LastUseTime:    timestamppb.New(session.LastUsedAt),
		IdleExpireTime: timestamppb.New(session.IdleExpiresAt),
		ExpireTime:     timestamppb.New(session.ExpiresAt),
	}
}

func (s *AdminServer) EndSessions(ctx context.Context, req *adminv1.EndSessionsRequest) (*adminv1.EndSessionsResponse, error) {
	if err := accounts.ValidateName("user", req.GetName()); err != nil {
		return nil, err
	}
	subject := accounts.UserSubject(req.GetName())
	if req.GetSessionId() == "" {
		ended, err := s.sessions.EndAll(ctx, subject)
		if err != nil {
			return nil, err
		}
		return &adminv1.EndSessionsResponse{Ended: int32(ended)}, nil
	}
	notFound := chiterr.New(chiterr.NotFound, "user %q has no sign-in session with this id", req.GetName())
	if !sessions.ValidID(req.GetSessionId()) {
		return nil, notFound
	}
	// The session must be the named user's: the call (and its audit line)
	// then says whose session ended.
	session, err := s.sessions.Get(ctx, req.GetSessionId())
	if chiterr.KindOf(err) == chiterr.NotFound || (err == nil && session.Subject != subject) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	before, err := s.sessions.End(ctx, session.ID)
	if chiterr.KindOf(err) == chiterr.NotFound {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	ended := int32(0)
	if s.sessions.Live(before) {
		ended = 1
	}
	return &adminv1.EndSessionsResponse{Ended: ended}, nil
}

func (s *AdminServer) ListApiKeys(ctx context.Context, req *adminv1.ListApiKeysRequest) (*adminv1.ListApiKeysResponse, error) {
	keys, next, err := listAPIKeys(ctx, s.tokens, s.pages, req.GetSubject(), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &adminv1.ListApiKeysResponse{ApiKeys: keys, NextPageToken: next}, nil
}

func (s *AdminServer) RevokeApiKey(ctx context.Context, req *adminv1.RevokeApiKeyRequest) (*adminv1.RevokeApiKeyResponse, error) {
	caller, _ := CallerFrom(ctx)
	if err := s.tokens.RevokeAPIKey(ctx, caller, req.GetId()); err != nil {
		return nil, err
	}
	return &adminv1.RevokeApiKeyResponse{}, nil
}

// afterWrite is the context of a read made to answer a write that has
// committed: the caller's deadline or cancellation, if it came meanwhile,
// must not turn a saved change (a rotated secret, say) into an error that
// reads as if nothing happened.
func afterWrite(ctx context.Context) context.Context {
	return context.WithoutCancel(ctx)
}
