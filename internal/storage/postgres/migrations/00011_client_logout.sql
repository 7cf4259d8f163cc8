-- +goose Up
-- How OAuth clients take part in logout (OpenID Connect RP-Initiated
-- Logout 1.0, Back-Channel Logout 1.0): where the browser may return after
-- a logout the client asked for (space-separated, exact match), where its
-- back-channel logout tokens go, and whether a logout also ends the
-- person's logins through it. One row per client that has any; it goes with
-- the client. (00010 is another change's: goose accepts the gap.)
CREATE TABLE client_logout (
    client_id                TEXT NOT NULL PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
    post_logout_redirect_uris TEXT NOT NULL DEFAULT '',
    backchannel_logout_uri   TEXT NOT NULL DEFAULT '',
    revokes_refresh_tokens   BOOLEAN NOT NULL DEFAULT false
);

-- +goose Down
DROP TABLE client_logout;
