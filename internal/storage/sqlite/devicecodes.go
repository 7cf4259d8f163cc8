package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

const deviceColumns = `device_code_hash, user_code_hash, client_id, scope, requested_from, requested_at, expires_at, interval_ns, last_polled_at, status, subject, auth_time, session_id, decided_at, redeemed_at`

func (s *Store) CreateDeviceCode(ctx context.Context, c storage.DeviceCode) error {
	return s.insert(ctx, `INSERT INTO device_codes (`+deviceColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		c.DeviceCodeHash, c.UserCodeHash, c.ClientID, c.Scope, c.RequestedFrom, toUnix(c.RequestedAt), toUnix(c.ExpiresAt),
		int64(c.Interval), toUnix(c.LastPolledAt), string(c.Status), c.Subject, toUnix(c.AuthTime), c.SessionID,
		toUnix(c.DecidedAt), toUnix(c.RedeemedAt))
}

func scanDeviceCode(row rowScanner) (storage.DeviceCode, storage.DevicePollOutcome, error) {
	var c storage.DeviceCode
	var requestedAt, expiresAt, lastPolled, authTime, decided, redeemed sql.NullInt64
	var interval int64
	var status, outcome string
	if err := row.Scan(&c.DeviceCodeHash, &c.UserCodeHash, &c.ClientID, &c.Scope, &c.RequestedFrom, &requestedAt, &expiresAt,
		&interval, &lastPolled, &status, &c.Subject, &authTime, &c.SessionID, &decided, &redeemed, &outcome); err != nil {
		return storage.DeviceCode{}, "", notFound(err)
	}
	c.RequestedAt, c.ExpiresAt, c.LastPolledAt = fromUnix(requestedAt), fromUnix(expiresAt), fromUnix(lastPolled)
	c.AuthTime, c.DecidedAt, c.RedeemedAt = fromUnix(authTime), fromUnix(decided), fromUnix(redeemed)
	c.Interval, c.Status = time.Duration(interval), storage.DeviceStatus(status)
	return c, storage.DevicePollOutcome(outcome), nil
}

func (s *Store) GetDeviceCodeByUserCode(ctx context.Context, userCodeHash []byte) (storage.DeviceCode, error) {
	c, _, err := scanDeviceCode(s.db.QueryRowContext(ctx, `SELECT `+deviceColumns+`, poll_outcome FROM device_codes WHERE user_code_hash = ?`, userCodeHash))
	return c, err
}

// errNotDecided marks a decision that changed no row: the request is
// unknown (ErrNotFound) or no longer pending (ErrConflict).
var errNotDecided = storage.ErrConflict

func (s *Store) DecideDeviceCode(ctx context.Context, userCodeHash []byte, d storage.DeviceDecision) error {
	result, err := s.writer.ExecContext(ctx, `UPDATE device_codes SET status = ?, subject = ?, auth_time = ?, session_id = ?, decided_at = ? WHERE user_code_hash = ? AND status = 'pending' AND expires_at > ?`,
		string(d.Status), d.Subject, toUnix(d.AuthTime), d.SessionID, toUnix(d.At), userCodeHash, toUnix(d.At))
	if err != nil {
		return err
	}
	if err := requireOneRow(result, errNotDecided); err != nil {
		var one int
		if notFound(s.db.QueryRowContext(ctx, `SELECT 1 FROM device_codes WHERE user_code_hash = ?`, userCodeHash).Scan(&one)) == storage.ErrNotFound {
			return storage.ErrNotFound
		}
		return err
	}
	return nil
}

// pollDeviceCode reads and stamps a device code in one statement: every
// SET expression sees the row as it was before this poll, and the row lock
// the UPDATE takes queues concurrent polls, so of N polls of an approved
// code exactly one sees redeemed_at unset.
const pollDeviceCode = `UPDATE device_codes SET
	poll_outcome = CASE
		WHEN expires_at <= ?1 THEN 'expired'
		WHEN status = 'approved' AND redeemed_at IS NOT NULL THEN 'redeemed'
		WHEN (last_polled_at IS NOT NULL AND ?1 < last_polled_at + interval_ns) THEN 'slow_down'
		WHEN status = 'denied' THEN 'denied'
		WHEN status = 'approved' THEN 'issue'
		ELSE 'pending' END,
	interval_ns = CASE WHEN expires_at > ?1 AND NOT (status = 'approved' AND redeemed_at IS NOT NULL) AND (last_polled_at IS NOT NULL AND ?1 < last_polled_at + interval_ns)
		THEN interval_ns + ?2 ELSE interval_ns END,
	redeemed_at = CASE WHEN expires_at > ?1 AND status = 'approved' AND redeemed_at IS NULL AND NOT (last_polled_at IS NOT NULL AND ?1 < last_polled_at + interval_ns)
		THEN ?1 ELSE redeemed_at END,
	last_polled_at = ?1
WHERE device_code_hash = ?3 AND client_id = ?4
RETURNING ` + deviceColumns + `, poll_outcome`

func (s *Store) PollDeviceCode(ctx context.Context, deviceCodeHash []byte, clientID string, now time.Time, slowDownStep time.Duration) (storage.DeviceCode, storage.DevicePollOutcome, error) {
	return scanDeviceCode(s.writer.QueryRowContext(ctx, pollDeviceCode, toUnix(now), int64(slowDownStep), deviceCodeHash, clientID))
}

func (s *Store) DeleteExpiredDeviceCodes(ctx context.Context, cutoff time.Time) (int, error) {
	return s.deleteInBatches(ctx, "device_codes", `expires_at < ?`, toUnix(cutoff))
}
