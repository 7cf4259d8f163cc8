-- +goose Up
-- A login's record is keyed by its family id, which its tokens carry, and
-- no index covers what a rotation changes (the current and previous
-- digests, the expiry): a rotation rewrites one row and touches no index,
-- so its cost does not grow with the number of live logins. Records of one
-- token from before (generation 0) stay in refresh_tokens, found by digest,
-- until they expire.
CREATE TABLE refresh_logins (
    family_id           TEXT PRIMARY KEY,
    subject             TEXT NOT NULL,
    client_id           TEXT NOT NULL DEFAULT '',
    hash                BLOB NOT NULL,
    generation          INTEGER NOT NULL,
    previous_hash       BLOB,
    previous_rotated_at INTEGER,
    sealed_successor    BLOB,
    role                TEXT NOT NULL,
    scope               TEXT NOT NULL,
    audience            TEXT NOT NULL DEFAULT '',
    issued_at           INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    family_expires_at   INTEGER,
    login_salt          BLOB
) WITHOUT ROWID;
CREATE INDEX refresh_logins_subject ON refresh_logins (subject);
CREATE INDEX refresh_logins_client_id ON refresh_logins (client_id);

INSERT INTO refresh_logins (family_id, subject, client_id, hash, generation, previous_hash, previous_rotated_at, sealed_successor,
    role, scope, audience, issued_at, expires_at, family_expires_at, login_salt)
SELECT family_id, subject, client_id, hash, generation, previous_hash, previous_rotated_at, sealed_successor,
    role, scope, audience, issued_at, expires_at, family_expires_at, login_salt
FROM refresh_tokens WHERE generation > 0;
DELETE FROM refresh_tokens WHERE generation > 0;
DROP INDEX refresh_tokens_previous_hash;

-- +goose Down
INSERT INTO refresh_tokens (hash, family_id, subject, client_id, generation, previous_hash, previous_rotated_at, sealed_successor,
    role, scope, audience, issued_at, expires_at, family_expires_at, login_salt)
SELECT hash, family_id, subject, client_id, generation, previous_hash, previous_rotated_at, sealed_successor,
    role, scope, audience, issued_at, expires_at, family_expires_at, login_salt
FROM refresh_logins;
CREATE UNIQUE INDEX refresh_tokens_previous_hash ON refresh_tokens (previous_hash) WHERE previous_hash IS NOT NULL;
DROP TABLE refresh_logins;
