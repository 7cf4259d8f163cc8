package accounts

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/chit-auth/chit/pkg/chiterr"
	"github.com/chit-auth/chit/pkg/passwords"
	"github.com/chit-auth/chit/pkg/secrets"
	"github.com/chit-auth/chit/pkg/storage"
)

// Role is what a principal may do; it travels in the `role` claim.
type Role string

const (
	RoleUser     Role = "USER"
	RoleAdmin    Role = "ADMIN"
	RoleService  Role = "SERVICE"
	RoleProvider Role = "PROVIDER"
)

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

// Principal is an authenticated caller.
type Principal struct {
	Subject string
	Role    Role
}

// ClientSecretPrefix marks Chit client secrets so secret scanners can find
// leaked ones.
const ClientSecretPrefix = "chit_cs_"

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// ValidateName checks a user or service account name.
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

// Directory manages and authenticates accounts.
type Directory struct {
	throttle ThrottlePolicy
	store    storage.Store
	hasher   *passwords.Hasher
	now      func() time.Time
	random   io.Reader
	// services, when not nil, keeps service accounts briefly.
	services *serviceAccountCache
}

// NewDirectory returns a Directory over store. now and random are the clock
// and the source of secrets.
func NewDirectory(store storage.Store, hasher *passwords.Hasher, now func() time.Time, random io.Reader) *Directory {
	return &Directory{store: store, hasher: hasher, now: now, random: random, throttle: DefaultThrottle}
}

// WithThrottle replaces the sign-in throttling policy.
func (d *Directory) WithThrottle(policy ThrottlePolicy) *Directory {
	d.throttle = policy
	return d
}

// CreateUser adds a person who signs in with password.
func (d *Directory) CreateUser(ctx context.Context, name, password string, role Role) error {
	if err := ValidateName("user", name); err != nil {
		return err
	}
	if role != RoleUser && role != RoleAdmin {
		return chiterr.New(chiterr.InvalidArgument, "role must be USER or ADMIN, not %q", role)
	}
	if err := passwords.CheckPolicy(password); err != nil {
		return err
	}
	hash, err := d.hasher.Hash(ctx, password)
	if err != nil {
		return err
	}
	err = d.store.CreateUser(ctx, storage.User{Name: name, PasswordHash: hash, Role: string(role), CreatedAt: d.now()})
	if errors.Is(err, storage.ErrAlreadyExists) {
		return chiterr.New(chiterr.AlreadyExists, "user %q already exists", name)
	}
	return err
}

// ListUsers returns every user, by name.
func (d *Directory) ListUsers(ctx context.Context) ([]storage.User, error) {
	return d.store.ListUsers(ctx)
}

// DeleteUser removes a user and revokes their refresh tokens.
func (d *Directory) DeleteUser(ctx context.Context, name string) error {
	err := d.store.DeleteUser(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return chiterr.New(chiterr.NotFound, "user %q does not exist", name)
	}
	return err
}

// CreateServiceAccount adds a service account whose client id is name and
// returns its secret. The secret is not stored and cannot be shown again.
func (d *Directory) CreateServiceAccount(ctx context.Context, name string) (string, error) {
	if err := ValidateName("service", name); err != nil {
		return "", err
	}
	random, err := secrets.Random(d.random, 32)
	if err != nil {
		return "", err
	}
	secret := ClientSecretPrefix + random
	err = d.store.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: name, SecretHash: secrets.Digest(secret), CreatedAt: d.now()})
	if errors.Is(err, storage.ErrAlreadyExists) {
		return "", chiterr.New(chiterr.AlreadyExists, "service %q already exists", name)
	}
	if err != nil {
		return "", err
	}
	return secret, nil
}

// ListServiceAccounts returns every service account, by client id.
func (d *Directory) ListServiceAccounts(ctx context.Context) ([]storage.ServiceAccount, error) {
	return d.store.ListServiceAccounts(ctx)
}

// DeleteServiceAccount removes a service account; its secret stops working.
func (d *Directory) DeleteServiceAccount(ctx context.Context, clientID string) error {
	err := d.store.DeleteServiceAccount(ctx, clientID)
	if d.services != nil {
		d.services.forget(clientID)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return chiterr.New(chiterr.NotFound, "service %q does not exist", clientID)
	}
	return err
}

// errBadPassword is one message for unknown users and wrong passwords alike,
// so a caller cannot learn which accounts exist.
var errBadPassword = chiterr.New(chiterr.Unauthenticated, "invalid username or password")

var errBadClient = chiterr.New(chiterr.Unauthenticated, "invalid client credentials")

// AuthenticateUser checks a username and password.
func (d *Directory) AuthenticateUser(ctx context.Context, name, password string) (Principal, error) {
	if name == "" || password == "" {
		return Principal{}, chiterr.New(chiterr.InvalidArgument, "username and password are required")
	}
	if len(password) > passwords.MaxLength {
		return Principal{}, errBadPassword
	}
	keys := throttleKeys(ctx, name)
	failing, err := d.checkThrottle(ctx, keys)
	if err != nil {
		return Principal{}, err
	}
	user, err := d.store.GetUser(ctx, name)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// Spend the same work as for a real account: the timing must not
		// tell whether the user exists.
		user = storage.User{}
	case err != nil:
		return Principal{}, err
	}
	ok, err := d.hasher.Verify(ctx, user.PasswordHash, password)
	if err != nil {
		if chiterr.KindOf(err) == chiterr.ResourceExhausted {
			return Principal{}, err
		}
		return Principal{}, fmt.Errorf("verify password of %q: %w", name, err)
	}
	if !ok {
		d.recordFailure(ctx, keys)
		return Principal{}, errBadPassword
	}
	// Only counts that exist are reset: a sign-in with a clean record
	// writes nothing here.
	d.resetFailures(ctx, failing)
	if d.hasher.NeedsRehash(user.PasswordHash) {
		d.rehash(ctx, user, password)
	}
	return Principal{Subject: user.Name, Role: Role(user.Role)}, nil
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
	digest := secrets.Digest(secret)
	// The time and the cache's generation are taken before the read, so an
	// entry never outlives its ttl counted from when the store was asked.
	var now time.Time
	var generation uint64
	if d.services != nil {
		now = d.now()
		var cached storage.ServiceAccount
		var fresh bool
		cached, fresh, generation = d.services.get(clientID, now)
		if fresh && subtle.ConstantTimeCompare(digest, cached.SecretHash) == 1 {
			return Principal{Subject: cached.ClientID, Role: RoleService}, nil
		}
	}
	account, err := d.store.GetServiceAccount(ctx, clientID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		account.SecretHash = decoySecretHash
	case err != nil:
		return Principal{}, err
	}
	match := subtle.ConstantTimeCompare(digest, account.SecretHash) == 1
	if !match || account.ClientID == "" {
		return Principal{}, errBadClient
	}
	if d.services != nil {
		d.services.put(account, now, generation)
	}
	return Principal{Subject: account.ClientID, Role: RoleService}, nil
}
