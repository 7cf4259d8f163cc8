-- +goose Up
-- One row per login: a rotation replaces the row's current token in place
-- and keeps only the token before it (for the grace period). Older tokens of
-- the login are recognised by a MAC they carry (see docs/security.md), so the
-- row's size does not grow with its rotations. Rows written before this
-- (generation 0, one per rotated token) stay readable until they expire.
ALTER TABLE refresh_tokens ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE refresh_tokens ADD COLUMN previous_hash BLOB;
ALTER TABLE refresh_tokens ADD COLUMN previous_rotated_at INTEGER;
ALTER TABLE refresh_tokens ADD COLUMN login_salt BLOB;
CREATE UNIQUE INDEX refresh_tokens_previous_hash ON refresh_tokens (previous_hash) WHERE previous_hash IS NOT NULL;

-- The keys of the MACs, encrypted at rest like the signing keys.
CREATE TABLE refresh_token_keys (
    id         INTEGER PRIMARY KEY,
    secret     BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE refresh_token_keys;
DROP INDEX refresh_tokens_previous_hash;
ALTER TABLE refresh_tokens DROP COLUMN login_salt;
ALTER TABLE refresh_tokens DROP COLUMN previous_rotated_at;
ALTER TABLE refresh_tokens DROP COLUMN previous_hash;
ALTER TABLE refresh_tokens DROP COLUMN generation;
