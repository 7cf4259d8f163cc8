-- +goose Up
CREATE TABLE providers (
    id                   TEXT PRIMARY KEY,
    claim_token_hash     BLOB NOT NULL UNIQUE,
    claim_expires_at     INTEGER NOT NULL,
    claimed_at           INTEGER,
    key_id               TEXT UNIQUE,
    public_key           BLOB,
    private_key          BLOB,
    refresh_token_hash   BLOB UNIQUE,
    sealed_refresh_token BLOB,
    created_at           INTEGER NOT NULL
);

-- +goose Down
DROP TABLE providers;
