//! `[admin]`: the admin REST API at `/admin/v1`; `[tenant_servers]`: what tenant admins may
//! define through it.

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

/// `[tenant_servers]`: upstream servers tenant admins define for their tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantServersSection {
    /// Let a tenant's server be at a private, loopback or link-local address (off: only
    /// public addresses, by URL and by name resolution — the guard against server-side
    /// request forgery). Turn on only where tenants are trusted with the internal network.
    pub allow_private_networks: bool,
    /// Most servers one tenant may define.
    pub max_per_tenant: usize,
}

impl Default for TenantServersSection {
    fn default() -> Self {
        Self {
            allow_private_networks: false,
            max_per_tenant: 20,
        }
    }
}

impl TenantServersSection {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if !(1..=1000).contains(&self.max_per_tenant) {
            return Err(ConfigError::Invalid {
                key: "tenant_servers.max_per_tenant".into(),
                message: "must be between 1 and 1000".into(),
            });
        }
        Ok(())
    }
}
