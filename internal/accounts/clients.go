package accounts

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/secrets"
	"github.com/chit-auth/chit/internal/storage"
)

// Chit's own first-party clients need no registration. They are public
// (nobody can keep a secret in them) and limit no scopes: what a person
// obtains through them is what the person is allowed.
const (
	// APIClientID is the client of AuthService's Token and RefreshToken, on
	// gRPC and REST, and of /oauth2/token calls that name no client.
	APIClientID = "chit-api"
	// CLIClientID is Chit's command-line client: the sign-in page for it
	// accepts any loopback redirect URI (RFC 8252), and LoginCli and
	// RefreshCli act as it.
	CLIClientID = "chit-cli"
)

// FirstPartyClientIDs are reserved: no service account or client takes them.
var FirstPartyClientIDs = []string{APIClientID, CLIClientID}

// Client is an OAuth client as the core sees it.
type Client struct {
	ID string
	// FirstParty marks Chit's own clients.
	FirstParty bool
	// Confidential clients authenticate with a secret; public ones cannot.
	Confidential bool
	// PKCEOptional lets a confidential client sign people in without PKCE
	// (a public client always needs it).
	PKCEOptional bool
	// IDTokenSigningAlgorithm is the algorithm its ID tokens are signed
	// with (id_token_signed_response_alg); empty is the server's.
	IDTokenSigningAlgorithm string
	// Service marks a service account acting as its own OAuth client
	// (client credentials only).
	Service bool
	// DeviceAuthorization lets the client use the device grant (RFC 8628);
	// Chit's own CLI client may.
	DeviceAuthorization bool
	// RequireDPoP makes the client's token requests carry a DPoP proof, so
	// that its tokens are bound to the proof's key (RFC 9449 §5.2.1,
	// dpop_bound_access_tokens): a registered client's setting, or its
	// service account's for a service acting as its own client; Chit's own
	// clients do not require it (they may still send proofs).
	RequireDPoP  bool
	RedirectURIs []string
	Grants       storage.Grants
	// CreatedAt tells a registered client from an earlier one of the same id.
	CreatedAt time.Time
	// ReadAt is when the client's record was read, as Principal.ReadAt;
	// zero for Chit's own clients, which have no record.
	ReadAt time.Time
}

// Allows reports whether scope may be asked for through the client: any
// through Chit's own; through a registered one, the scopes granted to it
// and ClientScopes. It allocates nothing.
func (c Client) Allows(scope string) bool {
	return c.FirstParty || slices.Contains(c.Grants.AllowedScopes, scope) || slices.Contains(ClientScopes, scope)
}

// FirstPartyClient is one of Chit's own clients (APIClientID, CLIClientID).
func FirstPartyClient(id string) Client { return Client{ID: id, FirstParty: true} }

func registeredClient(client storage.Client, readAt time.Time) Client {
	return Client{ID: client.ID, Confidential: len(client.SecretHash) > 0, PKCEOptional: client.PKCEOptional, RedirectURIs: client.RedirectURIs,
		IDTokenSigningAlgorithm: client.IDTokenSignedResponseAlg, DeviceAuthorization: client.DeviceAuthorization,
		RequireDPoP: client.RequireDPoP, Grants: client.Grants, CreatedAt: client.CreatedAt, ReadAt: readAt}
}

var errBadClientAuth = chiterr.New(chiterr.Unauthenticated, "client authentication failed").WithReason(chiterr.ReasonInvalidClient)

// LookupClient returns a client by id, first-party or registered, as it is
// now.
func (d *Directory) LookupClient(ctx context.Context, id string) (Client, error) {
	if slices.Contains(FirstPartyClientIDs, id) {
		return FirstPartyClient(id), nil
	}
	if err := ValidateClientID(id); err != nil {
		return Client{}, err
	}
	readAt := d.now()
	client, err := d.store.GetClient(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return Client{}, chiterr.New(chiterr.InvalidArgument, "client %q is not registered", id)
	}
	if err != nil {
		return Client{}, fmt.Errorf("read client: %w", err)
	}
	return registeredClient(client, readAt), nil
}

