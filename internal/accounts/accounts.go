package accounts

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/passwords"
	"github.com/chit-auth/chit/internal/secrets"
	"github.com/chit-auth/chit/internal/storage"
)

// Role is what a principal may do; it travels in the `role` claim.
type Role string

const (
	RoleUser     Role = "USER"
	RoleAdmin    Role = "ADMIN"
	RoleService  Role = "SERVICE"
	RoleProvider Role = "PROVIDER"
)

// ServesServices reports whether a caller of this role may use what Chit
// offers services (checking others' tokens, introspection, registering
// providers): services, and admins acting as one. The gRPC access rules and
// the OAuth endpoints ask this one question.
func (r Role) ServesServices() bool { return r == RoleService || r == RoleAdmin }

// ParseUserRole accepts the roles a person may hold: user or admin.
func ParseUserRole(name string) (Role, error) {
	switch Role(strings.ToUpper(name)) {
	case RoleUser:
		return RoleUser, nil
	case RoleAdmin:
		return RoleAdmin, nil
	}
	return "", chiterr.New(chiterr.InvalidArgument, "role must be user or admin, not %q", name)
}

// Principal is an authenticated caller and what it may obtain.
type Principal struct {
	// Subject is the `sub` of its tokens (UserSubject, ServiceSubject).
	Subject string
	Role    Role
	// Name is the user name or service account id behind Subject.
	Name   string
	Grants storage.Grants
	// TokenExchange is a service account's token exchange policy; zero for
	// a person.
	TokenExchange storage.TokenExchange
	// RequireDPoP makes a service account's token requests carry a DPoP
	// proof (RFC 9449), its tokens then bound to the proof's key; false for
	// a person.
	RequireDPoP bool
	// Profile is what a person's ID tokens and userinfo may say about them
	// (tokens.ProfileClaims); empty for a service account.
	Profile storage.Profile
	// CreatedAt tells a principal from an earlier one of the same name.
	CreatedAt time.Time
	// ReadAt is when the record was read from the store, taken before the
	// read (for a cached service account, when the cache read it). What the
	// record grants was true then, so tokens built on it count as issued
	// then: a change committed after ReadAt (a demotion during a password
	// hash, a narrowing made by another process while a replica still holds
	// the old record) refuses them.
	ReadAt time.Time
}

// Person reports whether the principal is a person (a user or an admin).
func (p Principal) Person() bool { return p.Role == RoleUser || p.Role == RoleAdmin }

func userPrincipal(user storage.User, readAt time.Time) Principal {
	return Principal{Subject: UserSubject(user.Name), Role: Role(user.Role), Name: user.Name, Grants: user.Grants, Profile: user.Profile,
		CreatedAt: user.CreatedAt, ReadAt: readAt}
}

func servicePrincipal(account storage.ServiceAccount, readAt time.Time) Principal {
	return Principal{Subject: ServiceSubject(account.ClientID), Role: RoleService, Name: account.ClientID, Grants: account.Grants,
		TokenExchange: account.TokenExchange, RequireDPoP: account.RequireDPoP, CreatedAt: account.CreatedAt, ReadAt: readAt}
}

// ClientSecretPrefix marks Chit client secrets so secret scanners can find
// leaked ones.
const ClientSecretPrefix = "chit_cs_"

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// ValidateName checks a user or service account name.
// ValidateClientID refuses, before any lookup, a client_id no client or
// service account can have: such an id names nobody, and some stores cannot
// even look it up (PostgreSQL refuses NUL bytes and invalid UTF-8).
func ValidateClientID(id string) error {
	if !namePattern.MatchString(id) {
		return chiterr.New(chiterr.InvalidArgument, "client_id is not a valid client id (1 to 64 letters, digits, '.', '_', '@' or '-')")
	}
	return nil
}

// ValidateLoginSubject checks that subject is one that holds logins and
// API keys: a person (a user name) or a service account ("service:ID").
// A client's principal key ("client:ID") names every token issued through
// the client, and ending "its" sessions would refuse everyone's.
func ValidateLoginSubject(subject string) error {
	name := subject
	if rest, ok := strings.CutPrefix(subject, ServiceSubjectPrefix); ok {
		name = rest
	}
	if !namePattern.MatchString(name) {
		return chiterr.New(chiterr.InvalidArgument, "subject must be a user name or \"service:ID\", the name or ID 1 to 64 letters, digits, '.', '_', '@' or '-'")
	}
	return nil
}

