-- +goose Up
-- Device authorization requests (RFC 8628). Both codes are kept as digests
-- only. last_polled_at lives in the row so that every replica enforces the
-- polling interval; one conditional UPDATE per poll reads and stamps it.
CREATE TABLE device_codes (
    device_code_hash BLOB PRIMARY KEY,
    user_code_hash   BLOB NOT NULL UNIQUE,
    client_id        TEXT NOT NULL,
    scope            TEXT NOT NULL DEFAULT '',
    requested_from   TEXT NOT NULL DEFAULT '',
    requested_at     INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    interval_ns      INTEGER NOT NULL,
    last_polled_at   INTEGER,
    status           TEXT NOT NULL DEFAULT 'pending',
    subject          TEXT NOT NULL DEFAULT '',
    auth_time        INTEGER,
    session_id       TEXT NOT NULL DEFAULT '',
    decided_at       INTEGER,
    redeemed_at      INTEGER,
    poll_outcome     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX device_codes_expires_at ON device_codes (expires_at);
-- Clients are allowed the device grant one by one.
ALTER TABLE clients ADD COLUMN device_authorization INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE clients DROP COLUMN device_authorization;
DROP TABLE device_codes;
