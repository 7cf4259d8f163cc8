package grpcapi

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/possession"
	"github.com/chit-auth/chit/internal/revocationfeed"
	"github.com/chit-auth/chit/internal/tokens"
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
	// RevocationWatchers need a SERVICE token carrying the scope
	// chit:revocations (revocationfeed.Scope), or an ADMIN token.
	RevocationWatchers
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
	case RevocationWatchers:
		return "services with the scope " + revocationfeed.Scope + " and admins"
	}
	return "unknown"
}

// Rule is the access rule of one RPC.
type Rule struct {
	Audience Audience
	// CallerFromStore: the caller's record and revocations are read from the
	// store on every call (tokens.Service.AuthenticateCurrent), never from
	// this replica's caches, so that power taken away on any replica ends at
	// once everywhere. For every call that changes principals, grants, keys
	// or providers.
	CallerFromStore bool
}

// The rules the table is made of.
var (
	public                    = Rule{Audience: Public}
	principals                = Rule{Audience: Principals}
	principalsChanging        = Rule{Audience: Principals, CallerFromStore: true}
	servicesAndAdmins         = Rule{Audience: ServicesAndAdmins}
	servicesAndAdminsChanging = Rule{Audience: ServicesAndAdmins, CallerFromStore: true}
	// An orchestrator mints any provider's tokens: a power that ends at
	// once, like an admin's.
	orchestrators = Rule{Audience: Orchestrators, CallerFromStore: true}
	admins        = Rule{Audience: Admins, CallerFromStore: true}
)