func ValidateName(kind, name string) error {
	if name == "" {
		return chiterr.New(chiterr.InvalidArgument, "%s name is required", kind)
	}
	if !namePattern.MatchString(name) {
		return chiterr.New(chiterr.InvalidArgument,
			"%s name must be 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", kind)
	}
	return nil
}

// Directory manages and authenticates accounts: users, service accounts
// and OAuth clients.
type Directory struct {
	// serverAudience is the `aud` of the server's own tokens: no client id
	// may take it.
	serverAudience string
	// idTokenAlgorithms are Config.IDTokenSigningAlgorithms.
	idTokenAlgorithms []string
	// throttle applies to a username at one address and to an address;
	// usernameThrottle to a username from every address.
	throttle         ThrottlePolicy
	usernameThrottle ThrottlePolicy
	// refused is told of every subject whose tokens a change refused.
	refused func(subject string)
	store   Store
	hasher  *passwords.Hasher
	now     func() time.Time
	random  io.Reader
	// services, when not nil, keeps service accounts briefly.
	services *serviceAccountCache
	// clients keeps registered OAuth clients as services keeps accounts.
	clients *clientCache
	// origins is the browser origins registered on clients, as last read.
	origins *originSet
}

// Config is what a Directory enforces besides its store's contents.
type Config struct {
	// ServerAudience is the server's own audience, which no service account
	// or client may take as its id.
	ServerAudience string
	// ServiceAccountCacheTTL is how long a service account read from the
	// store answers client-credentials sign-ins, and a registered OAuth
	// client the token requests that authenticate it; 0 reads them every
	// time.
	ServiceAccountCacheTTL time.Duration
	// IDTokenSigningAlgorithms are the algorithms the server can sign ID
	// tokens with: the only values a client's id_token_signed_response_alg
	// may take.
	IDTokenSigningAlgorithms []string
}

// Dependencies are what a Directory works with: its store, the password
// hasher (nil for a directory that never hashes), the clock and the source
// of secrets.
type Dependencies struct {
	Store  Store
	Hasher *passwords.Hasher
	Now    func() time.Time
	Random io.Reader
}

// NewDirectory returns a Directory, built as the other core services are:
// its configuration, then what it works with.
func NewDirectory(cfg Config, deps Dependencies) *Directory {
	d := &Directory{store: deps.Store, hasher: deps.Hasher, now: deps.Now, random: deps.Random, serverAudience: cfg.ServerAudience,
		idTokenAlgorithms: slices.Clone(cfg.IDTokenSigningAlgorithms),
		throttle:          DefaultThrottle, usernameThrottle: DefaultUsernameThrottle, origins: &originSet{}}
	if cfg.ServiceAccountCacheTTL > 0 {
		d.services = &serviceAccountCache{ttl: cfg.ServiceAccountCacheTTL}
		d.clients = newClientCache(cfg.ServiceAccountCacheTTL)
	}
	return d
}

// CreateUser adds a person who signs in with password, with what they may
// obtain besides the OpenID Connect scopes every person has, and no
// profile.
func (d *Directory) CreateUser(ctx context.Context, name, password string, role Role, grants storage.Grants) error {
	return d.AddUser(ctx, NewUser{Name: name, Password: password, Role: role, Grants: grants})
}

// NewUser is a person to add: who they are, what they may obtain besides
// the OpenID Connect scopes every person has, and what their ID tokens say
// about them.
type NewUser struct {
	Name     string
	Password string
	Role     Role
	Grants   storage.Grants
	// Profile is checked as CheckProfile checks it.
	Profile storage.Profile
}

