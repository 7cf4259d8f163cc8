package grpcapi

import (
	"context"
	"strings"

	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/tokens"
	adminv1 "github.com/chit-auth/chit/sdk/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/sdk/gen/chit/auth/v1"
)

// Audience says who may call an RPC.
type Audience int

const (
	// Public RPCs take no bearer token; one that is sent is ignored. RPCs that
	// check tokens themselves (CheckToken) are public for this table.
	Public Audience = iota
	// ServicesAndAdmins need a valid token with the SERVICE or ADMIN role.
	ServicesAndAdmins
	// Orchestrators need a SERVICE token whose subject is one of the
	// configured orchestrator services (chitd serve --orchestrators).
	Orchestrators
	// Admins need a token with the ADMIN role.
	Admins
	// Principals need a valid token of a person or a service account (any
	// role but PROVIDER, whose tokens are never credentials at Chit).
	Principals
)

func (a Audience) String() string {
	switch a {
	case Public:
		return "public"
	case ServicesAndAdmins:
		return "services and admins"
	case Orchestrators:
		return "orchestrator services"
	case Admins:
		return "admins"
	case Principals:
		return "people and services"
	}
	return "unknown"
}

// AccessRules is the one table of who may call each RPC, for gRPC and,
// because the gateway calls through gRPC, for REST. A method missing from it
// is refused.
var AccessRules = map[string]Audience{
	authv1.AuthService_Token_FullMethodName:           Public,
	authv1.AuthService_RefreshToken_FullMethodName:    Public,
	authv1.AuthService_LoginCli_FullMethodName:        Public,
	authv1.AuthService_RefreshCli_FullMethodName:      Public,
	authv1.AuthService_CheckToken_FullMethodName:      Public,
	authv1.AuthService_GetAuthorizeUrl_FullMethodName: Public,
	authv1.AuthService_GetAuthStatus_FullMethodName:   Public,
	// Revoke by token value needs nothing else (RFC 7009); revoking all of a
	// subject's sessions checks the bearer token in the handler.
	authv1.AuthService_Revoke_FullMethodName: Public,
	// Each caller manages its own API keys.
	authv1.AuthService_CreateApiKey_FullMethodName: Principals,
	authv1.AuthService_ListApiKeys_FullMethodName:  Principals,
	authv1.AuthService_RevokeApiKey_FullMethodName: Principals,

	// The UCloud contract: "Auth: Services" for all but refresh, which a
	// provider calls with nothing but its refresh token.
	authv1.AuthProviders_Register_FullMethodName:              ServicesAndAdmins,
	authv1.AuthProviders_Claim_FullMethodName:                 ServicesAndAdmins,
	authv1.AuthProviders_Renew_FullMethodName:                 ServicesAndAdmins,
	authv1.AuthProviders_Refresh_FullMethodName:               Public,
	authv1.AuthProviders_RetrievePublicKey_FullMethodName:     ServicesAndAdmins,
	authv1.AuthProviders_RefreshAsOrchestrator_FullMethodName: Orchestrators,
	authv1.AuthProviders_GenerateKeyPair_FullMethodName:       ServicesAndAdmins,

	// Managing what Chit knows is for admins alone.
	adminv1.AdminService_CreateUser_FullMethodName:                 Admins,
	adminv1.AdminService_GetUser_FullMethodName:                    Admins,
	adminv1.AdminService_ListUsers_FullMethodName:                  Admins,
	adminv1.AdminService_SetUserRole_FullMethodName:                Admins,
	adminv1.AdminService_SetUserScopes_FullMethodName:              Admins,
	adminv1.AdminService_DeleteUser_FullMethodName:                 Admins,
	adminv1.AdminService_CreateServiceAccount_FullMethodName:       Admins,
	adminv1.AdminService_GetServiceAccount_FullMethodName:          Admins,
	adminv1.AdminService_ListServiceAccounts_FullMethodName:        Admins,
	adminv1.AdminService_SetServiceAccountGrants_FullMethodName:    Admins,
	adminv1.AdminService_RotateServiceAccountSecret_FullMethodName: Admins,
	adminv1.AdminService_DeleteServiceAccount_FullMethodName:       Admins,
	adminv1.AdminService_CreateClient_FullMethodName:               Admins,
	adminv1.AdminService_GetClient_FullMethodName:                  Admins,
	adminv1.AdminService_ListClients_FullMethodName:                Admins,
	adminv1.AdminService_SetClientGrants_FullMethodName:            Admins,
	adminv1.AdminService_RotateClientSecret_FullMethodName:         Admins,
	adminv1.AdminService_DeleteClient_FullMethodName:               Admins,
	adminv1.AdminService_GetProvider_FullMethodName:                Admins,
	adminv1.AdminService_ListProviders_FullMethodName:              Admins,
	adminv1.AdminService_DeleteProvider_FullMethodName:             Admins,
	adminv1.AdminService_ListSigningKeys_FullMethodName:            Admins,
	adminv1.AdminService_RotateSigningKeys_FullMethodName:          Admins,
	adminv1.AdminService_ListLogins_FullMethodName:                 Admins,
	adminv1.AdminService_RevokeLogin_FullMethodName:                Admins,
	adminv1.AdminService_RevokeLogins_FullMethodName:               Admins,
	adminv1.AdminService_ListApiKeys_FullMethodName:                Admins,
	adminv1.AdminService_RevokeApiKey_FullMethodName:               Admins,

	// Load balancers and orchestrators probe health without credentials.
	grpc_health_v1.Health_Check_FullMethodName: Public,
	grpc_health_v1.Health_List_FullMethodName:  Public,
}