// AccessRules is the one table of who may call each RPC, for gRPC and,
// because the gateway calls through gRPC, for REST. A method missing from it
// is refused.
var AccessRules = map[string]Rule{
	authv1.AuthService_Token_FullMethodName:           public,
	authv1.AuthService_RefreshToken_FullMethodName:    public,
	authv1.AuthService_LoginCli_FullMethodName:        public,
	authv1.AuthService_RefreshCli_FullMethodName:      public,
	authv1.AuthService_CheckToken_FullMethodName:      public,
	authv1.AuthService_GetAuthorizeUrl_FullMethodName: public,
	authv1.AuthService_GetAuthStatus_FullMethodName:   public,
	// The device flow's codes are the CLI's credentials, as LoginCli's code.
	authv1.AuthService_StartDeviceLogin_FullMethodName: public,
	authv1.AuthService_PollDeviceLogin_FullMethodName:  public,
	// Revoke by token value needs nothing else (RFC 7009); revoking all of a
	// subject's sessions checks the bearer token in the handler.
	authv1.AuthService_Revoke_FullMethodName: public,
	// Each caller manages its own API keys.
	authv1.AuthService_CreateApiKey_FullMethodName: principalsChanging,
	authv1.AuthService_ListApiKeys_FullMethodName:  principals,
	authv1.AuthService_RevokeApiKey_FullMethodName: principalsChanging,

	// The UCloud contract: "Auth: Services" for all but refresh, which a
	// provider calls with nothing but its refresh token.
	authv1.AuthProviders_Register_FullMethodName:              servicesAndAdminsChanging,
	authv1.AuthProviders_Claim_FullMethodName:                 servicesAndAdminsChanging,
	authv1.AuthProviders_Renew_FullMethodName:                 servicesAndAdminsChanging,
	authv1.AuthProviders_Refresh_FullMethodName:               public,
	authv1.AuthProviders_RetrievePublicKey_FullMethodName:     servicesAndAdmins,
	authv1.AuthProviders_RefreshAsOrchestrator_FullMethodName: orchestrators,
	authv1.AuthProviders_GenerateKeyPair_FullMethodName:       servicesAndAdmins,

	// Managing what Chit knows is for admins alone.
	adminv1.AdminService_CreateUser_FullMethodName:                     admins,
	adminv1.AdminService_GetUser_FullMethodName:                        admins,
	adminv1.AdminService_ListUsers_FullMethodName:                      admins,
	adminv1.AdminService_SetUserRole_FullMethodName:                    admins,
	adminv1.AdminService_SetUserScopes_FullMethodName:                  admins,
	adminv1.AdminService_SetUserProfile_FullMethodName:                 admins,
	adminv1.AdminService_DeleteUser_FullMethodName:                     admins,
	adminv1.AdminService_CreateServiceAccount_FullMethodName:           admins,
	adminv1.AdminService_GetServiceAccount_FullMethodName:              admins,
	adminv1.AdminService_ListServiceAccounts_FullMethodName:            admins,
	adminv1.AdminService_SetServiceAccountGrants_FullMethodName:        admins,
	adminv1.AdminService_SetServiceAccountTokenExchange_FullMethodName: admins,
	adminv1.AdminService_SetServiceAccountDpop_FullMethodName:          admins,
	adminv1.AdminService_RotateServiceAccountSecret_FullMethodName:     admins,
	adminv1.AdminService_DeleteServiceAccount_FullMethodName:           admins,
	adminv1.AdminService_CreateClient_FullMethodName:                   admins,
	adminv1.AdminService_GetClient_FullMethodName:                      admins,
	adminv1.AdminService_ListClients_FullMethodName:                    admins,
	adminv1.AdminService_UpdateClient_FullMethodName:                   admins,
	adminv1.AdminService_SetClientGrants_FullMethodName:                admins,
	adminv1.AdminService_SetClientOrigins_FullMethodName:               admins,
	adminv1.AdminService_SetClientLogout_FullMethodName:                admins,
	adminv1.AdminService_RotateClientSecret_FullMethodName:             admins,
	adminv1.AdminService_DeleteClient_FullMethodName:                   admins,
	adminv1.AdminService_GetProvider_FullMethodName:                    admins,
	adminv1.AdminService_ListProviders_FullMethodName:                  admins,
	adminv1.AdminService_DeleteProvider_FullMethodName:                 admins,
	adminv1.AdminService_CreateFederationRule_FullMethodName:           admins,
	adminv1.AdminService_GetFederationRule_FullMethodName:              admins,
	adminv1.AdminService_ListFederationRules_FullMethodName:            admins,
	adminv1.AdminService_DeleteFederationRule_FullMethodName:           admins,
	adminv1.AdminService_CreateSecurityEventStream_FullMethodName:      admins,
	adminv1.AdminService_GetSecurityEventStream_FullMethodName:         admins,
	adminv1.AdminService_ListSecurityEventStreams_FullMethodName:       admins,
	adminv1.AdminService_DeleteSecurityEventStream_FullMethodName:      admins,
	adminv1.AdminService_SetSecurityEventStreamStatus_FullMethodName:   admins,
	adminv1.AdminService_VerifySecurityEventStream_FullMethodName:      admins,
	adminv1.AdminService_ListSigningKeys_FullMethodName:                admins,
	adminv1.AdminService_RotateSigningKeys_FullMethodName:              admins,
	adminv1.AdminService_ListLogins_FullMethodName:                     admins,
	adminv1.AdminService_RevokeLogin_FullMethodName:                    admins,
	adminv1.AdminService_RevokeLogins_FullMethodName:                   admins,
	adminv1.AdminService_ListSessions_FullMethodName:                   admins,
	adminv1.AdminService_EndSessions_FullMethodName:                    admins,
	adminv1.AdminService_ListApiKeys_FullMethodName:                    admins,
	adminv1.AdminService_RevokeApiKey_FullMethodName:                   admins,

	// What verifiers of tokens must refuse: for services entitled to it (a
	// service's name tells nothing of whom its tokens are for) and admins.
	authv1.RevocationFeedService_WatchRevocations_FullMethodName: {Audience: RevocationWatchers},

	// Load balancers and orchestrators probe health without credentials.
	grpc_health_v1.Health_Check_FullMethodName: public,
	grpc_health_v1.Health_List_FullMethodName:  public,
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
	possession    *possession.Verifier
	orchestrators map[string]bool
	// localOperator: the gatekeeper of chitd's in-process channel
	// (NewLocalGatekeeper), which admits the local operator alone.
	localOperator bool
}

// NewGatekeeper returns the access-rule enforcer; it verifies callers'
// tokens with deps.Tokens.
func NewGatekeeper(cfg Config, deps Dependencies) *Gatekeeper {
	g := &Gatekeeper{tokens: deps.Tokens, possession: deps.Possession, orchestrators: make(map[string]bool, len(cfg.Orchestrators))}
	for _, name := range cfg.Orchestrators {
		g.orchestrators[name] = true
	}
	return g
}

