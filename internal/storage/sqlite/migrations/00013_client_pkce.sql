-- +goose Up
-- Whether a confidential client may sign people in without PKCE; 0 (PKCE
-- required) for every client registered before, as they were treated.
-- (00012 is another change's: goose accepts the gap.)
ALTER TABLE clients ADD COLUMN pkce_optional INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE clients DROP COLUMN pkce_optional;
