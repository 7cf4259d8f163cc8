-- +goose Up
ALTER TABLE signing_keys ADD COLUMN state TEXT NOT NULL DEFAULT 'active';
ALTER TABLE signing_keys ADD COLUMN activated_at INTEGER;
ALTER TABLE signing_keys ADD COLUMN retired_at INTEGER;
UPDATE signing_keys SET activated_at = created_at;

-- +goose Down
ALTER TABLE signing_keys DROP COLUMN retired_at;
ALTER TABLE signing_keys DROP COLUMN activated_at;
ALTER TABLE signing_keys DROP COLUMN state;