// Authorize applies the access rule of fullMethod to a call that is not a
// gRPC call (the revocation feed's Server-Sent Events): ctx carries the
// HTTP request's Authorization header as incoming `authorization` metadata.
// It returns the context the handler runs in, with the caller.
func (g *Gatekeeper) Authorize(ctx context.Context, fullMethod string) (context.Context, error) {
	return g.authorize(ctx, fullMethod)
}

// AuthenticateRequest verifies the caller of an HTTP endpoint that is no
// gRPC method and decides its own access (the Shared Signals poll): ctx
// carries the request's Authorization and DPoP headers as incoming
// `authorization` and `dpop` metadata, its method and path
// (possession.WithRequestTarget), which its DPoP proof names, and its
// client certificate. The token and its binding are checked as for every
// call; what the caller may do is the endpoint's to decide.
func (g *Gatekeeper) AuthenticateRequest(ctx context.Context) (tokens.Claims, error) {
	if n := len(metadata.ValueFromIncomingContext(ctx, "authorization")); n > 1 {
		return tokens.Claims{}, chiterr.New(chiterr.InvalidArgument, "authorization: send one credential, not %d", n)
	}
	return checkCaller(ctx, g.tokens.Authenticate, g.possession, "")
}

// authorize applies the access rule of fullMethod and returns the context the
// handler runs in. A caller refused for its role is still in the context
// returned with the error.
func (g *Gatekeeper) authorize(ctx context.Context, fullMethod string) (context.Context, error) {
	// Two credentials are one too many: which one a layer reads (the first
	// Bearer here, the last elsewhere) must never decide who the caller is.
	if n := len(metadata.ValueFromIncomingContext(ctx, "authorization")); n > 1 {
		return nil, chiterr.New(chiterr.InvalidArgument, "authorization: send one credential, not %d", n)
	}
	rule, ok := AccessRules[fullMethod]
	if !ok {
		return nil, chiterr.New(chiterr.PermissionDenied, "method %s is not open to any caller", fullMethod)
	}
	if g.localOperator {
		return authorizeLocal(ctx, rule, fullMethod)
	}
	audience := rule.Audience
	if audience == Public {
		return ctx, nil
	}
	// Only the server's own tokens authorize calls to Chit; tokens signed
	// with a provider's key are for the provider.
	authenticate := g.tokens.Authenticate
	if rule.CallerFromStore {
		authenticate = g.tokens.AuthenticateCurrent
	}
	claims, err := checkCaller(ctx, authenticate, g.possession, fullMethod)
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
	case RevocationWatchers:
		allowed = claims.Role == accounts.RoleAdmin || (claims.Role == accounts.RoleService && slices.Contains(claims.Scopes, revocationfeed.Scope))
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

// bearerToken returns the access token of an `authorization: Bearer ...`
// or `authorization: DPoP ...` metadata entry; the gateway forwards the HTTP
// Authorization header there.
func bearerToken(ctx context.Context) string {
	token, _ := presentedToken(ctx)
	return token
}

// presentedToken is the call's access token, and whether it came with the
// DPoP scheme.
func presentedToken(ctx context.Context) (string, bool) {
	for _, value := range metadata.ValueFromIncomingContext(ctx, "authorization") {
		if token, dpopScheme := possession.AccessToken(value); token != "" {
			return token, dpopScheme
		}
	}
	return "", false
}

// checkCaller verifies the call's access token with verify and, when the
// token is sender-constrained, that the call proves it holds the token's
// key (a DPoP proof for fullMethod's URL with the token's ath) or
// certificate. A bound token without its proof is worth no more than an
// invalid one.
func checkCaller(ctx context.Context, verify func(context.Context, string) (tokens.Claims, error), proofs *possession.Verifier, fullMethod string) (tokens.Claims, error) {
	token, dpopScheme := presentedToken(ctx)
	claims, err := verify(ctx, token)
	if err != nil {
		return tokens.Claims{}, err
	}
	// A proof is checked whenever one came, bound token or not: a replayed
	// or forged proof is refused rather than ignored.
	proven, err := proofs.Call(ctx, fullMethod, token, possession.ResourceRequest)
	if err != nil {
		return tokens.Claims{}, err
	}
	if err := claims.CheckBinding(proven, dpopScheme); err != nil {
		return tokens.Claims{}, err
	}
	return claims, nil
}
