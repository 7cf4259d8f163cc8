package sqlite

import (
	"context"

	"github.com/chit-auth/chit/internal/storage"
)

func (s *Store) SetClientOrigins(ctx context.Context, clientID string, origins []string) error {
	return s.updateRecord(ctx, func(tx *transaction) (*storage.SubjectRevocation, error) {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM clients WHERE id = ?`, clientID).Scan(&one); err != nil {
			return nil, notFound(err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM client_origins WHERE client_id = ?`, clientID); err != nil {
			return nil, err
		}
		for _, origin := range origins {
			if _, err := tx.ExecContext(ctx, `INSERT INTO client_origins (client_id, origin) VALUES (?, ?) ON CONFLICT DO NOTHING`, clientID, origin); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
}

func (s *Store) GetClientOrigins(ctx context.Context, clientID string) ([]string, error) {
	return listRows(ctx, s.db, scanOrigin, `SELECT origin FROM client_origins WHERE client_id = ? ORDER BY origin`, clientID)
}

func (s *Store) ListClientOrigins(ctx context.Context) ([]string, error) {
	return listRows(ctx, s.db, scanOrigin, `SELECT DISTINCT origin FROM client_origins ORDER BY origin`)
}

func scanOrigin(row rowScanner) (string, error) {
	var origin string
	return origin, row.Scan(&origin)
}
