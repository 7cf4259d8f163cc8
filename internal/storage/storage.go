// Package storage defines the one interface through which Chit's core keeps
// its state, the records it stores and the sentinel errors every backend
// returns. Backends live in sub-packages (sqlite, postgres) and must pass
// the conformance suite in storagetest. This package knows nothing of SQL,
// gRPC or HTTP; of the core it knows only chiterr, the vocabulary in which
// ErrUnavailable reaches the transports.
package storage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/chit-auth/chit/internal/chiterr"
)

// Sentinel errors, checked with errors.Is. Backends wrap their own errors in
// nothing else the core needs to understand.
var (
	// ErrNotFound: no record has that key.
	ErrNotFound = errors.New("storage: not found")
	// ErrAlreadyExists: a record with that key exists.
	ErrAlreadyExists = errors.New("storage: already exists")
	// ErrConflict: the record exists but is no longer in the state the
	// operation requires (for example a refresh token that was already rotated).
	ErrConflict = errors.New("storage: conflict")
	// ErrUnavailable: the database cannot be reached now (its server is
	// down or restarting, the connection to it was lost, it is locked by
	// another process for longer than the store waits); the same call may
	// succeed in a moment. Backends return it through Unavailable.
	ErrUnavailable = errors.New("storage: unavailable")
)

// UnavailableRetryAfter is the retry hint of an unreachable store's errors:
// a database restart or failover takes seconds, and a client that waits a
// second between tries neither hammers it nor waits long once it is back.
const UnavailableRetryAfter = time.Second

// Unavailable marks cause, a backend's failure to reach its database, as
// ErrUnavailable. Any store call can fail this way, so the error names its
// kind itself, for the core's callers: it is a chiterr.Unavailable with
// UnavailableRetryAfter, which every transport answers as "try again
// shortly" (UNAVAILABLE, 503 with Retry-After) through whatever the core
// wrapped around it. An error already marked is returned as it is.
func Unavailable(cause error) error {
	if errors.Is(cause, ErrUnavailable) {
		return cause
	}
	return &chiterr.Error{
		Kind:       chiterr.Unavailable,
		Message:    "the token store cannot be reached; try again shortly",
		Cause:      fmt.Errorf("%w: %w", ErrUnavailable, cause),
		RetryAfter: UnavailableRetryAfter,
	}
}

// User is a person who signs in with a password.
type User struct {
	Name string
	// PasswordHash is a PHC-formatted argon2id hash; its parameters travel with it.
	PasswordHash string
	Role         string
	Grants
	CreatedAt time.Time
}

// Grants say what a principal may obtain: the scopes a token may carry, the
// ones it carries when none are asked for, and (for service accounts and
// OAuth clients) the audiences other than the server's own it may be minted
// for. An operator sets them; callers only choose within them.
type Grants struct {
	AllowedScopes    []string
	DefaultScopes    []string
	AllowedAudiences []string
}

// APIKey is a long-lived credential a person or service account made for
// itself, exchanged for short-lived access tokens. The key itself is not
// stored: Hash is its SHA-256 digest (it is 256 random bits).
type APIKey struct {
	// ID is public and random; the key carries it, to be found by.
	ID string
	// Subject is the owner's `sub`.
	Subject string
	// Name is the owner's label for it, unique among the owner's keys.
	Name string
	// Scopes are what its access tokens may carry, within the owner's.
	Scopes    []string
	Hash      []byte
	CreatedAt time.Time
	ExpiresAt time.Time
}

// APIKeyFamily is the family id under which an API key's access tokens are
// refused once the key is deleted: its tokens carry it as their login.
func APIKeyFamily(id string) string { return "apikey:" + id }

// Page selects part of a list in its stable order (by name or id): the items
// after After (from the first when empty), at most Limit of them (all when
// zero). A caller asks for one more than it shows to learn whether a next
// page exists.
type Page struct {
	After string
	Limit int
}

// SubjectRevocation refuses every access token of Subject (a `sub`, or the
// principal key of an OAuth client) issued before At.
type SubjectRevocation struct {
	Subject string
	At      time.Time
}

