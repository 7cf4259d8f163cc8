package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

// revokeFamily records familyID as revoked at revokedAt, in tx: the access
// tokens that carry it (a login's, an API key's) are refused from then on.
func revokeFamily(ctx context.Context, tx execer, familyID string, revokedAt time.Time) error {
	result, err := tx.ExecContext(ctx, `INSERT INTO revoked_families (family_id, revoked_at) VALUES (?, ?) ON CONFLICT DO NOTHING`, familyID, toUnix(revokedAt))
	if err != nil {
		return err
	}
	// Revoking again refuses nothing more: verifiers already know.
	if n, err := result.RowsAffected(); err != nil || n == 0 {
		return err
	}
	return recordRevocationEvent(ctx, tx, storage.RevocationEvent{Kind: storage.RevocationFamily, FamilyID: familyID, RevokedAt: revokedAt})
}

func (s *Store) RevokeRefreshFamily(ctx context.Context, familyID string, revokedAt time.Time) (int, error) {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if err := revokeFamily(ctx, tx, familyID, revokedAt); err != nil {
		return 0, err
	}
	n, err := deleteRefreshTokens(ctx, tx, "family_id", familyID)
	if err != nil {
		return 0, err
	}
	return n, tx.commit(ctx)
}

func (s *Store) RevokeSubject(ctx context.Context, subject string, revokedAt time.Time) (int, error) {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if err := refuseAccessTokens(ctx, tx, storage.SubjectRevocation{Subject: subject, At: revokedAt}); err != nil {
		return 0, err
	}
	n, err := deleteRefreshTokens(ctx, tx, "subject", subject)
	if err != nil {
		return 0, err
	}
	return n, tx.commit(ctx)
}

// deleteRefreshTokens deletes the login records and the records of one
// token whose column is value, and returns how many it deleted.
func deleteRefreshTokens(ctx context.Context, tx execer, column, value string) (int, error) {
	total := 0
	for _, table := range []string{"refresh_logins", "refresh_tokens"} {
		result, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE `+column+` = ?`, value)
		if err != nil {
			return 0, err
		}
		n, err := result.RowsAffected()
		if err != nil {
			return 0, err
		}
		total += int(n)
	}
	return total, nil
}

func refuseAccessTokens(ctx context.Context, tx *transaction, revoke storage.SubjectRevocation) error {
	var stored int64
	err := tx.QueryRowContext(ctx, `INSERT INTO revoked_subjects (subject, revoked_at) VALUES (?, ?)
		ON CONFLICT (subject) DO UPDATE SET revoked_at = MAX(revoked_at, excluded.revoked_at) RETURNING revoked_at`,
		revoke.Subject, toUnix(revoke.At)).Scan(&stored)
	if err != nil {
		return err
	}
	// A later cut-off already stored refuses more than this one, and
	// verifiers learnt it when it was stored.
	if stored != revoke.At.UnixNano() {
		return nil
	}
	return recordRevocationEvent(ctx, tx, storage.RevocationEvent{Kind: storage.RevocationSubject, Subject: revoke.Subject, RevokedAt: revoke.At})
}

func (s *Store) RefuseAccessTokens(ctx context.Context, revoke storage.SubjectRevocation) error {
	return s.updateRecord(ctx, func(*transaction) (*storage.SubjectRevocation, error) { return &revoke, nil })
}

func (s *Store) GetRevocation(ctx context.Context, familyID, subject, client string) (storage.Revocation, error) {
	var revocation storage.Revocation
	var familyRevoked int
	var subjectRevokedAt sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM revoked_families WHERE family_id = ? AND ? != ''),
		(SELECT MAX(revoked_at) FROM revoked_subjects WHERE subject IN (?, ?) AND subject != '')`, familyID, familyID, subject, client).
		Scan(&familyRevoked, &subjectRevokedAt)
	if err != nil {
		return storage.Revocation{}, err
	}
	revocation.FamilyRevoked = familyRevoked == 1
	revocation.SubjectRevokedAt = fromUnix(subjectRevokedAt)
	return revocation, nil
}

func (s *Store) DeleteExpiredRevocations(ctx context.Context, cutoff time.Time) (int, error) {
	// Refresh tokens of a family about to be forgotten go first: one stored
	// after the revocation (a raced exchange) would otherwise come back.
	for _, table := range []string{"refresh_logins", "refresh_tokens"} {
		if _, err := s.deleteInBatches(ctx, table,
			`family_id IN (SELECT family_id FROM revoked_families WHERE revoked_at < ?)`, toUnix(cutoff)); err != nil {
			return 0, err
		}
	}
	families, err := s.deleteInBatches(ctx, "revoked_families", `revoked_at < ?`, toUnix(cutoff))
	if err != nil {
		return families, err
	}
	subjects, err := s.deleteInBatches(ctx, "revoked_subjects", `revoked_at < ?`, toUnix(cutoff))
	if err != nil {
		return families + subjects, err
	}
	return families + subjects, s.deleteExpiredRevocationEvents(ctx, cutoff)
}
