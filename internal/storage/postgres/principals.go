package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/chit-auth/chit/internal/storage"
)

// Lists of scopes and audiences are stored space-separated: neither may
// contain a space.
func joinList(items []string) string { return strings.Join(items, " ") }

func splitList(text string) []string { return strings.Fields(text) }

// Users.

const userColumns = `name, password_hash, role, allowed_scopes, default_scopes, created_at, email, email_verified, display_name, group_names`

func scanUser(row pgx.Row) (storage.User, error) {
	var user storage.User
	var allowed, defaults string
	var createdAt *int64
	var groups string
	if err := row.Scan(&user.Name, &user.PasswordHash, &user.Role, &allowed, &defaults, &createdAt,
		&user.Email, &user.EmailVerified, &user.DisplayName, &groups); err != nil {
		return storage.User{}, notFound(err)
	}
	user.AllowedScopes, user.DefaultScopes, user.CreatedAt = splitList(allowed), splitList(defaults), fromUnix(createdAt)
	user.Groups = splitList(groups)
	return user, nil
}

func (s *Store) CreateUser(ctx context.Context, user storage.User) error {
	return s.insert(ctx, s.pool, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`,
		user.Name, user.PasswordHash, user.Role, joinList(user.AllowedScopes), joinList(user.DefaultScopes), toUnix(user.CreatedAt),
		user.Email, user.EmailVerified, user.DisplayName, joinList(user.Groups))
}

func (s *Store) GetUser(ctx context.Context, name string) (storage.User, error) {
	return get[storage.User](ctx, s.reads, userRows, name)
}

func (s *Store) ListUsers(ctx context.Context, page storage.Page) ([]storage.User, error) {
	return list(ctx, s.pool, scanUser, `SELECT `+userColumns+` FROM users WHERE name > $1 ORDER BY name LIMIT $2`, page.After, pageLimit(page))
}

// pageLimit is page's LIMIT; PostgreSQL takes NULL as none.
func pageLimit(page storage.Page) *int {
	if page.Limit <= 0 {
		return nil
	}
	return &page.Limit
}

func (s *Store) UpdatePasswordHash(ctx context.Context, name, oldHash, newHash string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE users SET password_hash = $1 WHERE name = $2 AND password_hash = $3`, newHash, name, oldHash)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		if _, err := s.GetUser(ctx, name); errors.Is(err, storage.ErrNotFound) {
			return storage.ErrNotFound
		}
		return storage.ErrConflict
	}
	return nil
}

func (s *Store) UpdateUser(ctx context.Context, name string, update func(*storage.User) (*storage.SubjectRevocation, error)) error {
	return s.updateRecord(ctx, func(tx pgx.Tx) (*storage.SubjectRevocation, error) {
		// FOR UPDATE queues concurrent updates of one user, so none is lost.
		user, err := scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE name = $1 FOR UPDATE`, name))
		if err != nil {
			return nil, err
		}
		revoke, err := update(&user)
		if err != nil {
			return nil, err
		}
		_, err = tx.Exec(ctx, `UPDATE users SET role = $1, allowed_scopes = $2, default_scopes = $3,
			email = $4, email_verified = $5, display_name = $6, group_names = $7 WHERE name = $8`,
			user.Role, joinList(user.AllowedScopes), joinList(user.DefaultScopes), user.Email, user.EmailVerified, user.DisplayName, joinList(user.Groups), name)
		return revoke, err
	})
}

// updateRecord runs change in a transaction and records the revocation it
// returns in the same transaction.
func (s *Store) updateRecord(ctx context.Context, change func(tx pgx.Tx) (*storage.SubjectRevocation, error)) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		revoke, err := change(tx)
		if err != nil || revoke == nil {
			return err
		}
		return refuseAccessTokens(ctx, tx, *revoke)
	})
}

// deletePrincipal deletes one row with query and, in the same transaction,
// the refresh tokens and unredeemed codes whose tokensColumn is owner, and
// records revoke.
func (s *Store) deletePrincipal(ctx context.Context, query, id, tokensColumn, owner string, revoke storage.SubjectRevocation) error {
	return s.updateRecord(ctx, func(tx pgx.Tx) (*storage.SubjectRevocation, error) {
		tag, err := tx.Exec(ctx, query, id)
		if err != nil {
			return nil, err
		}
		if err := requireOneRow(tag, storage.ErrNotFound); err != nil {
			return nil, err
		}
		// The principal's API keys go with it.
		if _, err := tx.Exec(ctx, `DELETE FROM api_keys WHERE subject = $1`, revoke.Subject); err != nil {
			return nil, err
		}
		if tokensColumn != "" {
			if _, err := deleteRefreshTokens(ctx, tx, tokensColumn, owner); err != nil {
				return nil, err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM authorization_codes WHERE `+tokensColumn+` = $1 AND used_at IS NULL`, owner); err != nil {
				return nil, err
			}
		}
		// A person's sign-in sessions go with them (only people have any).
		if tokensColumn == "subject" {
			if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE subject = $1`, owner); err != nil {
				return nil, err
			}
		}
		return &revoke, nil
	})
}

func (s *Store) DeleteUser(ctx context.Context, name string, revoke storage.SubjectRevocation) error {
	return s.deletePrincipal(ctx, `DELETE FROM users WHERE name = $1`, name, "subject", revoke.Subject, revoke)
}

// The OAuth client_id space, shared by service accounts and clients.

// clientIDLock serializes changes to the client_id space across replicas
// (ids, and the audiences that must not be ids): each check and its write
// are then one step.
const clientIDLock = 0x63686974_63696473

func lockClientIDs(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(clientIDLock))
	return err
}

// insertClientID inserts a row in the client_id space (storage.Store's
// CreateClient says the rules).
func (s *Store) insertClientID(ctx context.Context, id string, audiences []string, query string, args ...any) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockClientIDs(ctx, tx); err != nil {
			return err
		}
		var taken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM service_accounts WHERE lower(client_id) = lower($1)
				OR position(' ' || lower($1) || ' ' in ' ' || lower(allowed_audiences) || ' ') > 0)
			OR EXISTS (SELECT 1 FROM clients WHERE lower(id) = lower($1)
				OR position(' ' || lower($1) || ' ' in ' ' || lower(allowed_audiences) || ' ') > 0)`, id).Scan(&taken); err != nil {
			return err
		}
		if taken {
			return storage.ErrAlreadyExists
		}
		if err := audiencesFree(ctx, tx, id, audiences); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, query, args...)
		return err
	})
}

