-- +goose Up
-- A service account's secret rotates with an overlap: the secret before the
-- last rotation keeps working until previous_secret_expires_at.
ALTER TABLE service_accounts ADD COLUMN previous_secret_hash BYTEA;
ALTER TABLE service_accounts ADD COLUMN previous_secret_expires_at BIGINT;

-- +goose Down
ALTER TABLE service_accounts DROP COLUMN previous_secret_expires_at;
ALTER TABLE service_accounts DROP COLUMN previous_secret_hash;
