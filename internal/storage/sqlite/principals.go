package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"

	"github.com/chit-auth/chit/internal/storage"
)

// Lists of scopes and audiences are stored space-separated: neither may
// contain a space.
func joinList(items []string) string { return strings.Join(items, " ") }

func splitList(text string) []string { return strings.Fields(text) }

const userColumns = `name, password_hash, role, allowed_scopes, default_scopes, created_at, email, email_verified, display_name, group_names`

func scanUser(row rowScanner) (storage.User, error) {
	var user storage.User
	var allowed, defaults string
	var createdAt sql.NullInt64
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
	return s.insert(ctx,
		`INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		user.Name, user.PasswordHash, user.Role, joinList(user.AllowedScopes), joinList(user.DefaultScopes), toUnix(user.CreatedAt),
		user.Email, user.EmailVerified, user.DisplayName, joinList(user.Groups))
}

func (s *Store) GetUser(ctx context.Context, name string) (storage.User, error) {
	return scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
}

func (s *Store) ListUsers(ctx context.Context, page storage.Page) ([]storage.User, error) {
	return listRows(ctx, s.db, scanUser, `SELECT `+userColumns+` FROM users WHERE name > ? ORDER BY name LIMIT ?`, page.After, pageLimit(page))
}

// pageLimit is page's LIMIT; SQLite takes a negative one as none.
func pageLimit(page storage.Page) int {
	if page.Limit <= 0 {
		return -1
	}
	return page.Limit
}

// listRows runs a query and scans every row.
func listRows[T any](ctx context.Context, db *pool, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var items []T
	for rows.Next() {
		item, err := scan(rows)
		if err != nil {
			return nil, err
		}
		items = append(items, item)
	}
	return items, rows.Err()
}

func (s *Store) UpdatePasswordHash(ctx context.Context, name, oldHash, newHash string) error {
	result, err := s.writer.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE name = ? AND password_hash = ?`, newHash, name, oldHash)
	if err != nil {
		return err
	}
	if err := requireOneRow(result, storage.ErrConflict); err != nil {
		if _, getErr := s.GetUser(ctx, name); errors.Is(getErr, storage.ErrNotFound) {
			return storage.ErrNotFound
		}
		return err
	}
	return nil
}

func (s *Store) UpdateUser(ctx context.Context, name string, update func(*storage.User) (*storage.SubjectRevocation, error)) error {
	return s.updateRecord(ctx, func(tx *transaction) (*storage.SubjectRevocation, error) {
		user, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
		if err != nil {
			return nil, err
		}
		revoke, err := update(&user)
		if err != nil {
			return nil, err
		}
		_, err = tx.ExecContext(ctx, `UPDATE users SET role = ?, allowed_scopes = ?, default_scopes = ?,
			email = ?, email_verified = ?, display_name = ?, group_names = ? WHERE name = ?`,
			user.Role, joinList(user.AllowedScopes), joinList(user.DefaultScopes), user.Email, user.EmailVerified, user.DisplayName, joinList(user.Groups), name)
		return revoke, err
	})
}

// updateRecord runs change in a write transaction and records the
// revocation it returns in the same transaction.
func (s *Store) updateRecord(ctx context.Context, change func(tx *transaction) (*storage.SubjectRevocation, error)) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	revoke, err := change(tx)
	if err != nil {
		return err
	}
	if revoke != nil {
		if err := refuseAccessTokens(ctx, tx, *revoke); err != nil {
			return err
		}
	}
	return tx.commit(ctx)
}

// deletePrincipal deletes one row with query and, in the same transaction,
// the refresh tokens and unredeemed codes that match tokensWhere (a column
// compared with owner), and records revoke.
func (s *Store) deletePrincipal(ctx context.Context, query, id, tokensColumn, owner string, revoke storage.SubjectRevocation) error {
	return s.updateRecord(ctx, func(tx *transaction) (*storage.SubjectRevocation, error) {
		result, err := tx.ExecContext(ctx, query, id)
		if err != nil {
			return nil, err
		}
		if err := requireOneRow(result, storage.ErrNotFound); err != nil {
			return nil, err
		}
		// The principal's API keys go with it.
		if _, err := tx.ExecContext(ctx, `DELETE FROM api_keys WHERE subject = ?`, revoke.Subject); err != nil {
			return nil, err
		}
		if tokensColumn != "" {
			if _, err := deleteRefreshTokens(ctx, tx, tokensColumn, owner); err != nil {
				return nil, err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM authorization_codes WHERE `+tokensColumn+` = ? AND used_at IS NULL`, owner); err != nil {
				return nil, err
			}
		}
		// A person's sign-in sessions go with them (only people have any).
		if tokensColumn == "subject" {
			if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE subject = ?`, owner); err != nil {
				return nil, err
			}
		}
		return &revoke, nil
	})
}

