//! `[admin]`: the admin REST API at `/admin/v1`.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::ConfigError;

/// Shortest accepted operator token.
pub const MIN_TOKEN_LEN: usize = 32;

/// `[admin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Serve the admin API.
    pub enabled: bool,
    /// A platform admin token chosen by the operator (usually `SWITCHBOARD_ADMIN_TOKEN`,
    /// 32+ characters). Without it, the first start creates one and prints it once.
    pub token: Option<SecretString>,
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            enabled: true,
            token: None,
        }
    }
}

impl AdminSection {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if let Some(token) = &self.token
            && token.expose_secret().trim().len() < MIN_TOKEN_LEN
        {
            return Err(ConfigError::Invalid {
                key: "admin.token".into(),
                message: format!(
                    "needs at least {MIN_TOKEN_LEN} characters (SWITCHBOARD_ADMIN_TOKEN); generate one with `openssl rand -hex 32`"
                ),
            });
        }
        Ok(())
    }
}