// ServiceAccount is a machine client that authenticates with a client secret.
type ServiceAccount struct {
	ClientID string
	// SecretHash is a SHA-256 digest: the secret is 256 random bits, so a slow
	// hash would add latency without adding resistance to guessing.
	SecretHash []byte
	// PreviousSecretHash is the secret before the last rotation, which
	// still authenticates until PreviousSecretExpiresAt (the rotation's
	// overlap); nil when there is none.
	PreviousSecretHash      []byte
	PreviousSecretExpiresAt time.Time
	Grants
	CreatedAt time.Time
}

// SigningKey is one of the server's own token-signing keys.
type SigningKey struct {
	// ID is the `kid` published in the JWKS and in token headers.
	ID        string
	Algorithm string
	// PrivateKey is the private JWK, serialized. It never leaves the server.
	PrivateKey []byte
	// PublicKey is the public JWK, serialized, as published in the JWKS.
	PublicKey []byte
	// State is KeyNext, KeyActive or KeyRetired.
	State       string
	CreatedAt   time.Time
	ActivatedAt time.Time
	RetiredAt   time.Time
}

// Signing key states: a next key is published before it signs, so verifiers
// that cache the key set know it in time; a retired key is published until
// the tokens it signed have expired.
const (
	KeyNext    = "next"
	KeyActive  = "active"
	KeyRetired = "retired"
)

// RefreshToken is the stored form of an opaque refresh token: only its hash
// is kept, so a copy of the database does not yield usable tokens.
type RefreshToken struct {
	Hash []byte
	// FamilyID names the chain of rotations that started with one login.
	FamilyID string
	Subject  string
	Role     string
	Scope    string
	// ClientID is the OAuth client the login was issued to: the token
	// refreshes through that client only (RFC 6749 §6). Empty for tokens
	// issued before clients were recorded.
	ClientID string
	// Audience is the `aud` of the login's access tokens; empty means the
	// server's own.
	Audience string
	IssuedAt time.Time
	// ExpiresAt is when this token stops working: the idle timeout after its
	// issue, but never after FamilyExpiresAt.
	ExpiresAt time.Time
	// FamilyExpiresAt is the absolute end of the login; rotation hands it on.
	FamilyExpiresAt time.Time
	// RotatedAt is zero until the token has been exchanged for its successor.
	RotatedAt time.Time
	// ReplacedBy is the hash of the successor once rotated.
	ReplacedBy []byte
	// SealedSuccessor is the successor token encrypted under a key derived
	// from this token, so that within the grace period a client that lost
	// the answer gets the same successor again, and nobody else can.
	SealedSuccessor []byte
	// Generation counts the login's tokens: 1 for the first. A login keeps
	// one record, whose current token a rotation replaces in place, keeping
	// only the token before it (read back as rotated, for the grace period);
	// earlier tokens are recognised by what they carry, not by the store.
	// Zero for tokens stored before, one record per token, which stay
	// readable until they expire.
	Generation uint64
	// LoginSalt is the login's random value that its tokens' MACs cover.
	LoginSalt []byte
}

// RefreshTokenKey is a key of the MACs refresh tokens carry, by which a
// login's earlier tokens are recognised; Secret is sealed like a private key.
type RefreshTokenKey struct {
	ID        uint32
	Secret    []byte
	CreatedAt time.Time
}

// LoginFailures counts recent failed sign-ins for one throttling key (a
// username or a client address).
type LoginFailures struct {
	Count         int
	LastFailureAt time.Time
}

// Revocation tells whether access tokens of a family or subject were revoked.
type Revocation struct {
	FamilyRevoked bool
	// SubjectRevokedAt is zero unless the access tokens of the subject (or
	// of the client) issued before it are refused: the later of the two.
	SubjectRevokedAt time.Time
}

// Provider is a resource provider (UCloud's AuthProviders): registered with a
// claim token, then holding its own RSA key pair and a long-lived refresh token.
type Provider struct {
	ID             string
	ClaimTokenHash []byte
	ClaimExpiresAt time.Time
	// ClaimedAt is zero until the first claim (or a renew).
	ClaimedAt time.Time
	// The credentials, set by the first claim and replaced by renew.
	Credentials ProviderCredentials
	// RegisteredBy is the client id of the service that registered the
	// provider; only it (or an admin) may renew it. Empty for providers
	// registered before it was recorded: admins only.
	RegisteredBy string
	CreatedAt    time.Time
}