// AddUser adds the person user describes.
func (d *Directory) AddUser(ctx context.Context, user NewUser) error {
	name, password, role, grants := user.Name, user.Password, user.Role, user.Grants
	if err := ValidateName("user", name); err != nil {
		return err
	}
	if role != RoleUser && role != RoleAdmin {
		return chiterr.New(chiterr.InvalidArgument, "role must be USER or ADMIN, not %q", role)
	}
	if len(grants.AllowedAudiences) > 0 {
		return chiterr.New(chiterr.InvalidArgument, "people are not granted audiences: the clients they sign in through are")
	}
	if err := checkDefaults(grants, PersonScopes); err != nil {
		return err
	}
	profile, err := CheckProfile(user.Profile)
	if err != nil {
		return err
	}
	if err := passwords.CheckPolicy(password); err != nil {
		return err
	}
	hash, err := d.hasher.Hash(ctx, password)
	if err != nil {
		return err
	}
	err = d.store.CreateUser(ctx, storage.User{Name: name, PasswordHash: hash, Role: string(role), Grants: grants, Profile: profile, CreatedAt: d.now()})
	if errors.Is(err, storage.ErrAlreadyExists) {
		return chiterr.New(chiterr.AlreadyExists, "user %q already exists", name)
	}
	return err
}

// ListUsers returns the users of page, by name.
func (d *Directory) ListUsers(ctx context.Context, page storage.Page) ([]storage.User, error) {
	return d.store.ListUsers(ctx, page)
}

// GetUser returns the user name as stored.
func (d *Directory) GetUser(ctx context.Context, name string) (storage.User, error) {
	user, err := d.store.GetUser(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.User{}, chiterr.New(chiterr.NotFound, "user %q does not exist", name)
	}
	return user, err
}

// LookupUser returns the user name as it is now: a refresh and a code
// exchange re-read it, so a deleted user, a new role or a narrower grant
// takes effect on the next token.
func (d *Directory) LookupUser(ctx context.Context, name string) (Principal, error) {
	readAt := d.now()
	user, err := d.store.GetUser(ctx, name)
	if err != nil {
		return Principal{}, err
	}
	return userPrincipal(user, readAt), nil
}

// LookupSubject returns the person or service account whose tokens have
// subject, as it is now; storage.ErrNotFound when there is none.
func (d *Directory) LookupSubject(ctx context.Context, subject string) (Principal, error) {
	clientID, isService := strings.CutPrefix(subject, ServiceSubjectPrefix)
	if !isService {
		return d.LookupUser(ctx, subject)
	}
	// A service account comes from the same short cache as its sign-ins
	// (AuthenticateService): a busy service's API key costs no read of it.
	readAt := d.now()
	var generation uint64
	if d.services != nil {
		var cached cachedRead[storage.ServiceAccount]
		var fresh bool
		if cached, fresh, generation = d.services.get(clientID, readAt); fresh {
			return servicePrincipal(cached.value, cached.readAt), nil
		}
	}
	account, err := d.store.GetServiceAccount(ctx, clientID)
	if err != nil {
		return Principal{}, err
	}
	if d.services != nil {
		d.services.put(account.ClientID, account, readAt, generation)
	}
	return servicePrincipal(account, readAt), nil
}

// ReadSubject is LookupSubject read from the store, never from the service
// account cache: for calls that must see a deletion made on another replica
// as soon as it commits (tokens.Service.AuthenticateCurrent).
func (d *Directory) ReadSubject(ctx context.Context, subject string) (Principal, error) {
	clientID, isService := strings.CutPrefix(subject, ServiceSubjectPrefix)
	if !isService {
		return d.LookupUser(ctx, subject)
	}
	readAt := d.now()
	account, err := d.store.GetServiceAccount(ctx, clientID)
	if err != nil {
		return Principal{}, err
	}
	return servicePrincipal(account, readAt), nil
}

// UserPrincipal is LookupUser for a user read by the caller at readAt
// (with what it reads beside it, as a refresh reads a login's record).
func (d *Directory) UserPrincipal(user storage.User, readAt time.Time) Principal {
	return userPrincipal(user, readAt)
}

// SetUserRole changes a user's role. The user's access tokens issued before
// are refused from then on; refresh tokens carry on with the new role.
func (d *Directory) SetUserRole(ctx context.Context, name string, role Role) error {
	if role != RoleUser && role != RoleAdmin {
		return chiterr.New(chiterr.InvalidArgument, "role must be USER or ADMIN, not %q", role)
	}
	return d.updateUser(ctx, name, func(user *storage.User) (bool, error) {
		changed := user.Role != string(role)
		user.Role = string(role)
		return changed, nil
	})
}

