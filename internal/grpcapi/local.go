package grpcapi

import (
	"context"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/tokens"
)

// TransportLocal names the calls chitd's operator commands make to the
// Admin API handlers in their own process (server.NewLocalAdmin).
const TransportLocal Transport = "local"

// LocalOperatorSubject is the subject (and audit actor) of the local
// operator, followed by ":" and the operating-system user when known. No
// principal's subject can take it: names and client ids have no ':' and
// service accounts' subjects start with "service:".
const LocalOperatorSubject = "local-operator"

type localOperatorKey struct{}

// WithLocalOperator marks ctx as a call by the person running chitd's
// operator commands on this machine, osUser if known. Whoever can read the
// store's files or DSN can change anything in it, so that person is trusted
// as an admin; the mark is a context value, which no gRPC or HTTP request
// can carry, and only a LocalGatekeeper reads it: the server's own
// gatekeepers ignore it even if it reached them.
func WithLocalOperator(ctx context.Context, osUser string) context.Context {
	subject := LocalOperatorSubject
	if osUser != "" {
		subject += ":" + osUser
	}
	return context.WithValue(ctx, localOperatorKey{}, tokens.Claims{Subject: subject, Role: accounts.RoleAdmin})
}

// NewLocalGatekeeper returns the gatekeeper of the in-process channel of
// chitd's operator commands: it admits the local operator (WithLocalOperator)
// to the admin RPCs and refuses everything else, bearer tokens included, since
// nothing in that process can check one.
func NewLocalGatekeeper() *Gatekeeper {
	return &Gatekeeper{localOperator: true}
}

// authorizeLocal is authorize for a LocalGatekeeper.
func authorizeLocal(ctx context.Context, rule Rule, fullMethod string) (context.Context, error) {
	claims, ok := ctx.Value(localOperatorKey{}).(tokens.Claims)
	if !ok {
		return nil, chiterr.New(chiterr.Unauthenticated, "the operator commands' channel serves the local operator only")
	}
	if rule.Audience != Admins {
		return nil, chiterr.New(chiterr.PermissionDenied, "method %s is not an admin call", fullMethod)
	}
	return context.WithValue(ctx, callerKey{}, claims), nil
}