func (s *Store) DeleteUser(ctx context.Context, name string, revoke storage.SubjectRevocation) error {
	return s.deletePrincipal(ctx, `DELETE FROM users WHERE name = ?`, name, "subject", revoke.Subject, revoke)
}

const serviceAccountColumns = `client_id, secret_hash, allowed_scopes, default_scopes, allowed_audiences, created_at,
	previous_secret_hash, previous_secret_expires_at, token_exchange_audiences, token_exchange_impersonation, require_dpop`

func scanServiceAccount(row rowScanner) (storage.ServiceAccount, error) {
	var account storage.ServiceAccount
	var allowed, defaults, audiences, exchangeAudiences string
	var createdAt, previousExpires sql.NullInt64
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

// insertClientID inserts a row whose id lives in the OAuth client_id space
// that service accounts and clients share (storage.Store's CreateClient says
// the rules). The writer's transaction sees both tables, so the checks and
// the insert cannot interleave with another.
func (s *Store) insertClientID(ctx context.Context, id string, audiences []string, query string, args ...any) error {
	return s.updateRecord(ctx, func(tx *transaction) (*storage.SubjectRevocation, error) {
		var taken int
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM service_accounts WHERE lower(client_id) = lower(?)
				OR instr(' ' || lower(allowed_audiences) || ' ', ' ' || lower(?) || ' ') > 0)
			OR EXISTS (SELECT 1 FROM clients WHERE lower(id) = lower(?)
				OR instr(' ' || lower(allowed_audiences) || ' ', ' ' || lower(?) || ' ') > 0)`, id, id, id, id).Scan(&taken); err != nil {
			return nil, err
		}
		if taken == 1 {
			return nil, storage.ErrAlreadyExists
		}
		if err := audiencesFree(ctx, tx, id, audiences); err != nil {
			return nil, err
		}
		_, err := tx.ExecContext(ctx, query, args...)
		return nil, err
	})
}

// audiencesFree refuses audiences that are the id of a client, or ownID,
// whatever their case, with storage.ErrConflict. An audience may be a
// service account's id: a token addressed to the service, which it may
// exchange (token exchange); a client's id is its ID tokens' audience.
func audiencesFree(ctx context.Context, tx *transaction, ownID string, audiences []string) error {
	for _, audience := range audiences {
		if strings.EqualFold(audience, ownID) {
			return storage.ErrConflict
		}
		var taken int
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM clients WHERE lower(id) = lower(?))`, audience).Scan(&taken); err != nil {
			return err
		}
		if taken == 1 {
			return storage.ErrConflict
		}
	}
	return nil
}

func (s *Store) CreateServiceAccount(ctx context.Context, account storage.ServiceAccount) error {
	return s.insertClientID(ctx, account.ClientID, account.AllowedAudiences,
		`INSERT INTO service_accounts (`+serviceAccountColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		account.ClientID, account.SecretHash, joinList(account.AllowedScopes), joinList(account.DefaultScopes),
		joinList(account.AllowedAudiences), toUnix(account.CreatedAt), account.PreviousSecretHash, toUnix(account.PreviousSecretExpiresAt),
		joinList(account.TokenExchange.Audiences), account.TokenExchange.Impersonation, account.RequireDPoP)
}

func (s *Store) GetServiceAccount(ctx context.Context, clientID string) (storage.ServiceAccount, error) {
	return scanServiceAccount(s.db.QueryRowContext(ctx, `SELECT `+serviceAccountColumns+` FROM service_accounts WHERE client_id = ?`, clientID))
}

func (s *Store) ListServiceAccounts(ctx context.Context, page storage.Page) ([]storage.ServiceAccount, error) {
	return listRows(ctx, s.db, scanServiceAccount, `SELECT `+serviceAccountColumns+` FROM service_accounts WHERE client_id > ? ORDER BY client_id LIMIT ?`,
		page.After, pageLimit(page))
}

