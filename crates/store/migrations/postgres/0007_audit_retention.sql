-- Audit retention: a chain may drop its oldest records, and only those. The anchor names the
-- last record removed (its seq and hash); verification starts from it instead of the
-- genesis, and a record at or before it is the only kind a delete may touch. The anchor
-- only moves forward and is never deleted, so the append-only guarantee stays: removing a
-- record beyond the anchor is refused, and moving the anchor shows in `audit verify`.
CREATE TABLE audit_anchors (
    tenant_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    pruned_at_ms BIGINT NOT NULL
);
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.seq <= COALESCE(
        (SELECT seq FROM audit_anchors WHERE tenant_id = OLD.tenant_id), 0) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit records are append-only; only records up to the retention anchor may be removed';
END $$;
CREATE FUNCTION audit_anchor_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit anchors are never deleted';
    END IF;
    IF NEW.seq < OLD.seq OR NEW.tenant_id <> OLD.tenant_id THEN
        RAISE EXCEPTION 'an audit anchor only moves forward';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_anchors_forward BEFORE UPDATE OR DELETE ON audit_anchors
    FOR EACH ROW EXECUTE FUNCTION audit_anchor_forward();
ALTER TABLE audit_anchors ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_anchors FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_anchors
    USING (tenant_id = current_setting('switchboard.tenant', true) OR current_setting('switchboard.scope', true) = 'platform')
    WITH CHECK (tenant_id = current_setting('switchboard.tenant', true) OR current_setting('switchboard.scope', true) = 'platform');
