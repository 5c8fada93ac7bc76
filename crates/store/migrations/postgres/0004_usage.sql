-- Usage rollups: calls, errors, latency buckets and bytes per (tenant, UTC hour, principal,
-- credential, server, kind, item), added to in batches by the meter — never a write per
-- call. Not part of the directory: writing them does not move the revision.
CREATE TABLE usage_rollups (
    tenant_id TEXT NOT NULL,
    hour BIGINT NOT NULL,
    principal TEXT NOT NULL,
    credential TEXT NOT NULL,
    server TEXT NOT NULL,
    kind TEXT NOT NULL,
    item TEXT NOT NULL,
    calls BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    latency_us BIGINT NOT NULL,
    latency_max_us BIGINT NOT NULL,
    b0 BIGINT NOT NULL,
    b1 BIGINT NOT NULL,
    b2 BIGINT NOT NULL,
    b3 BIGINT NOT NULL,
    b4 BIGINT NOT NULL,
    b5 BIGINT NOT NULL,
    b6 BIGINT NOT NULL,
    bytes_in BIGINT NOT NULL,
    bytes_out BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, hour, principal, credential, server, kind, item)
);
CREATE INDEX usage_by_credential ON usage_rollups (tenant_id, credential, hour);
-- Per-key call quotas ({"callsPerDay", "callsPerMonth"}), NULL for none.
ALTER TABLE api_keys ADD COLUMN quotas TEXT;
ALTER TABLE usage_rollups ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_rollups FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON usage_rollups
    USING (tenant_id = current_setting('switchboard.tenant', true) OR current_setting('switchboard.scope', true) = 'platform')
    WITH CHECK (tenant_id = current_setting('switchboard.tenant', true) OR current_setting('switchboard.scope', true) = 'platform');