func (s *Store) UpdateServiceAccount(ctx context.Context, clientID string, update func(*storage.ServiceAccount) (*storage.SubjectRevocation, error)) error {
	return s.updateRecord(ctx, func(tx *transaction) (*storage.SubjectRevocation, error) {
		account, err := scanServiceAccount(tx.QueryRowContext(ctx, `SELECT `+serviceAccountColumns+` FROM service_accounts WHERE client_id = ?`, clientID))
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
		_, err = tx.ExecContext(ctx, `UPDATE service_accounts SET allowed_scopes = ?, default_scopes = ?, allowed_audiences = ?,
				secret_hash = ?, previous_secret_hash = ?, previous_secret_expires_at = ?,
				token_exchange_audiences = ?, token_exchange_impersonation = ?, require_dpop = ? WHERE client_id = ?`,
			joinList(account.AllowedScopes), joinList(account.DefaultScopes), joinList(account.AllowedAudiences),
			account.SecretHash, account.PreviousSecretHash, toUnix(account.PreviousSecretExpiresAt),
			joinList(account.TokenExchange.Audiences), account.TokenExchange.Impersonation, account.RequireDPoP, clientID)
		return revoke, err
	})
}

func (s *Store) DeleteServiceAccount(ctx context.Context, clientID string, revoke storage.SubjectRevocation) error {
	return s.deletePrincipal(ctx, `DELETE FROM service_accounts WHERE client_id = ?`, clientID, "", "", revoke)
}

const clientColumns = `id, redirect_uris, secret_hash, allowed_scopes, default_scopes, allowed_audiences, created_at, pkce_optional, id_token_signed_response_alg, device_authorization, require_dpop`

func scanClient(row rowScanner) (storage.Client, error) {
	var client storage.Client
	var uris, allowed, defaults, audiences string
	var createdAt sql.NullInt64
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
	return s.insertClientID(ctx, client.ID, client.AllowedAudiences, `INSERT INTO clients (`+clientColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		client.ID, string(uris), client.SecretHash, joinList(client.AllowedScopes), joinList(client.DefaultScopes),
		joinList(client.AllowedAudiences), toUnix(client.CreatedAt), client.PKCEOptional, client.IDTokenSignedResponseAlg, client.DeviceAuthorization, client.RequireDPoP)
}

func (s *Store) GetClient(ctx context.Context, id string) (storage.Client, error) {
	return scanClient(s.db.QueryRowContext(ctx, `SELECT `+clientColumns+` FROM clients WHERE id = ?`, id))
}

func (s *Store) ListClients(ctx context.Context, page storage.Page) ([]storage.Client, error) {
	return listRows(ctx, s.db, scanClient, `SELECT `+clientColumns+` FROM clients WHERE id > ? ORDER BY id LIMIT ?`, page.After, pageLimit(page))
}

func (s *Store) UpdateClient(ctx context.Context, id string, update func(*storage.Client) (*storage.SubjectRevocation, error)) error {
	return s.updateRecord(ctx, func(tx *transaction) (*storage.SubjectRevocation, error) {
		client, err := scanClient(tx.QueryRowContext(ctx, `SELECT `+clientColumns+` FROM clients WHERE id = ?`, id))
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
		_, err = tx.ExecContext(ctx, `UPDATE clients SET redirect_uris = ?, allowed_scopes = ?, default_scopes = ?, allowed_audiences = ?,
				secret_hash = ?, pkce_optional = ?, id_token_signed_response_alg = ?, device_authorization = ?, require_dpop = ? WHERE id = ?`,
			string(uris), joinList(client.AllowedScopes), joinList(client.DefaultScopes), joinList(client.AllowedAudiences), client.SecretHash,
			client.PKCEOptional, client.IDTokenSignedResponseAlg, client.DeviceAuthorization, client.RequireDPoP, id)
		return revoke, err
	})
}

func (s *Store) DeleteClient(ctx context.Context, id string, revoke storage.SubjectRevocation) error {
	return s.deletePrincipal(ctx, `DELETE FROM clients WHERE id = ?`, id, "client_id", id, revoke)
}
