package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chit-auth/chit/internal/storage"
)

// revokeFamily records familyID as revoked at revokedAt, in tx: the access
// tokens that carry it (a login's, an API key's) are refused from then on.
func revokeFamily(ctx context.Context, tx pgx.Tx, familyID string, revokedAt time.Time) error {
	tag, err := tx.Exec(ctx, `INSERT INTO revoked_families (family_id, revoked_at) VALUES ($1, $2) ON CONFLICT DO NOTHING`, familyID, toUnix(revokedAt))
	// Revoking again refuses nothing more: verifiers already know.
	if err != nil || tag.RowsAffected() == 0 {
		return err
	}
	return recordRevocationEvent(ctx, tx, storage.RevocationEvent{Kind: storage.RevocationFamily, FamilyID: familyID, RevokedAt: revokedAt})
}

func (s *Store) RevokeRefreshFamily(ctx context.Context, familyID string, revokedAt time.Time) (int, error) {
	var n int
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := revokeFamily(ctx, tx, familyID, revokedAt); err != nil {
			return err
		}
		var err error
		n, err = deleteRefreshTokens(ctx, tx, "family_id", familyID)
		return err
	})
	return n, err
}

func (s *Store) RevokeSubject(ctx context.Context, subject string, revokedAt time.Time) (int, error) {
	var n int
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := refuseAccessTokens(ctx, tx, storage.SubjectRevocation{Subject: subject, At: revokedAt}); err != nil {
			return err
		}
		var err error
		n, err = deleteRefreshTokens(ctx, tx, "subject", subject)
		return err
	})
	return n, err
}

// deleteRefreshTokens deletes the login records and the records of one
// token whose column is value, and returns how many it deleted.
func deleteRefreshTokens(ctx context.Context, q querier, column, value string) (int, error) {
	logins, err := deleteWhere(ctx, q, `DELETE FROM refresh_logins WHERE `+column+` = $1`, value)
	if err != nil {
		return 0, err
	}
	tokens, err := deleteWhere(ctx, q, `DELETE FROM refresh_tokens WHERE `+column+` = $1`, value)
	return logins + tokens, err
}

func refuseAccessTokens(ctx context.Context, q querier, revoke storage.SubjectRevocation) error {
	var stored int64
	err := q.QueryRow(ctx, `INSERT INTO revoked_subjects (subject, revoked_at) VALUES ($1, $2)
		ON CONFLICT (subject) DO UPDATE SET revoked_at = GREATEST(revoked_subjects.revoked_at, excluded.revoked_at) RETURNING revoked_at`,
		revoke.Subject, toUnix(revoke.At)).Scan(&stored)
	if err != nil {
		return err
	}
	// A later cut-off already stored refuses more than this one, and
	// verifiers learnt it when it was stored.
	if stored != revoke.At.UnixNano() {
		return nil
	}
	return recordRevocationEvent(ctx, q, storage.RevocationEvent{Kind: storage.RevocationSubject, Subject: revoke.Subject, RevokedAt: revoke.At})
}

func (s *Store) RefuseAccessTokens(ctx context.Context, revoke storage.SubjectRevocation) error {
	return s.inTx(ctx, func(tx pgx.Tx) error { return refuseAccessTokens(ctx, tx, revoke) })
}

func (s *Store) GetRevocation(ctx context.Context, familyID, subject, client string) (storage.Revocation, error) {
	var revocation storage.Revocation
	var subjectRevokedAt *int64
	err := s.pool.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM revoked_families WHERE family_id = $1 AND $1 <> ''),
		(SELECT MAX(revoked_at) FROM revoked_subjects WHERE subject IN ($2, $3) AND subject <> '')`, familyID, subject, client).
		Scan(&revocation.FamilyRevoked, &subjectRevokedAt)
	revocation.SubjectRevokedAt = fromUnix(subjectRevokedAt)
	return revocation, err
}

func (s *Store) DeleteExpiredRevocations(ctx context.Context, cutoff time.Time) (int, error) {
	// Refresh tokens of a family about to be forgotten go first: one stored
	// after the revocation (a raced exchange) would otherwise come back.
	for table, key := range map[string]string{"refresh_logins": "family_id", "refresh_tokens": "hash"} {
		if _, err := deleteInBatches(ctx, s.pool, table, key,
			`family_id IN (SELECT family_id FROM revoked_families WHERE revoked_at < $1)`, toUnix(cutoff)); err != nil {
			return 0, err
		}
	}
	families, err := deleteInBatches(ctx, s.pool, "revoked_families", "family_id", `revoked_at < $1`, toUnix(cutoff))
	if err != nil {
		return 0, err
	}
	subjects, err := deleteInBatches(ctx, s.pool, "revoked_subjects", "subject", `revoked_at < $1`, toUnix(cutoff))
	if err != nil {
		return families + subjects, err
	}
	return families + subjects, s.deleteExpiredRevocationEvents(ctx, cutoff)
}
