-- +goose Up
-- Grants: what each principal may obtain. Lists are space-separated (scopes
-- and audiences contain no spaces). Principals that exist now get nothing
-- beyond the OpenID Connect scopes, which people always have and existing
-- clients keep.
ALTER TABLE users ADD COLUMN allowed_scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN default_scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE service_accounts ADD COLUMN allowed_scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE service_accounts ADD COLUMN default_scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE service_accounts ADD COLUMN allowed_audiences TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN secret_hash BLOB;
ALTER TABLE clients ADD COLUMN allowed_scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN default_scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN allowed_audiences TEXT NOT NULL DEFAULT '';
UPDATE clients SET allowed_scopes = 'openid profile offline_access';
ALTER TABLE refresh_tokens ADD COLUMN client_id TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_tokens ADD COLUMN audience TEXT NOT NULL DEFAULT '';
CREATE INDEX refresh_tokens_client_id ON refresh_tokens (client_id);
CREATE INDEX authorization_codes_subject ON authorization_codes (subject);
CREATE INDEX authorization_codes_client_id ON authorization_codes (client_id);
ALTER TABLE providers ADD COLUMN registered_by TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE providers DROP COLUMN registered_by;
DROP INDEX authorization_codes_client_id;
DROP INDEX authorization_codes_subject;
DROP INDEX refresh_tokens_client_id;
ALTER TABLE refresh_tokens DROP COLUMN audience;
ALTER TABLE refresh_tokens DROP COLUMN client_id;
ALTER TABLE clients DROP COLUMN allowed_audiences;
ALTER TABLE clients DROP COLUMN default_scopes;
ALTER TABLE clients DROP COLUMN allowed_scopes;
ALTER TABLE clients DROP COLUMN secret_hash;
ALTER TABLE service_accounts DROP COLUMN allowed_audiences;
ALTER TABLE service_accounts DROP COLUMN default_scopes;
ALTER TABLE service_accounts DROP COLUMN allowed_scopes;
ALTER TABLE users DROP COLUMN default_scopes;
ALTER TABLE users DROP COLUMN allowed_scopes;
