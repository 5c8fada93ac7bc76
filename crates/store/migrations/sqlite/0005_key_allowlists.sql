-- Per-key client address allowlists (a JSON array of addresses or CIDR ranges; NULL for none).
ALTER TABLE api_keys ADD COLUMN ip_allowlist TEXT;
