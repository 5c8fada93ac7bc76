-- Secrets at rest (envelope encryption): each tenant's data key, wrapped by a master key
-- (`master_id` names which), and secrets encrypted under their tenant's data key with
-- the tenant, owner and name bound as associated data. Values never leave the gateway.
CREATE TABLE tenant_keys (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    master_id TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    rotated_at BIGINT
);
CREATE TABLE secrets (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    ciphertext BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, owner, name)
);
