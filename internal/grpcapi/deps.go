package grpcapi

import (
	"context"
	"github.com/chit-auth/chit/internal/grants"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/device"
	"github.com/chit-auth/chit/internal/federation"
	"github.com/chit-auth/chit/internal/paging"
	"github.com/chit-auth/chit/internal/possession"
	"github.com/chit-auth/chit/internal/providers"
	"github.com/chit-auth/chit/internal/revocationfeed"
	"github.com/chit-auth/chit/internal/sessions"
	"github.com/chit-auth/chit/internal/ssf"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/tokens"
)

// Config is the transport's own setting.
type Config struct {
	// Orchestrators names the services that may call refreshAsOrchestrator.
	Orchestrators []string
}

// Dependencies are the core services the handlers call.
type Dependencies struct {
	Tokens    *tokens.Service
	Authorize *authorize.Service
	Providers *providers.Service
	Directory *accounts.Directory
	// Grants is the grant table the AuthService's token RPCs dispatch to,
	// the one /oauth2/token dispatches to as well.
	Grants *grants.Service
	// Device starts the CLI's device authorizations (its polls go through
	// Grants).
	Device *device.Service
	// Sessions are the sign-in page's browser sessions, which admins list
	// and end.
	Sessions *sessions.Service
	// Pages makes and reads the page tokens of the Admin API's lists.
	Pages *paging.Tokens
	// SigningKeys lists and rotates the server's signing keys.
	SigningKeys SigningKeys
	// Federation manages the federation rules (workload identity).
	Federation *federation.Service
	// Possession checks what calls prove they hold (DPoP proofs, client
	// certificates), for sender-constrained tokens.
	Possession *possession.Verifier
	// Revocations is this replica's revocation feed.
	Revocations *revocationfeed.Feed
	// SecurityEvents manages the Shared Signals streams (SSF/CAEP
	// receivers) the Admin API registers.
	SecurityEvents *ssf.Service
}

// SigningKeys are the server's token-signing keys as an admin manages them.
type SigningKeys interface {
	// List returns every stored signing key.
	List(ctx context.Context) ([]storage.SigningKey, error)
	// Rotate activates the next key as keys.Rotate does, with the server's
	// algorithm and sealer, and makes this replica sign with it at once.
	Rotate(ctx context.Context, force bool) error
}
