-- +goose Up
-- Signing keys come in one family per algorithm (the configured one, and
-- RS256 for ID tokens beside it), each with at most one active and one next
-- key, which the unique indexes below hold against replicas starting at once.
-- Before them, such replicas could each store an active key (the newest
-- signed): all but the newest active and next key of each algorithm are
-- retired now, still published until the tokens they signed expire.
-- (00010 and 00011 are other changes': goose accepts the gap.)
UPDATE signing_keys SET state = 'retired', retired_at = (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint
WHERE state IN ('active', 'next') AND EXISTS (
    SELECT 1 FROM signing_keys AS newer
    WHERE newer.algorithm = signing_keys.algorithm AND newer.state = signing_keys.state
      AND (newer.created_at > signing_keys.created_at OR (newer.created_at = signing_keys.created_at AND newer.id > signing_keys.id)));
CREATE UNIQUE INDEX signing_keys_one_active_per_algorithm ON signing_keys (algorithm) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next_per_algorithm ON signing_keys (algorithm) WHERE state = 'next';

-- The algorithm a client's ID tokens are signed with (OIDC Dynamic Client
-- Registration §2 id_token_signed_response_alg); '' is the server's
-- configured algorithm, as every client registered before was served.
ALTER TABLE clients ADD COLUMN id_token_signed_response_alg TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE clients DROP COLUMN id_token_signed_response_alg;
DROP INDEX signing_keys_one_next_per_algorithm;
DROP INDEX signing_keys_one_active_per_algorithm;