// SetUserGrants replaces what a user may obtain. When it narrows, the
// user's access tokens issued before are refused, and refreshes narrow.
func (d *Directory) SetUserGrants(ctx context.Context, name string, grants storage.Grants) error {
	if len(grants.AllowedAudiences) > 0 {
		return chiterr.New(chiterr.InvalidArgument, "people are not granted audiences: the clients they sign in through are")
	}
	if err := checkDefaults(grants, PersonScopes); err != nil {
		return err
	}
	return d.updateUser(ctx, name, func(user *storage.User) (bool, error) {
		narrowed := narrows(user.Grants, grants)
		user.Grants = grants
		return narrowed, nil
	})
}

// updateUser applies change to the user in one transaction; an error from
// change leaves the user as it was and is returned as it is.
func (d *Directory) updateUser(ctx context.Context, name string, change func(*storage.User) (refuseOldTokens bool, err error)) error {
	subject := UserSubject(name)
	var narrowed bool
	err := d.store.UpdateUser(ctx, name, func(user *storage.User) (*storage.SubjectRevocation, error) {
		var err error
		if narrowed, err = change(user); err != nil {
			return nil, err
		}
		return d.revocationIf(narrowed, subject), nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return chiterr.New(chiterr.NotFound, "user %q does not exist", name)
	}
	return d.refuseOnCommit(ctx, err, narrowed, subject)
}

// DeleteUser removes a user: their refresh tokens and pending codes are
// deleted and their access tokens refused, on every replica.
func (d *Directory) DeleteUser(ctx context.Context, name string) error {
	subject := UserSubject(name)
	err := d.store.DeleteUser(ctx, name, *d.revocationIf(true, subject))
	if errors.Is(err, storage.ErrNotFound) {
		return chiterr.New(chiterr.NotFound, "user %q does not exist", name)
	}
	return d.refuseOnCommit(ctx, err, true, subject)
}

// revocationIf is the revocation a change records in its own transaction
// when it narrows what subject may obtain: a crash keeps both or neither.
func (d *Directory) revocationIf(narrows bool, subject string) *storage.SubjectRevocation {
	if !narrows {
		return nil
	}
	return &storage.SubjectRevocation{Subject: subject, At: d.now()}
}

// refuseOnCommit records the revocation again once a narrowing change has
// committed (err is the change's outcome). The first one's time was taken
// before the commit: a sign-in that read the old record in between has a
// later read time, which the first revocation does not refuse, though its
// token carries the old grants. Every such read started before the commit,
// so a time taken after it refuses them all.
func (d *Directory) refuseOnCommit(ctx context.Context, err error, narrowed bool, subject string) error {
	if err != nil || !narrowed {
		return err
	}
	err = d.store.RefuseAccessTokens(ctx, storage.SubjectRevocation{Subject: subject, At: d.now()})
	if d.refused != nil {
		d.refused(subject)
	}
	if err != nil {
		return fmt.Errorf("the change is saved, but refusing the tokens issued while it was saved failed; run it again: %w", err)
	}
	return nil
}

// WhenTokensRefused names what to call once a change has refused subject's access
// tokens: the token service's ForgetRefusals, so that the replica that made
// the change refuses them at once (others within their revocation cache's
// ttl). The server sets it once, before serving.
func (d *Directory) WhenTokensRefused(refused func(subject string)) {
	d.refused = refused
}

// checkClientID refuses a reserved id for a service account or client: a
// token's `aud` must never be mistaken for a client. The store refuses ids
// and audiences that collide with each other (clientIDError).
func (d *Directory) checkClientID(kind, id string) error {
	if err := ValidateName(kind, id); err != nil {
		return err
	}
	if reserved(id, d.serverAudience) {
		return chiterr.New(chiterr.InvalidArgument, "%s id %q is reserved", kind, id)
	}
	return nil
}

// Client ids and audiences are compared without regard to case when they
// are given out: a service downstream may compare them so.
func equalFold(name string) func(string) bool {
	return func(other string) bool { return strings.EqualFold(name, other) }
}

// reserved reports whether name is a first-party client id or the server's
// audience, in any case.
func reserved(name, serverAudience string) bool {
	return slices.ContainsFunc(FirstPartyClientIDs, equalFold(name)) || strings.EqualFold(name, serverAudience)
}

// checkAudiences refuses audiences that are reserved or the principal's own
// id; the store refuses those that are another's id, atomically.
func (d *Directory) checkAudiences(ownID string, audiences []string) error {
	for _, audience := range audiences {
		if reserved(audience, d.serverAudience) {
			return chiterr.New(chiterr.InvalidArgument, "audience %q is reserved", audience)
		}
		if strings.EqualFold(audience, ownID) {
			return chiterr.New(chiterr.InvalidArgument, "audience %q is the principal's own id", audience)
		}
	}
	return nil
}

// clientIDError says what the store refused in the client_id space.
func clientIDError(err error, kind, id string) error {
	switch {
	case errors.Is(err, storage.ErrAlreadyExists):
		return chiterr.New(chiterr.AlreadyExists, "%s id %q is taken: it is a service account's or client's id, or an audience one of them may ask for", kind, id)
	case errors.Is(err, storage.ErrConflict):
		return chiterr.New(chiterr.InvalidArgument, "an audience of %s %q is the id of a service account or client", kind, id)
	}
	return err
}

// CreateServiceAccount adds a service account whose client id is name and
// returns its secret. The secret is not stored and cannot be shown again.
func (d *Directory) CreateServiceAccount(ctx context.Context, name string, grants storage.Grants) (string, error) {
	return d.AddServiceAccount(ctx, NewServiceAccount{Name: name, Grants: grants})
}

// NewServiceAccount is a service account to add.
type NewServiceAccount struct {
	Name   string
	Grants storage.Grants
	// TokenExchange is checked as NewTokenExchange checks it.
	TokenExchange storage.TokenExchange
	// RequireDPoP issues the account tokens only with a DPoP proof (RFC
	// 9449), bound to its key.
	RequireDPoP bool
}

// AddServiceAccount adds the service account account describes and returns
// its secret, as CreateServiceAccount does.
func (d *Directory) AddServiceAccount(ctx context.Context, account NewServiceAccount) (string, error) {
	name, grants := account.Name, account.Grants
	if err := d.checkClientID("service", name); err != nil {
		return "", err
	}
	if err := checkDefaults(grants, nil); err != nil {
		return "", err
	}
	if err := d.checkAudiences(name, grants.AllowedAudiences); err != nil {
		return "", err
	}
	if err := d.checkExchangeAudiences(name, account.TokenExchange); err != nil {
		return "", err
	}
	secret, digest, err := d.newClientSecret()
	if err != nil {
		return "", err
	}
	err = d.store.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: name, SecretHash: digest, Grants: grants,
		TokenExchange: account.TokenExchange, RequireDPoP: account.RequireDPoP, CreatedAt: d.now()})
	if err != nil {
		return "", clientIDError(err, "service", name)
	}
	return secret, nil
}

