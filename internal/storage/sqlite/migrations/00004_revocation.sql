-- +goose Up
ALTER TABLE refresh_tokens ADD COLUMN family_expires_at INTEGER;
ALTER TABLE refresh_tokens ADD COLUMN sealed_successor BLOB;
UPDATE refresh_tokens SET family_expires_at = expires_at;

CREATE TABLE revoked_families (
    family_id  TEXT PRIMARY KEY,
    revoked_at INTEGER NOT NULL
);
CREATE INDEX revoked_families_revoked_at ON revoked_families (revoked_at);

CREATE TABLE revoked_subjects (
    subject    TEXT PRIMARY KEY,
    revoked_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE revoked_subjects;
DROP TABLE revoked_families;
ALTER TABLE refresh_tokens DROP COLUMN sealed_successor;
ALTER TABLE refresh_tokens DROP COLUMN family_expires_at;
