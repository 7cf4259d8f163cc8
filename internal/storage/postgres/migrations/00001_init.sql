-- +goose Up
-- Times are Unix nanoseconds (BIGINT), as in the SQLite backend.
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE service_accounts (
    client_id   TEXT PRIMARY KEY,
    secret_hash BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    id           TEXT PRIMARY KEY,
    algorithm    TEXT NOT NULL,
    private_key  BYTEA NOT NULL,
    public_key   BYTEA NOT NULL,
    state        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    activated_at BIGINT,
    retired_at   BIGINT
);

CREATE TABLE refresh_tokens (
    hash              BYTEA PRIMARY KEY,
    family_id         TEXT NOT NULL,
    subject           TEXT NOT NULL,
    role              TEXT NOT NULL,
    scope             TEXT NOT NULL,
    issued_at         BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    family_expires_at BIGINT,
    rotated_at        BIGINT,
    replaced_by       BYTEA,
    sealed_successor  BYTEA
);
CREATE INDEX refresh_tokens_subject ON refresh_tokens (subject);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE TABLE providers (
    id                   TEXT PRIMARY KEY,
    claim_token_hash     BYTEA NOT NULL UNIQUE,
    claim_expires_at     BIGINT NOT NULL,
    claimed_at           BIGINT,
    key_id               TEXT UNIQUE,
    public_key           BYTEA,
    private_key          BYTEA,
    refresh_token_hash   BYTEA UNIQUE,
    sealed_refresh_token BYTEA,
    created_at           BIGINT NOT NULL
);

CREATE TABLE clients (
    id            TEXT PRIMARY KEY,
    redirect_uris TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE authorization_codes (
    hash           BYTEA PRIMARY KEY,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    subject        TEXT NOT NULL,
    role           TEXT NOT NULL,
    scope          TEXT NOT NULL,
    nonce          TEXT NOT NULL,
    auth_time      BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT,
    family_id      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);

CREATE TABLE revoked_families (
    family_id  TEXT PRIMARY KEY,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revoked_families_revoked_at ON revoked_families (revoked_at);

CREATE TABLE revoked_subjects (
    subject    TEXT PRIMARY KEY,
    revoked_at BIGINT NOT NULL
);

CREATE TABLE login_failures (
    key             TEXT PRIMARY KEY,
    failures        INTEGER NOT NULL,
    last_failure_at BIGINT NOT NULL
);
CREATE INDEX login_failures_last_failure_at ON login_failures (last_failure_at);

-- +goose Down
DROP TABLE login_failures;
DROP TABLE revoked_subjects;
DROP TABLE revoked_families;
DROP TABLE authorization_codes;
DROP TABLE clients;
DROP TABLE providers;
DROP TABLE refresh_tokens;
DROP TABLE signing_keys;
DROP TABLE service_accounts;
DROP TABLE users;