func (d *Directory) newClientSecret() (secret string, digest []byte, err error) {
	random, err := secrets.Random(d.random, 32)
	if err != nil {
		return "", nil, err
	}
	secret = ClientSecretPrefix + random
	return secret, secrets.Digest(secret), nil
}

// ListServiceAccounts returns the service accounts of page, by client id.
func (d *Directory) ListServiceAccounts(ctx context.Context, page storage.Page) ([]storage.ServiceAccount, error) {
	return d.store.ListServiceAccounts(ctx, page)
}

// GetServiceAccount returns the service account clientID as stored.
func (d *Directory) GetServiceAccount(ctx context.Context, clientID string) (storage.ServiceAccount, error) {
	account, err := d.store.GetServiceAccount(ctx, clientID)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.ServiceAccount{}, chiterr.New(chiterr.NotFound, "service %q does not exist", clientID)
	}
	return account, err
}

// MaxSecretOverlap bounds how long a rotated secret keeps working beside
// its successor: long enough to roll a deployment out, short enough that a
// rotation after a leak is not undone by a long overlap left by mistake.
const MaxSecretOverlap = 7 * 24 * time.Hour

// RotateServiceSecret gives a service account a new secret and returns it
// (it is not stored and cannot be shown again). The secret it replaces keeps
// working for overlap (none when zero: it stops at once), so the services
// using it can move over without a gap; a secret left from an earlier
// rotation stops now. Access tokens issued before keep working until they
// expire; deleting the account ends them.
func (d *Directory) RotateServiceSecret(ctx context.Context, clientID string, overlap time.Duration) (string, error) {
	if overlap < 0 || overlap > MaxSecretOverlap {
		return "", chiterr.New(chiterr.InvalidArgument, "overlap must be between 0 and %s", MaxSecretOverlap)
	}
	secret, digest, err := d.newClientSecret()
	if err != nil {
		return "", err
	}
	now := d.now()
	err = d.store.UpdateServiceAccount(ctx, clientID, func(account *storage.ServiceAccount) (*storage.SubjectRevocation, error) {
		account.PreviousSecretHash, account.PreviousSecretExpiresAt = nil, time.Time{}
		if overlap > 0 {
			account.PreviousSecretHash, account.PreviousSecretExpiresAt = account.SecretHash, now.Add(overlap)
		}
		account.SecretHash = digest
		return nil, nil
	})
	d.forgetService(clientID)
	if errors.Is(err, storage.ErrNotFound) {
		return "", chiterr.New(chiterr.NotFound, "service %q does not exist", clientID)
	}
	if err != nil {
		return "", err
	}
	return secret, nil
}

