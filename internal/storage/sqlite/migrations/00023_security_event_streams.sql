-- +goose Up
-- Shared Signals streams (storage.SecurityEventStreams): the SSF receivers
-- an admin registered, each with its own position in revocation_events.
CREATE TABLE security_event_streams (
    id            TEXT PRIMARY KEY,
    description   TEXT NOT NULL DEFAULT '',
    delivery      TEXT NOT NULL,
    endpoint_url  TEXT NOT NULL DEFAULT '',
    -- The push Authorization header, sealed under the key-encryption key
    -- when the server has one (internal/ssf).
    push_authorization TEXT NOT NULL DEFAULT '',
    -- A poll stream's receiver (NULL for push): deleting the service
    -- account deletes the stream, so one created again under its name is
    -- not handed the old one's events.
    receiver      TEXT REFERENCES service_accounts (client_id) ON DELETE CASCADE,
    audience      TEXT NOT NULL,
    event_types   TEXT NOT NULL DEFAULT '[]',
    status        TEXT NOT NULL,
    -- The cursor of the last event delivered or passed over (Xact is
    -- always 0 on SQLite).
    position_xact INTEGER NOT NULL DEFAULT 0,
    position_seq  INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT NOT NULL DEFAULT '',
    delivered_at  INTEGER,
    lease_holder  TEXT NOT NULL DEFAULT '',
    lease_until   INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX security_event_streams_by_receiver ON security_event_streams (receiver);

-- +goose Down
DROP TABLE security_event_streams;
