-- +goose Up
-- The revocation feed (storage.RevocationEvents): one row per change a
-- verifier holding tokens offline must learn, written in the change's own
-- transaction. Sequence values are taken in one order and committed in
-- another, so the log is ordered by (xact, seq): xact is the writing
-- transaction's id, and a reader delivers a row only once its xact is below
-- its snapshot's xmin, when every transaction that could still commit an
-- earlier row has ended.
CREATE TABLE revocation_events (
    xact BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    seq BIGSERIAL NOT NULL,
    kind TEXT NOT NULL,
    family_id TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',
    revoked_at BIGINT NOT NULL,
    key_id TEXT NOT NULL DEFAULT '',
    provider_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (xact, seq)
);
CREATE INDEX revocation_events_revoked_at ON revocation_events (revoked_at);
-- The last position the clean-up deleted: a reader behind it missed events.
CREATE TABLE revocation_feed (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    swept_xact BIGINT NOT NULL,
    swept_seq BIGINT NOT NULL
);
INSERT INTO revocation_feed (id, swept_xact, swept_seq) VALUES (1, 0, 0);

-- +goose Down
DROP TABLE revocation_feed;
DROP TABLE revocation_events;