// SetServiceGrants replaces what a service account may obtain. When it
// narrows, the account's access tokens issued before are refused.
func (d *Directory) SetServiceGrants(ctx context.Context, clientID string, grants storage.Grants) error {
	if err := checkDefaults(grants, nil); err != nil {
		return err
	}
	if err := d.checkAudiences(clientID, grants.AllowedAudiences); err != nil {
		return err
	}
	subject := ServiceSubject(clientID)
	var narrowed bool
	err := d.store.UpdateServiceAccount(ctx, clientID, func(account *storage.ServiceAccount) (*storage.SubjectRevocation, error) {
		narrowed = narrows(account.Grants, grants)
		account.Grants = grants
		return d.revocationIf(narrowed, subject), nil
	})
	d.forgetService(clientID)
	if errors.Is(err, storage.ErrNotFound) {
		return chiterr.New(chiterr.NotFound, "service %q does not exist", clientID)
	}
	return d.refuseOnCommit(ctx, clientIDError(err, "service", clientID), narrowed, subject)
}

// DeleteServiceAccount removes a service account: its secret stops working
// and its access tokens are refused, those it obtained by token exchange
// (whose client_id it is) too.
func (d *Directory) DeleteServiceAccount(ctx context.Context, clientID string) error {
	subject := ServiceSubject(clientID)
	err := d.store.DeleteServiceAccount(ctx, clientID, *d.revocationIf(true, subject))
	d.forgetService(clientID)
	if errors.Is(err, storage.ErrNotFound) {
		return chiterr.New(chiterr.NotFound, "service %q does not exist", clientID)
	}
	if err := d.refuseOnCommit(ctx, err, true, subject); err != nil {
		return err
	}
	// An impersonating exchange's tokens name the service only as their
	// client_id, whose revocations every token's check reads.
	return d.refuseOnCommit(ctx, nil, true, ClientSubject(clientID))
}

// MaxTokenExchangeAudiences bounds a service account's exchange audiences.
const MaxTokenExchangeAudiences = MaxGrantedScopes

// NewTokenExchange checks a token exchange policy as an operator wrote it:
// valid, distinct audience names; impersonation only with audiences.
func NewTokenExchange(audiences []string, impersonation bool) (storage.TokenExchange, error) {
	if len(audiences) > MaxTokenExchangeAudiences {
		return storage.TokenExchange{}, chiterr.New(chiterr.InvalidArgument, "token_exchange_audiences: at most %d audiences", MaxTokenExchangeAudiences)
	}
	policy := storage.TokenExchange{Impersonation: impersonation}
	for _, audience := range audiences {
		if err := ValidateName("token exchange audience", audience); err != nil {
			return storage.TokenExchange{}, err
		}
		if !slices.Contains(policy.Audiences, audience) {
			policy.Audiences = append(policy.Audiences, audience)
		}
	}
	if impersonation && len(policy.Audiences) == 0 {
		return storage.TokenExchange{}, chiterr.New(chiterr.InvalidArgument, "impersonation needs token exchange audiences: without them the service exchanges nothing")
	}
	return policy, nil
}

