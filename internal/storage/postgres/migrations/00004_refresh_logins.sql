-- +goose Up
-- A login's record is keyed by its family id, which its tokens carry, and
-- no index covers what a rotation changes (the current and previous
-- digests, the expiry): every rotation is a heap-only (HOT) update, which
-- writes no index entry and whose dead versions the page reclaims by
-- itself, so neither the table nor its indexes grow with rotations. The
-- fill factor leaves each page room for the next versions of its rows.
-- Records of one token from before (generation 0) stay in refresh_tokens,
-- found by digest, until they expire.
CREATE TABLE refresh_logins (
    family_id           TEXT PRIMARY KEY,
    subject             TEXT NOT NULL,
    client_id           TEXT NOT NULL DEFAULT '',
    hash                BYTEA NOT NULL,
    generation          BIGINT NOT NULL,
    previous_hash       BYTEA,
    previous_rotated_at BIGINT,
    sealed_successor    BYTEA,
    role                TEXT NOT NULL,
    scope               TEXT NOT NULL,
    audience            TEXT NOT NULL DEFAULT '',
    issued_at           BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    family_expires_at   BIGINT,
    login_salt          BYTEA
) WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000);
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
