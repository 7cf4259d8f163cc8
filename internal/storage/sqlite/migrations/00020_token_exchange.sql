-- +goose Up
-- A service account's token exchange policy (RFC 8693): the audiences it may
-- exchange tokens addressed to it for (space-separated, as the other lists),
-- and whether its exchanges are impersonations (no act claim). The defaults
-- are no exchange at all, which is what every account had before.
ALTER TABLE service_accounts ADD COLUMN token_exchange_audiences TEXT NOT NULL DEFAULT '';
ALTER TABLE service_accounts ADD COLUMN token_exchange_impersonation INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE service_accounts DROP COLUMN token_exchange_impersonation;
ALTER TABLE service_accounts DROP COLUMN token_exchange_audiences;