// ProviderCredentials are a provider's key pair and refresh token.
type ProviderCredentials struct {
	ProviderID string
	// KeyID is the `kid` of tokens signed with this key pair.
	KeyID string
	// PublicKey is X.509 SubjectPublicKeyInfo DER.
	PublicKey []byte
	// PrivateKey is PKCS#8 DER. It never leaves the server.
	PrivateKey       []byte
	RefreshTokenHash []byte
	// SealedRefreshToken is the refresh token encrypted under a key derived
	// from the claim token, so that a retried claim can answer it again, to
	// the claim token's holder only. Renew clears it.
	SealedRefreshToken []byte
}

// Client is an OAuth client registered for the sign-in page, with the
// redirect URIs it may use. Chit's own first-party clients need no
// registration.
type Client struct {
	ID           string
	RedirectURIs []string
	// SecretHash is the SHA-256 digest of a confidential client's secret;
	// empty for a public client (PKCE, no secret).
	SecretHash []byte
	Grants
	CreatedAt time.Time
}

// AuthorizationCode is the stored form of a sign-in page's one-time code,
// bound to the client, redirect URI and PKCE challenge it was issued for.
type AuthorizationCode struct {
	Hash          []byte
	ClientID      string
	RedirectURI   string
	CodeChallenge string
	Subject       string
	Role          string
	Scope         string
	Nonce         string
	AuthTime      time.Time
	ExpiresAt     time.Time
	// UsedAt is zero until the code is redeemed; FamilyID then names the
	// refresh family it started, so a replay can revoke it.
	UsedAt   time.Time
	FamilyID string
}

// ItemError says which item of a bulk operation failed; nothing of the
// operation was applied.
type ItemError struct {
	Index int
	Err   error
}

func (e *ItemError) Error() string { return "item " + strconv.Itoa(e.Index) + ": " + e.Err.Error() }
func (e *ItemError) Unwrap() error { return e.Err }

