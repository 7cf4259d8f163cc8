-- +goose Up
-- Whether a confidential client may sign people in without PKCE; false (PKCE
-- required) for every client registered before, as they were treated.
-- (00007 is another change's: goose accepts the gap.)
ALTER TABLE clients ADD COLUMN pkce_optional BOOLEAN NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE clients DROP COLUMN pkce_optional;
