-- Platform admin tokens (`sba_<id>_<secret>`): the credentials of the admin API's platform
-- administrators. Platform-level, owned by no tenant; only a keyed hash of the secret is kept.
CREATE TABLE admin_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
