package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/chit-auth/chit/internal/storage"
)

func (s *Store) SetClientOrigins(ctx context.Context, clientID string, origins []string) error {
	return s.updateRecord(ctx, func(tx pgx.Tx) (*storage.SubjectRevocation, error) {
		// The client's row is locked, so a delete of the client waits for
		// this transaction or is seen by it.
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM clients WHERE id = $1 FOR UPDATE`, clientID).Scan(&one); err != nil {
			return nil, notFound(err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM client_origins WHERE client_id = $1`, clientID); err != nil {
			return nil, err
		}
		_, err := tx.Exec(ctx, `INSERT INTO client_origins (client_id, origin) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`, clientID, origins)
		return nil, err
	})
}

func (s *Store) GetClientOrigins(ctx context.Context, clientID string) ([]string, error) {
	return list(ctx, s.pool, scanOrigin, `SELECT origin FROM client_origins WHERE client_id = $1 ORDER BY origin`, clientID)
}

func (s *Store) ListClientOrigins(ctx context.Context) ([]string, error) {
	return list(ctx, s.pool, scanOrigin, `SELECT DISTINCT origin FROM client_origins ORDER BY origin`)
}

func scanOrigin(row pgx.Row) (string, error) {
	var origin string
	return origin, row.Scan(&origin)
}
