package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/chit-auth/chit/internal/storage"
)

func (s *Store) SetClientLogout(ctx context.Context, clientID string, settings storage.ClientLogout) error {
	return s.updateRecord(ctx, func(tx pgx.Tx) (*storage.SubjectRevocation, error) {
		// The client's row is locked, so a delete of the client waits for
		// this transaction or is seen by it.
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM clients WHERE id = $1 FOR UPDATE`, clientID).Scan(&one); err != nil {
			return nil, notFound(err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO client_logout (client_id, post_logout_redirect_uris, backchannel_logout_uri, revokes_refresh_tokens)
			VALUES ($1, $2, $3, $4) ON CONFLICT (client_id) DO UPDATE SET post_logout_redirect_uris = excluded.post_logout_redirect_uris,
			backchannel_logout_uri = excluded.backchannel_logout_uri, revokes_refresh_tokens = excluded.revokes_refresh_tokens`,
			clientID, joinList(settings.PostLogoutRedirectURIs), settings.BackchannelLogoutURI, settings.RevokesRefreshTokens)
		return nil, err
	})
}

func (s *Store) GetClientLogout(ctx context.Context, clientID string) (storage.ClientLogout, error) {
	var settings storage.ClientLogout
	var uris string
	err := s.pool.QueryRow(ctx, `SELECT post_logout_redirect_uris, backchannel_logout_uri, revokes_refresh_tokens FROM client_logout WHERE client_id = $1`, clientID).
		Scan(&uris, &settings.BackchannelLogoutURI, &settings.RevokesRefreshTokens)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.ClientLogout{}, nil
	}
	settings.PostLogoutRedirectURIs = splitList(uris)
	return settings, err
}
