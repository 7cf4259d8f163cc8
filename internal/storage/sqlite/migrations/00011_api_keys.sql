-- +goose Up
-- API keys: long-lived credentials people and service accounts make for
-- themselves, exchanged for short-lived access tokens. Only the digest of a
-- key is kept; a key lasts at most a year and each owner holds a bounded
-- number, so the table is bounded by the principals.
CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    subject    TEXT NOT NULL,
    name       TEXT NOT NULL,
    scope      TEXT NOT NULL DEFAULT '',
    hash       BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    UNIQUE (subject, name)
);
CREATE INDEX api_keys_expires_at ON api_keys (expires_at);

-- +goose Down
DROP TABLE api_keys;