// checkExchangeAudiences refuses exchange audiences that are one of Chit's
// own clients or the account's own id. The server's audience is allowed, by
// name: the exchanged tokens then act for their subject at Chit itself, as
// the operator chose. Another service's id is allowed: that service may
// exchange the token in turn (a chain).
func (d *Directory) checkExchangeAudiences(ownID string, policy storage.TokenExchange) error {
	for _, audience := range policy.Audiences {
		if slices.ContainsFunc(FirstPartyClientIDs, equalFold(audience)) {
			return chiterr.New(chiterr.InvalidArgument, "token exchange audience %q is reserved", audience)
		}
		if strings.EqualFold(audience, ownID) {
			return chiterr.New(chiterr.InvalidArgument, "token exchange audience %q is the service's own id: the tokens it exchanges are addressed to it already", audience)
		}
	}
	return nil
}

// SetServiceTokenExchange replaces a service account's token exchange
// policy. When it narrows (an audience removed, or impersonation turned on
// or off), the tokens the account obtained before (whose client_id it is:
// its exchanged tokens and its own) are refused.
func (d *Directory) SetServiceTokenExchange(ctx context.Context, clientID string, policy storage.TokenExchange) error {
	if err := d.checkExchangeAudiences(clientID, policy); err != nil {
		return err
	}
	subject := ClientSubject(clientID)
	var narrowed bool
	err := d.store.UpdateServiceAccount(ctx, clientID, func(account *storage.ServiceAccount) (*storage.SubjectRevocation, error) {
		before := account.TokenExchange
		narrowed = before.Impersonation != policy.Impersonation
		for _, audience := range before.Audiences {
			narrowed = narrowed || !slices.Contains(policy.Audiences, audience)
		}
		account.TokenExchange = policy
		return d.revocationIf(narrowed, subject), nil
	})
	d.forgetService(clientID)
	if errors.Is(err, storage.ErrNotFound) {
		return chiterr.New(chiterr.NotFound, "service %q does not exist", clientID)
	}
	return d.refuseOnCommit(ctx, err, narrowed, subject)
}

// SetServiceAccountRequireDPoP says whether a service account's token
// requests must carry a DPoP proof (RFC 9449 §5.2.1), its tokens then bound
// to the proof's key. It applies to token requests from then on (on other
// replicas once their cached entry expires, as for a secret rotation):
// tokens issued before keep working until they expire.
func (d *Directory) SetServiceAccountRequireDPoP(ctx context.Context, clientID string, required bool) error {
	err := d.store.UpdateServiceAccount(ctx, clientID, func(account *storage.ServiceAccount) (*storage.SubjectRevocation, error) {
		account.RequireDPoP = required
		return nil, nil
	})
	d.forgetService(clientID)
	if errors.Is(err, storage.ErrNotFound) {
		return chiterr.New(chiterr.NotFound, "service %q does not exist", clientID)
	}
	return err
}

func (d *Directory) forgetService(clientID string) {
	if d.services != nil {
		d.services.forget(clientID)
	}
}

// errBadPassword is one message for unknown users and wrong passwords alike,
// so a caller cannot learn which accounts exist.
var errBadPassword = chiterr.New(chiterr.Unauthenticated, "invalid username or password")

var errBadClient = chiterr.New(chiterr.Unauthenticated, "invalid client credentials")