// AuthenticateClient authenticates the client of a token request (RFC 6749
// §2.3): a confidential client must present its secret, a public client
// must present none, and a service account acts as its own client with its
// secret. No id means APIClientID.
func (d *Directory) AuthenticateClient(ctx context.Context, id, secret string) (Client, error) {
	if id == "" {
		if secret != "" {
			return Client{}, errBadClientAuth
		}
		id = APIClientID
	}
	if slices.Contains(FirstPartyClientIDs, id) {
		if secret != "" {
			return Client{}, errBadClientAuth
		}
		return FirstPartyClient(id), nil
	}
	if err := ValidateClientID(id); err != nil {
		return Client{}, err
	}
	readAt := d.now()
	// A service account whose secret matches its entry in the service
	// account cache is answered from it, as AuthenticateService (client
	// credentials, on every transport) answers it, without first reading
	// the clients to find the id is none of theirs: introspection by a
	// service read a client that does not exist on every call, a quarter
	// of the server's CPU on SQLite. Client ids and service account ids are
	// one space (the store refuses an id the other kind has), so an entry
	// says the id is not a client's. The cache's rules hold unchanged: only
	// a matching secret is answered from memory (a wrong one reads the
	// store below, like an unknown id); a deletion, rotation or grant
	// change on this server forgets the entry at once; one made on another
	// replica is seen when the entry expires, at most
	// Config.ServiceAccountCacheTTL after the store was read, as for client
	// credentials. A client registered elsewhere under a deleted service's
	// id waits for that expiry too.
	if secret != "" {
		if principal, cached, _ := d.cachedService(id, secrets.Digest(secret), readAt); cached {
			return serviceClient(principal), nil
		}
	}
	var generation uint64
	if d.clients != nil {
		var cached cachedRead[storage.Client]
		var fresh bool
		if cached, fresh, generation = d.clients.present.get(id, readAt); fresh {
			if client, err := authenticateRegistered(cached.value, cached.readAt, secret); err == nil {
				return client, nil
			}
			// A failure reads the store, as an unknown id does.
		}
	}
	stored, err := d.store.GetClient(ctx, id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if secret == "" {
			return Client{}, errBadClientAuth
		}
		principal, err := d.AuthenticateService(ctx, id, secret)
		if err != nil {
			if chiterr.KindOf(err) == chiterr.Unauthenticated {
				return Client{}, errBadClientAuth
			}
			return Client{}, err
		}
		return serviceClient(principal), nil
	case err != nil:
		return Client{}, fmt.Errorf("read client: %w", err)
	}
	client, err := authenticateRegistered(stored, readAt, secret)
	if err == nil && d.clients != nil {
		d.clients.present.put(stored.ID, stored, readAt, generation)
	}
	return client, err
}

// authenticateRegistered checks secret against a registered client: none
// for a public one, its own for a confidential one.
func authenticateRegistered(stored storage.Client, readAt time.Time, secret string) (Client, error) {
	client := registeredClient(stored, readAt)
	if !client.Confidential {
		if secret != "" {
			return Client{}, errBadClientAuth
		}
		return client, nil
	}
	if secret == "" || subtle.ConstantTimeCompare(secrets.Digest(secret), stored.SecretHash) != 1 {
		return Client{}, errBadClientAuth
	}
	return client, nil
}

// serviceClient is a service account acting as its own OAuth client.
func serviceClient(principal Principal) Client {
	return Client{ID: principal.Name, Service: true, Confidential: true, RequireDPoP: principal.RequireDPoP, Grants: principal.Grants,
		ReadAt: principal.ReadAt}
}

// ClientRegistration is a new OAuth client.
type ClientRegistration struct {
	ID           string
	RedirectURIs []string
	// Confidential clients get a secret; public ones must use PKCE.
	Confidential bool
	// PKCEOptional lets a confidential client go without PKCE.
	PKCEOptional bool
	// IDTokenSignedResponseAlg is the algorithm of its ID tokens; empty is
	// the server's.
	IDTokenSignedResponseAlg string
	// DeviceAuthorization allows the client the device grant (RFC 8628).
	DeviceAuthorization bool
	// RequireDPoP issues the client tokens only with a DPoP proof (RFC
	// 9449), bound to its key.
	RequireDPoP bool
	Grants      storage.Grants
}

