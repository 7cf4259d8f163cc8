-- +goose Up
CREATE TABLE clients (
    id            TEXT PRIMARY KEY,
    redirect_uris TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE authorization_codes (
    hash           BLOB PRIMARY KEY,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    subject        TEXT NOT NULL,
    role           TEXT NOT NULL,
    scope          TEXT NOT NULL,
    nonce          TEXT NOT NULL,
    auth_time      INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER,
    family_id      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);

-- +goose Down
DROP INDEX refresh_tokens_family_id;
DROP TABLE authorization_codes;
DROP TABLE clients;