// AuthenticateUser checks a username and password sent from address (the
// client's network address, which the throttle counts failures by; empty
// only where there is none, as for an operator's command). Every transport
// passes it explicitly: one that forgot would not compile.
func (d *Directory) AuthenticateUser(ctx context.Context, address, name, password string) (Principal, error) {
	if name == "" || password == "" {
		return Principal{}, chiterr.New(chiterr.InvalidArgument, "username and password are required")
	}
	// No password can be longer: saying so tells nothing about accounts.
	if len(password) > passwords.MaxLength {
		return Principal{}, chiterr.New(chiterr.InvalidArgument, "password is longer than %d characters", passwords.MaxLength)
	}
	// No user can have a name that breaks the rules for names, so such a
	// sign-in is refused before anything is stored for it (the throttle
	// would otherwise keep a row per made-up name, of any size). Which
	// names are valid is public: the answer tells nothing about accounts.
	if !namePattern.MatchString(name) {
		return Principal{}, chiterr.New(chiterr.InvalidArgument, "username is not a valid name (1 to 64 letters, digits, '.', '_', '@' or '-')")
	}
	attempt, err := d.admit(ctx, address, name)
	if err != nil {
		return Principal{}, err
	}
	readAt := d.now()
	user, err := d.store.GetUser(ctx, name)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// Spend the same work as for a real account: the timing must not
		// tell whether the user exists.
		user = storage.User{}
	case err != nil:
		d.abandoned(ctx, attempt)
		return Principal{}, err
	}
	ok, err := d.hasher.Verify(ctx, user.PasswordHash, password)
	if err != nil {
		// No password was checked, or its answer is withheld (the hashing
		// queue was full, or the hash ended past the call's deadline): the
		// attempt does not count.
		d.abandoned(ctx, attempt)
		if chiterr.KindOf(err) == chiterr.ResourceExhausted {
			return Principal{}, err
		}
		return Principal{}, fmt.Errorf("verify password of %q: %w", name, err)
	}
	if !ok {
		d.failed(ctx, attempt)
		return Principal{}, errBadPassword
	}
	d.succeeded(ctx, attempt)
	if d.hasher.NeedsRehash(user.PasswordHash) {
		d.rehash(ctx, user, password)
	}
	return userPrincipal(user, readAt), nil
}

// rehash upgrades a hash made with older parameters while the password is at
// hand. It is best effort: the sign-in has succeeded either way.
func (d *Directory) rehash(ctx context.Context, user storage.User, password string) {
	upgraded, err := d.hasher.Hash(ctx, password)
	if err != nil {
		return
	}
	_ = d.store.UpdatePasswordHash(ctx, user.Name, user.PasswordHash, upgraded)
}

// decoySecretHash is compared against when a client id is unknown, so both
// failures take the same path.
var decoySecretHash = secrets.Digest("decoy")

// AuthenticateService checks a client id and secret.
func (d *Directory) AuthenticateService(ctx context.Context, clientID, secret string) (Principal, error) {
	if clientID == "" || secret == "" {
		return Principal{}, chiterr.New(chiterr.InvalidArgument, "client_id and client_secret are required")
	}
	if err := ValidateClientID(clientID); err != nil {
		return Principal{}, err
	}
	digest := secrets.Digest(secret)
	// The time and the cache's generation are taken before the read, so an
	// entry never outlives its ttl counted from when the store was asked.
	now := d.now()
	principal, cached, generation := d.cachedService(clientID, digest, now)
	if cached {
		return principal, nil
	}
	account, err := d.store.GetServiceAccount(ctx, clientID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		account.SecretHash = decoySecretHash
	case err != nil:
		return Principal{}, err
	}
	if !secretMatches(account, digest, now) || account.ClientID == "" {
		return Principal{}, errBadClient
	}
	if d.services != nil {
		d.services.put(account.ClientID, account, now, generation)
	}
	return servicePrincipal(account, now), nil
}

// cachedService answers a service account's sign-in from the cache when
// its entry is fresh at now and digest is its secret; otherwise it returns
// the cache's generation, for the put after reading the store.
func (d *Directory) cachedService(clientID string, digest []byte, now time.Time) (principal Principal, cached bool, generation uint64) {
	if d.services == nil {
		return Principal{}, false, 0
	}
	entry, fresh, generation := d.services.get(clientID, now)
	if fresh && secretMatches(entry.value, digest, now) {
		return servicePrincipal(entry.value, entry.readAt), true, generation
	}
	return Principal{}, false, generation
}

// secretMatches reports whether digest is account's secret, or the secret
// its last rotation replaced while that one's overlap lasts. Both are
// compared every time, so the time taken does not say which matched.
func secretMatches(account storage.ServiceAccount, digest []byte, now time.Time) bool {
	current := subtle.ConstantTimeCompare(digest, account.SecretHash)
	previous := subtle.ConstantTimeCompare(digest, account.PreviousSecretHash)
	return current == 1 || (previous == 1 && len(account.PreviousSecretHash) > 0 && now.Before(account.PreviousSecretExpiresAt))
}
