//! The secrets vault in this process: its master keys (configured, or a `master.key`
//! created in the data folder at first start, like the key-hashing secret), the source of
//! per-tenant upstream credentials, and `switchboard secrets rotate-key`.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use futures::future::BoxFuture;
use secrecy::ExposeSecret;
use switchboard_domain::tenancy::{TenantId, UserId};
use switchboard_mcp::per_tenant::{Resolved, SecretLookupError, SecretSource};
use switchboard_secrets::{Key, Keyring, ResolveError, Vault, parse_master_key};
use switchboard_store::Store;

use crate::config::Config;
use crate::tenancy::{open_store, write_private};

fn read_key(path: &str) -> anyhow::Result<Key> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the master key file {path}"))?;
    parse_master_key(&text)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("master key file {path}"))
}

/// The primary master key: `secrets.master_key`, else `secrets.master_key_file`, else the
/// data folder's `master.key` (created when missing).
fn primary(config: &Config) -> anyhow::Result<Key> {
    if let Some(text) = &config.secrets.master_key {
        return parse_master_key(text.expose_secret())
            .map_err(anyhow::Error::msg)
            .context("secrets.master_key (SWITCHBOARD_MASTER_KEY)");
    }
    if let Some(path) = &config.secrets.master_key_file {
        return read_key(path);
    }
    let path = Path::new(&config.server.data_dir).join("master.key");
    if path.exists() {
        return read_key(&path.display().to_string());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let key = Key::generate().map_err(anyhow::Error::msg)?;
    let hex: String = key.bytes().iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, hex.as_bytes())?;
    tracing::info!(path = %path.display(), id = %key.id(), "generated the secrets master key; back it up with the database, and give replicas the same one (secrets.master_key_file)");
    Ok(key)
}

/// The keyring of this configuration.
pub fn keyring(config: &Config) -> anyhow::Result<Keyring> {
    let previous = config
        .secrets
        .previous_master_key_files
        .iter()
        .map(|path| read_key(path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Keyring::new(primary(config)?, previous))
}

/// The vault over `store`.
pub fn vault(config: &Config, store: &Store) -> anyhow::Result<Arc<Vault>> {
    Ok(Arc::new(Vault::new(store.clone(), keyring(config)?)))
}

/// Upstream credentials from the vault: the calling user's secret, else the tenant's.
pub struct VaultSource(pub Arc<Vault>);

impl SecretSource for VaultSource {
    fn resolve<'a>(
        &'a self,
        tenant: &'a TenantId,
        user: Option<&'a UserId>,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Resolved, SecretLookupError>> {
        Box::pin(async move {
            match self.0.resolve_all(tenant, user, names).await {
                Ok(r) => Ok(Resolved {
                    values: r.values,
                    per_user: r.per_user,
                    fingerprint: r.fingerprint,
                }),
                Err(ResolveError::Missing(name)) => Err(SecretLookupError::Missing(name)),
                Err(ResolveError::Vault(err)) => {
                    tracing::error!(%tenant, error = %err, "cannot read secrets for an upstream connection");
                    Err(SecretLookupError::Failed(
                        "the secret store failed; the gateway log says why".into(),
                    ))
                }
            }
        })
    }
}

/// `switchboard secrets rotate-key`: re-wraps every tenant's data key under the primary
/// master key (the previous keys must still be configured to unwrap them).
pub async fn rotate_key(config: &Config) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let vault = vault(config, &store)?;
    let report = vault.rotate().await.context("rotation stopped")?;
    let ring = keyring(config)?;
    let signing = crate::tenancy::reseal_signing_keys(&store, &ring)
        .await
        .context("re-sealing the token signing keys stopped")?;
    println!(
        "re-wrapped {} data key(s) under master key {}; {} already current; re-sealed {signing} token signing key(s)",
        report.rewrapped,
        ring.primary().id(),
        report.already_current
    );
    Ok(())
}
