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
DROP TRIGGER audit_events_no_delete;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
WHEN OLD.seq > COALESCE((SELECT seq FROM audit_anchors WHERE tenant_id = OLD.tenant_id), 0)
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only; only records up to the retention anchor may be removed');
END;
CREATE TRIGGER audit_anchors_forward BEFORE UPDATE ON audit_anchors
WHEN NEW.seq < OLD.seq OR NEW.tenant_id <> OLD.tenant_id
BEGIN
    SELECT RAISE(ABORT, 'an audit anchor only moves forward');
END;
CREATE TRIGGER audit_anchors_no_delete BEFORE DELETE ON audit_anchors
BEGIN
    SELECT RAISE(ABORT, 'audit anchors are never deleted');
END;
