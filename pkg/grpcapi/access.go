package grpcapi

import (
	"context"
	"strings"

	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/pkg/accounts"
	"github.com/chit-auth/chit/pkg/chiterr"
	"github.com/chit-auth/chit/pkg/tokens"
)

// Audience says who may call an RPC.
type Audience int

const (
	// Public RPCs take no bearer token; one that is sent is ignored. RPCs that
	// check tokens themselves (CheckToken) are public for this table.
	Public Audience = iota
	// ServicesAndAdmins need a valid token with the SERVICE or ADMIN role.
	ServicesAndAdmins
)

func (a Audience) String() string {
	switch a {
	case Public:
		return "public"
	case ServicesAndAdmins:
		return "services and admins"
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

	// The UCloud contract: "Auth: Services" for all but refresh, which a
	// provider calls with nothing but its refresh token.
	authv1.AuthProviders_Register_FullMethodName:              ServicesAndAdmins,
	authv1.AuthProviders_Claim_FullMethodName:                 ServicesAndAdmins,
	authv1.AuthProviders_Renew_FullMethodName:                 ServicesAndAdmins,
	authv1.AuthProviders_Refresh_FullMethodName:               Public,
	authv1.AuthProviders_RetrievePublicKey_FullMethodName:     ServicesAndAdmins,
	authv1.AuthProviders_RefreshAsOrchestrator_FullMethodName: ServicesAndAdmins,
	authv1.AuthProviders_GenerateKeyPair_FullMethodName:       ServicesAndAdmins,

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

// authorize applies the access rule of fullMethod and returns the context the
// handler runs in.
func authorize(ctx context.Context, checker *tokens.Service, fullMethod string) (context.Context, error) {
	audience, ok := AccessRules[fullMethod]
	if !ok {
		return nil, chiterr.New(chiterr.PermissionDenied, "method %s is not open to any caller", fullMethod)
	}
	if audience == Public {
		return ctx, nil
	}
	claims, err := checker.Check(ctx, bearerToken(ctx))
	if err != nil {
		return nil, err
	}
	switch claims.Role {
	case accounts.RoleService, accounts.RoleAdmin:
		return context.WithValue(ctx, callerKey{}, claims), nil
	}
	return nil, chiterr.New(chiterr.PermissionDenied, "this call is for %s; the caller's role is %s", audience, claims.Role)
}

// bearerToken returns the token of an `authorization: Bearer ...` metadata
// entry; the gateway forwards the HTTP Authorization header there.
func bearerToken(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, value := range md.Get("authorization") {
		scheme, token, ok := strings.Cut(value, " ")
		if ok && strings.EqualFold(scheme, "bearer") {
			return strings.TrimSpace(token)
		}
	}
	return ""
}