// checkIDTokenAlgorithm refuses an id_token_signed_response_alg the server
// has no keys for: such a client's ID tokens could not be signed as it
// expects. Empty (the server's algorithm) is always accepted.
func (d *Directory) checkIDTokenAlgorithm(alg string) error {
	if alg == "" || slices.Contains(d.idTokenAlgorithms, alg) {
		return nil
	}
	return chiterr.New(chiterr.InvalidArgument, "id_token_signed_response_alg must be one of %s (the algorithms this server signs ID tokens with) or empty, not %s",
		strings.Join(d.idTokenAlgorithms, ", "), chiterr.Quote(alg))
}

// errPublicPKCE refuses PKCE optional for a public client: without a
// secret, the challenge is all that binds a code to the client that asked
// for it (RFC 9700 §2.1.1).
func errPublicPKCE(id string) *chiterr.Error {
	return chiterr.New(chiterr.InvalidArgument, "client %q is public: it must use PKCE (only a confidential client may have PKCE optional)", id)
}

// CreateClient stores an OAuth client that must use PKCE; see
// RegisterClient.
func (d *Directory) CreateClient(ctx context.Context, id string, redirectURIs []string, confidential bool, grants storage.Grants) (string, error) {
	return d.RegisterClient(ctx, ClientRegistration{ID: id, RedirectURIs: redirectURIs, Confidential: confidential, Grants: grants})
}

// RegisterClient stores an OAuth client. A confidential client gets a
// secret, returned once and stored as a digest; a public one gets "" and
// must use PKCE.
func (d *Directory) RegisterClient(ctx context.Context, registration ClientRegistration) (string, error) {
	id, grants := registration.ID, registration.Grants
	if err := d.checkClientID("client", id); err != nil {
		return "", err
	}
	if registration.PKCEOptional && !registration.Confidential {
		return "", errPublicPKCE(id)
	}
	if err := d.checkIDTokenAlgorithm(registration.IDTokenSignedResponseAlg); err != nil {
		return "", err
	}
	if err := checkDefaults(grants, ClientScopes); err != nil {
		return "", err
	}
	if err := d.checkAudiences(id, grants.AllowedAudiences); err != nil {
		return "", err
	}
	record := storage.Client{ID: id, RedirectURIs: registration.RedirectURIs, PKCEOptional: registration.PKCEOptional,
		IDTokenSignedResponseAlg: registration.IDTokenSignedResponseAlg, DeviceAuthorization: registration.DeviceAuthorization,
		RequireDPoP: registration.RequireDPoP, Grants: grants, CreatedAt: d.now()}
	var secret string
	if registration.Confidential {
		var err error
		if secret, record.SecretHash, err = d.newClientSecret(); err != nil {
			return "", err
		}
	}
	defer d.forgetClient(record.ID) // after the write: a read that raced it is not kept
	if err := d.store.CreateClient(ctx, record); err != nil {
		return "", clientIDError(err, "client", id)
	}
	return secret, nil
}

// changeClient applies change to client id's record (change may refuse
// with an error, and nothing is written), then forgets the cached client;
// NotFound when there is no such client.
func (d *Directory) changeClient(ctx context.Context, id string, change func(*storage.Client) error) error {
	defer d.forgetClient(id) // after the write: a read that raced it is not kept
	err := d.store.UpdateClient(ctx, id, func(client *storage.Client) (*storage.SubjectRevocation, error) {
		return nil, change(client)
	})
	if errors.Is(err, storage.ErrNotFound) {
		return chiterr.New(chiterr.NotFound, "client %q does not exist", id)
	}
	return err
}

// SetClientPKCE says whether a confidential client may sign people in
// without PKCE. It applies to authorization requests from then on; codes
// already issued keep the challenge they were issued with.
func (d *Directory) SetClientPKCE(ctx context.Context, id string, optional bool) error {
	return d.changeClient(ctx, id, func(client *storage.Client) error {
		if optional && len(client.SecretHash) == 0 {
			return errPublicPKCE(id)
		}
		client.PKCEOptional = optional
		return nil
	})
}

