-- +goose Up
-- The sign-in page's browser sessions (single sign-on). The cookie's secret
-- is kept as its digest only. idle_expires_at is never later than
-- expires_at and is brought forward when a session ends, so the sweep
-- reads one indexed time.
CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    secret_hash     BYTEA NOT NULL,
    subject         TEXT NOT NULL,
    auth_time       BIGINT NOT NULL,
    amr             TEXT NOT NULL DEFAULT '',
    client_ids      TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT NOT NULL,
    idle_expires_at BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    ended_at        BIGINT
);
CREATE INDEX sessions_subject ON sessions (subject, created_at);
CREATE INDEX sessions_idle_expires_at ON sessions (idle_expires_at);
-- The session a code was issued through: its ID tokens carry it as sid.
ALTER TABLE authorization_codes ADD COLUMN session_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE authorization_codes DROP COLUMN session_id;
DROP TABLE sessions;
