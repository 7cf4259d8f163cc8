-- +goose Up
-- Sender-constrained tokens (DPoP, RFC 9449). require_dpop makes a client's
-- or a service account's token requests carry a DPoP proof (RFC 9449
-- §5.2.1 dpop_bound_access_tokens); the default is what every principal had
-- before: bearer tokens. dpop_jkt is the JWK thumbprint a public client's
-- login is bound to (RFC 9449 §5), kept by every rotation; '' is a login
-- bound to no key, as every login before. Records of one token
-- (refresh_tokens) predate DPoP and get no column: they read as unbound.
ALTER TABLE clients ADD COLUMN require_dpop BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE service_accounts ADD COLUMN require_dpop BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE refresh_logins ADD COLUMN dpop_jkt TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE refresh_logins DROP COLUMN dpop_jkt;
ALTER TABLE service_accounts DROP COLUMN require_dpop;
ALTER TABLE clients DROP COLUMN require_dpop;