// Store is everything Chit's core persists. Every method that returns without
// error has made its write durable: a response built on it survives a crash.
type Store interface {
	CreateUser(ctx context.Context, user User) error
	GetUser(ctx context.Context, name string) (User, error)
	// ListUsers returns the users of page, by name.
	ListUsers(ctx context.Context, page Page) ([]User, error)
	// UpdatePasswordHash replaces a user's hash if it is still oldHash
	// (ErrConflict otherwise: the password changed meanwhile).
	UpdatePasswordHash(ctx context.Context, name, oldHash, newHash string) error
	// UpdateUser applies update to the stored user (its name and password
	// hash are kept) in one transaction. When update returns a revocation,
	// it is recorded in the same transaction, as RefuseAccessTokens does.
	UpdateUser(ctx context.Context, name string, update func(*User) (*SubjectRevocation, error)) error
	// DeleteUser removes the user, and in the same transaction deletes the
	// refresh tokens and unredeemed authorization codes of revoke.Subject
	// and refuses its access tokens issued before revoke.At.
	DeleteUser(ctx context.Context, name string, revoke SubjectRevocation) error

	// CreateServiceAccount stores an account. Service accounts and OAuth
	// clients share the OAuth client_id space, where ids and audiences never
	// stand for each other, whatever their letter case: ErrAlreadyExists
	// when the id is a service account's or client's id or an audience one
	// of them may ask for; ErrConflict when one of the account's audiences
	// is such an id (its own included). Checked atomically with the write.
	CreateServiceAccount(ctx context.Context, account ServiceAccount) error
	GetServiceAccount(ctx context.Context, clientID string) (ServiceAccount, error)
	// ListServiceAccounts returns the service accounts of page, by client id.
	ListServiceAccounts(ctx context.Context, page Page) ([]ServiceAccount, error)
	// UpdateServiceAccount is UpdateUser for service accounts (the id is
	// kept; the grants and the secrets are written); ErrConflict when an
	// audience is a client id, as for CreateServiceAccount.
	UpdateServiceAccount(ctx context.Context, clientID string, update func(*ServiceAccount) (*SubjectRevocation, error)) error
	// DeleteServiceAccount removes the account and refuses revoke.Subject's
	// access tokens issued before revoke.At, in one transaction.
	DeleteServiceAccount(ctx context.Context, clientID string, revoke SubjectRevocation) error

	CreateSigningKey(ctx context.Context, key SigningKey) error
	// ListSigningKeys returns every key, oldest first.
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// RotateSigningKeys atomically retires the active key, activates the next
	// key (which must still be expectedNextID, else ErrConflict: another
	// process rotated first) and stores newNext as the next key.
	RotateSigningKeys(ctx context.Context, expectedNextID string, newNext SigningKey, at time.Time) error
	// DeleteRetiredSigningKeys deletes keys retired before cutoff.
	DeleteRetiredSigningKeys(ctx context.Context, cutoff time.Time) (int, error)
	// ReplaceSigningPrivateKey stores replacement as the private key of
	// signing key id if current is still stored there (ErrConflict otherwise:
	// another process replaced or deleted it first). It encrypts keys written
	// in the clear.
	ReplaceSigningPrivateKey(ctx context.Context, id string, current, replacement []byte) error

	// CreateRefreshToken stores a login's record (Generation 1 and later),
	// keyed by its family id: a family that has one is ErrAlreadyExists. A
	// token of Generation 0 is stored as a record of one token, keyed by its
	// hash, as before logins kept one record.
	CreateRefreshToken(ctx context.Context, token RefreshToken) error
	// GetRefreshToken returns the stored token hash names in the record of
	// login familyID: its current token, or the one before it (as rotated).
	// An empty familyID looks hash up among records of one token (Generation
	// 0, from before logins kept one record), whose tokens name no login.
	// ErrNotFound for an unknown token and for one whose family was revoked
	// (even if it was stored after the revocation, by a call that raced it).
	GetRefreshToken(ctx context.Context, familyID string, hash []byte) (RefreshToken, error)
	// GetRefreshTokenWithUser is GetRefreshToken, and the user the token's
	// subject names, read with it (a refresh needs both): nil when there is
	// none (deleted, or the subject is not a user's).
	GetRefreshTokenWithUser(ctx context.Context, familyID string, hash []byte) (RefreshToken, *User, error)
	// RotateRefreshToken atomically makes successor (whose Generation must
	// be one more than the token's) the current token of login
	// successor.FamilyID whose current token has oldHash, in the login's one
	// record. The old token is then read back as rotated at
	// successor.IssuedAt, with sealedSuccessor, until the next rotation. Of
	// many concurrent calls for one token exactly one succeeds; the others
	// get ErrConflict. An unknown token is ErrNotFound. A token of
	// Generation 0 (stored before) is instead marked rotated, as its
	// record's only token, and its successor (Generation 1) stored as the
	// login's record (ErrAlreadyExists if the login has one already). A
	// login's subject, client and absolute expiry are its record's: a
	// successor brings its hash, generation, role, scope, audience and times.
	RotateRefreshToken(ctx context.Context, oldHash []byte, successor RefreshToken, sealedSuccessor []byte) error
	// GetRefreshLogin returns the current token of a login by its family id
	// (records of Generation 1 and later only); ErrNotFound when there is
	// none or the family was revoked.
	GetRefreshLogin(ctx context.Context, familyID string) (RefreshToken, error)
	// CreateRefreshTokenKey stores a MAC key; a taken id is ErrAlreadyExists.
	CreateRefreshTokenKey(ctx context.Context, key RefreshTokenKey) error
	// ListRefreshTokenKeys returns every MAC key, oldest first.
	ListRefreshTokenKeys(ctx context.Context) ([]RefreshTokenKey, error)
	// ReplaceRefreshTokenKeySecret is ReplaceSigningPrivateKey for MAC keys.
	ReplaceRefreshTokenKeySecret(ctx context.Context, id uint32, current, replacement []byte) error
	// DeleteExpiredRefreshTokens removes tokens that expired before cutoff and
	// returns how many it removed.
	DeleteExpiredRefreshTokens(ctx context.Context, cutoff time.Time) (int, error)

	// CreateProviders stores new, unclaimed providers, all or none. A taken
	// id fails with an *ItemError wrapping ErrAlreadyExists.
	CreateProviders(ctx context.Context, providers []Provider) error
	GetProvider(ctx context.Context, id string) (Provider, error)
	GetProviderByClaimToken(ctx context.Context, claimTokenHash []byte) (Provider, error)
	GetProviderByRefreshToken(ctx context.Context, refreshTokenHash []byte) (Provider, error)
	GetProviderByKeyID(ctx context.Context, keyID string) (Provider, error)
	// ListProviders returns the providers of page, by id.
	ListProviders(ctx context.Context, page Page) ([]Provider, error)
	DeleteProvider(ctx context.Context, id string) error
	// ClaimProviders gives unclaimed providers their first credentials, all or
	// none. A missing provider is an *ItemError wrapping ErrNotFound; an
	// already claimed one wraps ErrConflict (another claim won).
	ClaimProviders(ctx context.Context, credentials []ProviderCredentials, claimedAt time.Time) error
	// RenewProviders replaces providers' credentials, all or none; a missing
	// provider is an *ItemError wrapping ErrNotFound. An unclaimed provider
	// counts as claimed afterwards.
	RenewProviders(ctx context.Context, credentials []ProviderCredentials, renewedAt time.Time) error
	// ReplaceProviderPrivateKey is ReplaceSigningPrivateKey for a provider's
	// key; a renewal in between is a conflict too.
	ReplaceProviderPrivateKey(ctx context.Context, providerID string, current, replacement []byte) error
	// EraseReplacedValues overwrites what rows updated or deleted so far
	// left behind in the store's own files (freed space in pages, former
	// pages in a journal), so that a private key replaced by its sealed
	// form survives nowhere in them. It may take as long as rewriting the
	// whole database. PostgreSQL does nothing: its old row versions and WAL
	// are the operator's to vacuum and recycle (docs/security.md).
	EraseReplacedValues(ctx context.Context) error

	// CreateClient stores a client, with CreateServiceAccount's rules.
	CreateClient(ctx context.Context, client Client) error
	GetClient(ctx context.Context, id string) (Client, error)
	// ListClients returns the clients of page, by id.
	ListClients(ctx context.Context, page Page) ([]Client, error)
	// UpdateClient is UpdateUser for clients (the id is kept; the secret is
	// written),
	// with UpdateServiceAccount's audience rule.
	UpdateClient(ctx context.Context, id string, update func(*Client) (*SubjectRevocation, error)) error
	// DeleteClient removes the client and, in the same transaction, the
	// refresh tokens and unredeemed codes issued to it, and refuses access
	// tokens of revoke.Subject (the client's principal key) issued before
	// revoke.At.
	DeleteClient(ctx context.Context, id string, revoke SubjectRevocation) error

	CreateAuthorizationCode(ctx context.Context, code AuthorizationCode) error
	// RedeemAuthorizationCode runs check on the stored code and, when it
	// passes, marks the code used at usedAt and records the refresh family
	// it starts, returning the code as it was. A code check refuses (a wrong
	// client or PKCE verifier) stays unused: whoever lacks what the code is
	// bound to cannot use it up. Exactly one redemption succeeds; a later one
	// gets the stored code (with the first redemption's FamilyID) and
	// ErrConflict, before check runs. An unknown hash is ErrNotFound.
	RedeemAuthorizationCode(ctx context.Context, hash []byte, usedAt time.Time, familyID string, check func(AuthorizationCode) error) (AuthorizationCode, error)
	// DeleteExpiredAuthorizationCodes removes codes that expired before cutoff.
	DeleteExpiredAuthorizationCodes(ctx context.Context, cutoff time.Time) (int, error)
	// RevokeRefreshFamily records the family as revoked (its access tokens are
	// refused from then on), deletes its refresh tokens and returns how many
	// there were. Revoking twice is not an error.
	RevokeRefreshFamily(ctx context.Context, familyID string, revokedAt time.Time) (int, error)
	// CreateAPIKey stores a key; ErrAlreadyExists when its owner has a key of
	// that name (or its id is taken).
	CreateAPIKey(ctx context.Context, key APIKey) error
	// GetAPIKey returns the key id; ErrNotFound when there is none.
	GetAPIKey(ctx context.Context, id string) (APIKey, error)
	// ListAPIKeys returns the keys of subject in page, by id.
	ListAPIKeys(ctx context.Context, subject string, page Page) ([]APIKey, error)
	// DeleteAPIKey removes the key and, in the same transaction, refuses its
	// access tokens (revokes APIKeyFamily(id) at revokedAt); ErrNotFound
	// when there is no such key. Deleting its owner deletes it too.
	DeleteAPIKey(ctx context.Context, id string, revokedAt time.Time) error
	// DeleteExpiredAPIKeys removes keys that expired before cutoff.
	DeleteExpiredAPIKeys(ctx context.Context, cutoff time.Time) (int, error)
	// ListLogins returns the live logins of subject (not revoked, not
	// expired at now), one per family whatever its table, in page by family
	// id. Only what describes a login is filled in: FamilyID, Subject,
	// ClientID, Scope, Audience, IssuedAt (of its current token),
	// ExpiresAt, FamilyExpiresAt and Generation; never a digest.
	ListLogins(ctx context.Context, subject string, now time.Time, page Page) ([]RefreshToken, error)
	// RevokeSubject revokes every session of subject issued before revokedAt:
	// its refresh tokens are deleted and its older access tokens refused.
	RevokeSubject(ctx context.Context, subject string, revokedAt time.Time) (int, error)
	// RefuseAccessTokens refuses the access tokens of revoke.Subject issued
	// before revoke.At, keeping its refresh tokens (a refresh re-reads what
	// the principal may still obtain). A later time wins over an earlier one.
	RefuseAccessTokens(ctx context.Context, revoke SubjectRevocation) error
	// GetRevocation reports revocations that concern a family, a subject
	// and a client's principal key (either may be empty).
	GetRevocation(ctx context.Context, familyID, subject, client string) (Revocation, error)
	// DeleteExpiredRevocations forgets revocations made before cutoff, when no
	// access token they concern can still be valid, deleting first any
	// refresh token left of a family it forgets.
	DeleteExpiredRevocations(ctx context.Context, cutoff time.Time) (int, error)

	// GetLoginFailures returns the failures counted for key (zero if none).
	GetLoginFailures(ctx context.Context, key string) (LoginFailures, error)
	// ReserveLoginAttempt counts one more attempt for key at at, before the
	// password is checked, if allow accepts the attempts counted so far (a
	// count whose last attempt is older than forgetAfter starts again at
	// zero), and returns them. It is atomic across replicas: of concurrent
	// attempts, each sees every one reserved before it, so a burst cannot
	// outrun the throttle. A refused attempt changes nothing. The attempt
	// stays counted as a failure unless ResetLoginFailures (success) or
	// ReleaseLoginAttempts undoes it.
	ReserveLoginAttempt(ctx context.Context, key string, at time.Time, forgetAfter time.Duration, allow func(before LoginFailures) bool) (LoginFailures, bool, error)
	// ReleaseLoginAttempts takes back n attempts of key (never below zero):
	// reserved ones that checked no password, or failures a later success
	// showed to be typing mistakes.
	ReleaseLoginAttempts(ctx context.Context, key string, n int) error
	// ResetLoginFailures forgets key's failures (after a successful sign-in).
	ResetLoginFailures(ctx context.Context, key string) error
	// DeleteStaleLoginFailures forgets failures last seen before cutoff.
	DeleteStaleLoginFailures(ctx context.Context, cutoff time.Time) (int, error)

	// WithCleanupLock runs fn, the periodic deletion of expired rows, unless
	// another replica is doing it now (then it reports false). Deletions run
	// in small batches.
	WithCleanupLock(ctx context.Context, fn func() error) (bool, error)

	Close() error
}
