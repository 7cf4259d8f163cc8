-- +goose Up
-- Workload identity federation: the external issuers an admin trusts, each
-- for one service account, and the assertions single-use rules have seen.
-- (00013 is another change's: goose accepts the gap.)
CREATE TABLE federation_rules (
    name                   TEXT PRIMARY KEY,
    issuer                 TEXT NOT NULL,
    audience               TEXT NOT NULL,
    -- Deleting the service account deletes its rules: one created again
    -- under that name is not trusted by a rule made for the old one.
    service_account        TEXT NOT NULL REFERENCES service_accounts (client_id) ON DELETE CASCADE,
    claims                 TEXT NOT NULL,
    jwks                   TEXT NOT NULL DEFAULT '',
    jwks_uri               TEXT NOT NULL DEFAULT '',
    single_use             BOOLEAN NOT NULL DEFAULT FALSE,
    max_assertion_lifetime BIGINT NOT NULL DEFAULT 0,
    created_at             BIGINT NOT NULL
);

CREATE INDEX federation_rules_by_service_account ON federation_rules (service_account);

-- The primary key is what makes a replay lose: of two replicas recording
-- one jti, one insert conflicts.
CREATE TABLE federated_assertions (
    issuer     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX federated_assertions_by_expiry ON federated_assertions (expires_at);

-- +goose Down
DROP TABLE federated_assertions;
DROP TABLE federation_rules;
