package storage

import (
	"context"
	"time"
)

// Principals are whoever tokens are issued to: people (Users), machine
// clients (ServiceAccounts) and the OAuth clients of the sign-in page
// (Clients), with the Grants an operator gave each. Invariants: an update
// runs its function on the stored record and writes the result, with the
// revocation it returns, in one transaction; deleting a principal refuses
// its access tokens issued before, and deletes what was issued to it (as each
// Delete method says), in the same transaction.
type Principals interface {
	Users
	ServiceAccounts
	Clients
}

// Users are the people who sign in with a password, by name.
type Users interface {
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
}

// ServiceAccounts are the machine clients, by client id. Service accounts
// and OAuth clients share the OAuth client_id space, where an audience never
// stands for a client's id, whatever their letter case. An audience may name
// an existing service account: tokens addressed to it, which it may
// exchange (RFC 8693); a new id may still not be an existing audience.
type ServiceAccounts interface {
	// CreateServiceAccount stores an account: ErrAlreadyExists when the id
	// is a service account's or client's id or an audience one of them may
	// ask for; ErrConflict when one of the account's audiences is a client's
	// id or its own. Checked atomically with the write. Its TokenExchange
	// audiences are not checked: they are what it exchanges for.
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
}

// Clients are the OAuth clients registered for the sign-in page, by id, in
// the client_id space they share with ServiceAccounts.
type Clients interface {
	// CreateClient stores a client, with CreateServiceAccount's rules.
	CreateClient(ctx context.Context, client Client) error
	GetClient(ctx context.Context, id string) (Client, error)
	// ListClients returns the clients of page, by id.
	ListClients(ctx context.Context, page Page) ([]Client, error)
	// UpdateClient is UpdateUser for clients (the id is kept; the secret is
	// written), with UpdateServiceAccount's audience rule.
	UpdateClient(ctx context.Context, id string, update func(*Client) (*SubjectRevocation, error)) error
	// DeleteClient removes the client and, in the same transaction, the
	// refresh tokens and unredeemed codes issued to it, and refuses access
	// tokens of revoke.Subject (the client's principal key) issued before
	// revoke.At.
	DeleteClient(ctx context.Context, id string, revoke SubjectRevocation) error
}

// User is a person who signs in with a password.
type User struct {
	Name string
	// PasswordHash is a PHC-formatted argon2id hash; its parameters travel with it.
	PasswordHash string
	Role         string
	Grants
	Profile
	CreatedAt time.Time
}

// Profile is what a person's ID tokens and userinfo say about them, as the
// scopes asked for allow (OpenID Connect Core §5.4). Empty values are
// unknown: no claim states them.
type Profile struct {
	Email string
	// EmailVerified says the operator checked that Email is theirs.
	EmailVerified bool
	DisplayName   string
	// Groups are stored space-separated: a group name has no space.
	Groups []string
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
	// TokenExchange is what the account may obtain by exchanging tokens
	// addressed to it (RFC 8693); the zero value allows nothing.
	TokenExchange TokenExchange
	// RequireDPoP makes the account's client credentials requests carry a
	// DPoP proof, so that its tokens are bound to the proof's key (RFC 9449
	// §5, its dpop_bound_access_tokens in §5.2.1); off unless the operator
	// turns it on.
	RequireDPoP bool
	CreatedAt   time.Time
}

// TokenExchange is a service account's token exchange policy, which an
// operator sets.
type TokenExchange struct {
	// Audiences are those it may exchange tokens for.
	Audiences []string
	// Impersonation makes its exchanged tokens carry no act claim naming
	// it: they look like the subject's own.
	Impersonation bool
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
	// PKCEOptional lets a confidential client sign people in without a
	// PKCE challenge; false (PKCE required) is the default.
	PKCEOptional bool
	// IDTokenSignedResponseAlg is the algorithm its ID tokens are signed
	// with (OIDC Dynamic Client Registration §2); empty is the server's
	// configured signing algorithm.
	IDTokenSignedResponseAlg string
	// DeviceAuthorization lets the client use the device authorization
	// grant (RFC 8628); off unless the administrator turns it on.
	DeviceAuthorization bool
	// RequireDPoP makes the client's token requests carry a DPoP proof, so
	// that its tokens are bound to the proof's key (RFC 9449 §5, its
	// dpop_bound_access_tokens in §5.2.1); off unless the administrator
	// turns it on.
	RequireDPoP bool
	Grants
	CreatedAt time.Time
}