// SetClientIDTokenAlgorithm sets the algorithm a client's ID tokens are
// signed with (empty: the server's), from the next ID token on.
func (d *Directory) SetClientIDTokenAlgorithm(ctx context.Context, id, alg string) error {
	if err := d.checkIDTokenAlgorithm(alg); err != nil {
		return err
	}
	return d.changeClient(ctx, id, func(client *storage.Client) error {
		client.IDTokenSignedResponseAlg = alg
		return nil
	})
}

// SetClientDeviceAuthorization allows or refuses a client the device
// grant, from the next device authorization request on; requests already
// started are refused at their next poll when it is turned off (the poll
// reads the client again).
func (d *Directory) SetClientDeviceAuthorization(ctx context.Context, id string, allowed bool) error {
	return d.changeClient(ctx, id, func(client *storage.Client) error {
		client.DeviceAuthorization = allowed
		return nil
	})
}

// SetClientRequireDPoP says whether a client's token requests must carry a
// DPoP proof (RFC 9449 §5.2.1), its tokens then bound to the proof's key.
// It applies to token requests from then on: tokens issued before keep
// working as they were issued (deleting the client ends them).
func (d *Directory) SetClientRequireDPoP(ctx context.Context, id string, required bool) error {
	return d.changeClient(ctx, id, func(client *storage.Client) error {
		client.RequireDPoP = required
		return nil
	})
}

// ListClients returns the clients of page, by id.
func (d *Directory) ListClients(ctx context.Context, page storage.Page) ([]storage.Client, error) {
	return d.store.ListClients(ctx, page)
}

// GetClient returns the client id as stored.
func (d *Directory) GetClient(ctx context.Context, id string) (storage.Client, error) {
	client, err := d.store.GetClient(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Client{}, chiterr.New(chiterr.NotFound, "client %q does not exist", id)
	}
	return client, err
}

// RotateClientSecret gives a confidential client a new secret and returns
// it (stored as a digest, never shown again); the old one stops at once.
// Refresh tokens issued to the client keep working with the new secret. A
// public client has no secret to rotate.
func (d *Directory) RotateClientSecret(ctx context.Context, id string) (string, error) {
	secret, digest, err := d.newClientSecret()
	if err != nil {
		return "", err
	}
	defer d.forgetClient(id) // after the write: a read that raced it is not kept
	err = d.store.UpdateClient(ctx, id, func(client *storage.Client) (*storage.SubjectRevocation, error) {
		if len(client.SecretHash) == 0 {
			return nil, chiterr.New(chiterr.FailedPrecondition, "client %q is public: it has no secret to rotate", id)
		}
		client.SecretHash = digest
		return nil, nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return "", chiterr.New(chiterr.NotFound, "client %q does not exist", id)
	}
	if err != nil {
		return "", err
	}
	return secret, nil
}

// SetClientGrants replaces what may be obtained through a client. When it
// narrows, access tokens issued through the client before are refused.
func (d *Directory) SetClientGrants(ctx context.Context, id string, grants storage.Grants) error {
	if err := checkDefaults(grants, ClientScopes); err != nil {
		return err
	}
	if err := d.checkAudiences(id, grants.AllowedAudiences); err != nil {
		return err
	}
	subject := ClientSubject(id)
	var narrowed bool
	defer d.forgetClient(id) // after the write: a read that raced it is not kept
	err := d.store.UpdateClient(ctx, id, func(client *storage.Client) (*storage.SubjectRevocation, error) {
		narrowed = narrows(client.Grants, grants)
		client.Grants = grants
		return d.revocationIf(narrowed, subject), nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return chiterr.New(chiterr.NotFound, "client %q does not exist", id)
	}
	return d.refuseOnCommit(ctx, clientIDError(err, "client", id), narrowed, subject)
}

// DeleteClient removes a client: its refresh tokens and pending codes are
// deleted and the access tokens issued through it refused.
func (d *Directory) DeleteClient(ctx context.Context, id string) error {
	subject := ClientSubject(id)
	defer d.forgetClient(id) // after the write: a read that raced it is not kept
	err := d.store.DeleteClient(ctx, id, *d.revocationIf(true, subject))
	d.origins.forget() // its origins went with it
	if errors.Is(err, storage.ErrNotFound) {
		return chiterr.New(chiterr.NotFound, "client %q does not exist", id)
	}
	return d.refuseOnCommit(ctx, err, true, subject)
}
