package grants

import (
	"context"
	"fmt"
	"slices"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/device"
	"github.com/chit-auth/chit/internal/federation"
	"github.com/chit-auth/chit/internal/tokens"
)

// Service runs the grants of the table over the token and sign-in cores.
type Service struct {
	tokens     *tokens.Service
	directory  *accounts.Directory
	authorize  *authorize.Service
	federation *federation.Service
	device     *device.Service
}

// Dependencies are the cores the grants issue through.
type Dependencies struct {
	Tokens    *tokens.Service
	Directory *accounts.Directory
	Authorize *authorize.Service
	// Federation exchanges the jwt-bearer grant's assertions; nil refuses
	// the grant.
	Federation *federation.Service
	// Device runs the device code grant; nil leaves it unsupported.
	Device *device.Service
}

// New returns the grants over deps.
func New(deps Dependencies) *Service {
	return &Service{tokens: deps.Tokens, directory: deps.Directory, authorize: deps.Authorize, federation: deps.Federation, device: deps.Device}
}

// ErrUnsupportedGrantType answers a Request whose Type is not in the table.
var ErrUnsupportedGrantType = chiterr.New(chiterr.InvalidArgument, "unsupported grant type")

// ClientRefusedError is a refused authentication of a client that is the
// grant's subject too (client credentials): the OAuth endpoint answers it
// as invalid_client (RFC 6749 §5.2), gRPC as the error it wraps.
type ClientRefusedError struct{ Err error }

func (e *ClientRefusedError) Error() string { return e.Err.Error() }
func (e *ClientRefusedError) Unwrap() error { return e.Err }

// Issue runs req's grant: it authenticates the client as the grant
// accepts, once, then issues.
func (s *Service) Issue(ctx context.Context, req Request) (tokens.Grant, error) {
	grant, ok := lookup(req)
	if !ok {
		return tokens.Grant{}, ErrUnsupportedGrantType
	}
	req = req.only(grant.Reads)
	client, err := s.authenticate(ctx, grant, req)
	if err != nil {
		return tokens.Grant{}, err
	}
	// Checked before the grant runs, which may redeem a code or a device
	// authorization for good: a client that must prove a key gets
	// nothing, and loses nothing, without a proof.
	if (client.client.RequireDPoP || client.service.RequireDPoP) && req.Binding.KeyThumbprint == "" {
		return tokens.Grant{}, tokens.ErrDPoPRequired
	}
	issued, err := grant.issue(ctx, s, client, req)
	if err != nil {
		return tokens.Grant{}, err
	}
	if err := grant.Issues.check(issued); err != nil {
		return tokens.Grant{}, fmt.Errorf("grant %s: %w", grant.Type, err)
	}
	return issued, nil
}

// authenticated is the client of a request, as its grant's Client says.
type authenticated struct {
	client accounts.Client
	// service is the service account a ServiceAccounts grant signs in.
	service accounts.Principal
}

func (s *Service) authenticate(ctx context.Context, grant Grant, req Request) (authenticated, error) {
	credentials := req.Client
	if grant.Client == ServiceAccounts {
		// A malformed scope is the request's fault, not a failed sign-in of
		// the client.
		if _, err := accounts.ParseScope(req.Scope); err != nil {
			return authenticated{}, err
		}
	}
	if !slices.Contains(grant.Authentications, credentials.Authentication) {
		if grant.refusedClient != nil {
			return authenticated{}, grant.refusedClient
		}
		return authenticated{}, chiterr.New(chiterr.InvalidArgument, "grant_type %s does not take client authentication %s", grant.Type, credentials.Authentication)
	}
	switch grant.Client {
	case NoClients:
		return authenticated{}, nil
	case ServiceAccounts:
		principal, err := s.directory.AuthenticateService(ctx, credentials.ID, credentials.Secret)
		if kind := chiterr.KindOf(err); err != nil && chiterr.ReasonOf(err) == "" && (kind == chiterr.Unauthenticated || kind == chiterr.InvalidArgument) {
			return authenticated{}, &ClientRefusedError{Err: err}
		}
		return authenticated{service: principal}, err
	}
	if credentials.Authentication == FirstParty {
		if !slices.Contains(accounts.FirstPartyClientIDs, credentials.ID) {
			return authenticated{}, fmt.Errorf("%q is not one of Chit's own clients", credentials.ID)
		}
		return authenticated{client: accounts.FirstPartyClient(credentials.ID)}, nil
	}
	// The client is authenticated on every grant (RFC 6749 §2.3): a
	// confidential client with its secret, a public one by its id.
	client, err := s.directory.AuthenticateClient(ctx, credentials.ID, credentials.Secret)
	return authenticated{client: client}, err
}