type callerKey struct{}

// CallerFrom returns the verified claims of the caller, for RPCs that are not
// public.
func CallerFrom(ctx context.Context) (tokens.Claims, bool) {
	claims, ok := ctx.Value(callerKey{}).(tokens.Claims)
	return claims, ok
}

// Gatekeeper applies AccessRules to incoming calls.
type Gatekeeper struct {
	tokens        *tokens.Service
	orchestrators map[string]bool
}

// NewGatekeeper returns the access-rule enforcer; it verifies callers'
// tokens with deps.Tokens.
func NewGatekeeper(cfg Config, deps Dependencies) *Gatekeeper {
	g := &Gatekeeper{tokens: deps.Tokens, orchestrators: make(map[string]bool, len(cfg.Orchestrators))}
	for _, name := range cfg.Orchestrators {
		g.orchestrators[name] = true
	}
	return g
}

// authorize applies the access rule of fullMethod and returns the context the
// handler runs in. A caller refused for its role is still in the context
// returned with the error.
func (g *Gatekeeper) authorize(ctx context.Context, fullMethod string) (context.Context, error) {
	audience, ok := AccessRules[fullMethod]
	if !ok {
		return nil, chiterr.New(chiterr.PermissionDenied, "method %s is not open to any caller", fullMethod)
	}
	if audience == Public {
		return ctx, nil
	}
	// Only the server's own tokens authorize calls to Chit; tokens signed
	// with a provider's key are for the provider.
	claims, err := g.tokens.Authenticate(ctx, bearerToken(ctx))
	if err != nil {
		return nil, err
	}
	allowed := false
	switch audience {
	case ServicesAndAdmins:
		allowed = claims.Role.ServesServices()
	case Orchestrators:
		allowed = claims.Role == accounts.RoleService && g.orchestrators[ServiceClientID(claims)]
	case Admins:
		allowed = claims.Role == accounts.RoleAdmin
	case Principals:
		allowed = claims.Role == accounts.RoleUser || claims.Role == accounts.RoleAdmin || claims.Role == accounts.RoleService
	}
	ctx = context.WithValue(ctx, callerKey{}, claims)
	if !allowed {
		// The refused caller stays in ctx for the audit line.
		return ctx, chiterr.New(chiterr.PermissionDenied, "this call is for %s; the caller is %s %q", audience, claims.Role, claims.Subject)
	}
	return ctx, nil
}

// ServiceClientID is the client id of a service account's token. Tokens
// issued before client ids were recorded named the account in `sub`.
func ServiceClientID(claims tokens.Claims) string {
	if claims.ClientID != "" {
		return claims.ClientID
	}
	return strings.TrimPrefix(claims.Subject, accounts.ServiceSubjectPrefix)
}

// bearerToken returns the token of an `authorization: Bearer ...` metadata
// entry; the gateway forwards the HTTP Authorization header there.
func bearerToken(ctx context.Context) string {
	for _, value := range metadata.ValueFromIncomingContext(ctx, "authorization") {
		scheme, token, ok := strings.Cut(value, " ")
		if ok && strings.EqualFold(scheme, "bearer") {
			return strings.TrimSpace(token)
		}
	}
	return ""
}