// audiencesFree refuses audiences that are the id of a client, or ownID,
// whatever their case, with storage.ErrConflict. An audience may be a
// service account's id: a token addressed to the service, which it may
// exchange (token exchange); a client's id is its ID tokens' audience.
// The caller holds clientIDLock.
func audiencesFree(ctx context.Context, tx pgx.Tx, ownID string, audiences []string) error {
	for _, audience := range audiences {
		if strings.EqualFold(audience, ownID) {
			return storage.ErrConflict
		}
		var taken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM clients WHERE lower(id) = lower($1))`, audience).Scan(&taken); err != nil {
			return err
		}
		if taken {
			return storage.ErrConflict
		}
	}
	return nil
}

// Service accounts.

const serviceAccountColumns = `client_id, secret_hash, allowed_scopes, default_scopes, allowed_audiences, created_at,
	previous_secret_hash, previous_secret_expires_at, token_exchange_audiences, token_exchange_impersonation, require_dpop`

func scanServiceAccount(row pgx.Row) (storage.ServiceAccount, error) {
	var account storage.ServiceAccount
	var allowed, defaults, audiences, exchangeAudiences string
	var createdAt, previousExpires *int64
	if err := row.Scan(&account.ClientID, &account.SecretHash, &allowed, &defaults, &audiences, &createdAt,
		&account.PreviousSecretHash, &previousExpires, &exchangeAudiences, &account.TokenExchange.Impersonation, &account.RequireDPoP); err != nil {
		return storage.ServiceAccount{}, notFound(err)
	}
	account.Grants = storage.Grants{AllowedScopes: splitList(allowed), DefaultScopes: splitList(defaults), AllowedAudiences: splitList(audiences)}
	account.TokenExchange.Audiences = splitList(exchangeAudiences)
	account.CreatedAt = fromUnix(createdAt)
	account.PreviousSecretExpiresAt = fromUnix(previousExpires)
	return account, nil
}

func (s *Store) CreateServiceAccount(ctx context.Context, account storage.ServiceAccount) error {
	return s.insertClientID(ctx, account.ClientID, account.AllowedAudiences,
		`INSERT INTO service_accounts (`+serviceAccountColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		account.ClientID, account.SecretHash, joinList(account.AllowedScopes), joinList(account.DefaultScopes),
		joinList(account.AllowedAudiences), toUnix(account.CreatedAt), account.PreviousSecretHash, toUnix(account.PreviousSecretExpiresAt),
		joinList(account.TokenExchange.Audiences), account.TokenExchange.Impersonation, account.RequireDPoP)
}

func (s *Store) GetServiceAccount(ctx context.Context, clientID string) (storage.ServiceAccount, error) {
	return scanServiceAccount(s.pool.QueryRow(ctx, `SELECT `+serviceAccountColumns+` FROM service_accounts WHERE client_id = $1`, clientID))
}

func (s *Store) ListServiceAccounts(ctx context.Context, page storage.Page) ([]storage.ServiceAccount, error) {
	return list(ctx, s.pool, scanServiceAccount, `SELECT `+serviceAccountColumns+` FROM service_accounts WHERE client_id > $1 ORDER BY client_id LIMIT $2`,
		page.After, pageLimit(page))
}

func (s *Store) UpdateServiceAccount(ctx context.Context, clientID string, update func(*storage.ServiceAccount) (*storage.SubjectRevocation, error)) error {
	return s.updateRecord(ctx, func(tx pgx.Tx) (*storage.SubjectRevocation, error) {
		if err := lockClientIDs(ctx, tx); err != nil {
			return nil, err
		}
		account, err := scanServiceAccount(tx.QueryRow(ctx, `SELECT `+serviceAccountColumns+` FROM service_accounts WHERE client_id = $1 FOR UPDATE`, clientID))
		if err != nil {
			return nil, err
		}
		revoke, err := update(&account)
		if err != nil {
			return nil, err
		}
		if err := audiencesFree(ctx, tx, clientID, account.AllowedAudiences); err != nil {
			return nil, err
		}
		_, err = tx.Exec(ctx, `UPDATE service_accounts SET allowed_scopes = $1, default_scopes = $2, allowed_audiences = $3,
				secret_hash = $4, previous_secret_hash = $5, previous_secret_expires_at = $6,
				token_exchange_audiences = $7, token_exchange_impersonation = $8, require_dpop = $9 WHERE client_id = $10`,
			joinList(account.AllowedScopes), joinList(account.DefaultScopes), joinList(account.AllowedAudiences),
			account.SecretHash, account.PreviousSecretHash, toUnix(account.PreviousSecretExpiresAt),
			joinList(account.TokenExchange.Audiences), account.TokenExchange.Impersonation, account.RequireDPoP, clientID)
		return revoke, err
	})
}

func (s *Store) DeleteServiceAccount(ctx context.Context, clientID string, revoke storage.SubjectRevocation) error {
	return s.deletePrincipal(ctx, `DELETE FROM service_accounts WHERE client_id = $1`, clientID, "", "", revoke)
}

// Clients.

const clientColumns = `id, redirect_uris, secret_hash, allowed_scopes, default_scopes, allowed_audiences, created_at, pkce_optional, id_token_signed_response_alg, device_authorization, require_dpop`

func scanClient(row pgx.Row) (storage.Client, error) {
	var client storage.Client
	var uris, allowed, defaults, audiences string
	var createdAt *int64
	if err := row.Scan(&client.ID, &uris, &client.SecretHash, &allowed, &defaults, &audiences, &createdAt, &client.PKCEOptional, &client.IDTokenSignedResponseAlg, &client.DeviceAuthorization, &client.RequireDPoP); err != nil {
		return storage.Client{}, notFound(err)
	}
	client.Grants = storage.Grants{AllowedScopes: splitList(allowed), DefaultScopes: splitList(defaults), AllowedAudiences: splitList(audiences)}
	client.CreatedAt = fromUnix(createdAt)
	return client, json.Unmarshal([]byte(uris), &client.RedirectURIs)
}

func (s *Store) CreateClient(ctx context.Context, client storage.Client) error {
	uris, err := json.Marshal(client.RedirectURIs)
	if err != nil {
		return err
	}
	return s.insertClientID(ctx, client.ID, client.AllowedAudiences, `INSERT INTO clients (`+clientColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		client.ID, string(uris), client.SecretHash, joinList(client.AllowedScopes), joinList(client.DefaultScopes),
		joinList(client.AllowedAudiences), toUnix(client.CreatedAt), client.PKCEOptional, client.IDTokenSignedResponseAlg, client.DeviceAuthorization, client.RequireDPoP)
}

func (s *Store) GetClient(ctx context.Context, id string) (storage.Client, error) {
	return get[storage.Client](ctx, s.reads, clientRows, id)
}

func (s *Store) ListClients(ctx context.Context, page storage.Page) ([]storage.Client, error) {
	return list(ctx, s.pool, scanClient, `SELECT `+clientColumns+` FROM clients WHERE id > $1 ORDER BY id LIMIT $2`, page.After, pageLimit(page))
}

func (s *Store) UpdateClient(ctx context.Context, id string, update func(*storage.Client) (*storage.SubjectRevocation, error)) error {
	return s.updateRecord(ctx, func(tx pgx.Tx) (*storage.SubjectRevocation, error) {
		if err := lockClientIDs(ctx, tx); err != nil {
			return nil, err
		}
		client, err := scanClient(tx.QueryRow(ctx, `SELECT `+clientColumns+` FROM clients WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return nil, err
		}
		revoke, err := update(&client)
		if err != nil {
			return nil, err
		}
		if err := audiencesFree(ctx, tx, id, client.AllowedAudiences); err != nil {
			return nil, err
		}
		uris, err := json.Marshal(client.RedirectURIs)
		if err != nil {
			return nil, err
		}
		_, err = tx.Exec(ctx, `UPDATE clients SET redirect_uris = $1, allowed_scopes = $2, default_scopes = $3, allowed_audiences = $4,
				secret_hash = $5, pkce_optional = $6, id_token_signed_response_alg = $7, device_authorization = $8, require_dpop = $9 WHERE id = $10`,
			string(uris), joinList(client.AllowedScopes), joinList(client.DefaultScopes), joinList(client.AllowedAudiences), client.SecretHash,
			client.PKCEOptional, client.IDTokenSignedResponseAlg, client.DeviceAuthorization, client.RequireDPoP, id)
		return revoke, err
	})
}

func (s *Store) DeleteClient(ctx context.Context, id string, revoke storage.SubjectRevocation) error {
	return s.deletePrincipal(ctx, `DELETE FROM clients WHERE id = $1`, id, "client_id", id, revoke)
}
