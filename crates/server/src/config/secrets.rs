//! `[secrets]`: the master key of the secrets vault.

use secrecy::SecretString;
use serde::Deserialize;

/// `[secrets]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsSection {
    /// The master key itself (64 hex digits or base64 of 32 bytes), usually from
    /// `SWITCHBOARD_MASTER_KEY`. Takes precedence over `master_key_file`.
    pub master_key: Option<SecretString>,
    /// A file holding the master key. Default: `{server.data_dir}/master.key`, created at
    /// first start.
    pub master_key_file: Option<String>,
    /// Files of earlier master keys: they only unwrap data keys (during a rotation).
    pub previous_master_key_files: Vec<String>,
}
