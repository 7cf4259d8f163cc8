-- +goose Up
-- The revocation feed (storage.RevocationEvents): one row per change a
-- verifier holding tokens offline must learn, written in the change's own
-- transaction. SQLite's writers are serial, so seq alone orders the log;
-- AUTOINCREMENT never reuses a deleted row's seq.
CREATE TABLE revocation_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    family_id TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',
    revoked_at INTEGER NOT NULL,
    key_id TEXT NOT NULL DEFAULT '',
    provider_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX revocation_events_revoked_at ON revocation_events (revoked_at);
-- The last seq the clean-up deleted: a reader behind it missed events.
CREATE TABLE revocation_feed (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    swept_seq INTEGER NOT NULL
);
INSERT INTO revocation_feed (id, swept_seq) VALUES (1, 0);

-- +goose Down
DROP TABLE revocation_feed;
DROP TABLE revocation_events;
