package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/chit-auth/chit/internal/storage"
)

func (s *Store) SetClientLogout(ctx context.Context, clientID string, settings storage.ClientLogout) error {
	return s.updateRecord(ctx, func(tx *transaction) (*storage.SubjectRevocation, error) {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM clients WHERE id = ?`, clientID).Scan(&one); err != nil {
			return nil, notFound(err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO client_logout (client_id, post_logout_redirect_uris, backchannel_logout_uri, revokes_refresh_tokens)
			VALUES (?, ?, ?, ?) ON CONFLICT (client_id) DO UPDATE SET post_logout_redirect_uris = excluded.post_logout_redirect_uris,
			backchannel_logout_uri = excluded.backchannel_logout_uri, revokes_refresh_tokens = excluded.revokes_refresh_tokens`,
			clientID, joinList(settings.PostLogoutRedirectURIs), settings.BackchannelLogoutURI, settings.RevokesRefreshTokens)
		return nil, err
	})
}

func (s *Store) GetClientLogout(ctx context.Context, clientID string) (storage.ClientLogout, error) {
	var settings storage.ClientLogout
	var uris string
	err := s.db.QueryRowContext(ctx, `SELECT post_logout_redirect_uris, backchannel_logout_uri, revokes_refresh_tokens FROM client_logout WHERE client_id = ?`, clientID).
		Scan(&uris, &settings.BackchannelLogoutURI, &settings.RevokesRefreshTokens)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ClientLogout{}, nil
	}
	settings.PostLogoutRedirectURIs = splitList(uris)
	return settings, err
}
