-- Upstream servers a tenant defines for itself (HTTP only; checked by the domain when written
-- and when loaded). `definition` is the JSON of the definition as written; `version` is
-- the admin API's ETag; `by_platform` (0/1) marks one a platform administrator wrote, which
-- may run a command and which only platform administrators change.
CREATE TABLE tenant_servers (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    definition TEXT NOT NULL,
    by_platform BIGINT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
ALTER TABLE tenant_servers ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_servers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_servers
    USING (tenant_id = current_setting('switchboard.tenant', true) OR current_setting('switchboard.scope', true) = 'platform')
    WITH CHECK (tenant_id = current_setting('switchboard.tenant', true) OR current_setting('switchboard.scope', true) = 'platform');
