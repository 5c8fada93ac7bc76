-- Secrets at rest (envelope encryption): each tenant's data key, wrapped by a master key
-- (`master_id` names which), and secrets encrypted under their tenant's data key with
-- the tenant, owner and name bound as associated data. Values never leave the gateway.
CREATE TABLE tenant_keys (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    master_id TEXT NOT NULL,
    wrapped BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    rotated_at BIGINT
);
CREATE TABLE secrets (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    ciphertext BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, owner, name)
);
DO $$
DECLARE t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenant_keys', 'secrets']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (tenant_id = current_setting(''switchboard.tenant'', true) OR current_setting(''switchboard.scope'', true) = ''platform'') WITH CHECK (tenant_id = current_setting(''switchboard.tenant'', true) OR current_setting(''switchboard.scope'', true) = ''platform'')',
            t);
    END LOOP;
END $$;
