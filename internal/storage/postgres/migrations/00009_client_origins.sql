-- +goose Up
-- The browser origins registered on OAuth clients (CORS on the token,
-- revoke and userinfo endpoints). A client holds a bounded number of them;
-- they go with the client.
CREATE TABLE client_origins (
    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    origin    TEXT NOT NULL,
    PRIMARY KEY (client_id, origin)
);
CREATE INDEX client_origins_origin ON client_origins (origin);

-- +goose Down
DROP TABLE client_origins;
