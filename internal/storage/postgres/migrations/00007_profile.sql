-- +goose Up
-- Profile: what a person's ID tokens and userinfo say about them (the
-- email, profile and groups scopes). Empty is unknown; groups are
-- space-separated, as scopes are (a group name has no space).
ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN group_names TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE users DROP COLUMN group_names;
ALTER TABLE users DROP COLUMN display_name;
ALTER TABLE users DROP COLUMN email_verified;
ALTER TABLE users DROP COLUMN email;
