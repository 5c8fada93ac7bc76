//! The tenancy directory at run time: the store, the authenticator built from it, and the
//! loop that republishes the authenticator's snapshot when the store changes.
//!
//! Writes made through this process publish at once ([`Tenancy::reload`]); writes made by
//! another process or replica are picked up by polling the store's revision counter every
//! `auth.reload_interval_ms`. If the store cannot be read, the last snapshot keeps serving
//! (the hot path never needed the database) and the failure is logged and shown in
//! `/readyz`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretBox};
use switchboard_auth::api_key::HashingKey;
use switchboard_auth::{
    AuthOptions, Authenticator, GatewayIssuer, JwksCache, JwksOptions, SigningKeyMaterial,
    Snapshot, generate_signing_key,
};
use switchboard_domain::tenancy::{Directory, TenantId, TenantServer};
use switchboard_secrets::{Keyring, signing};
use switchboard_store::{SigningKeyRow, Store};
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Every tenant's own server definitions, as of one snapshot.
pub type OwnServers = Vec<(TenantId, Vec<TenantServer>)>;

type ServersListener = Box<dyn Fn(&OwnServers) + Send + Sync>;

/// The store and the authenticator that serves from its snapshot.
pub struct Tenancy {
    pub store: Store,
    pub auth: Arc<Authenticator>,
    healthy: AtomicBool,
    reloading: tokio::sync::Mutex<()>,
    /// Tenants' own servers of the published snapshot, and who hears of new ones (the data
    /// plane).
    servers: std::sync::Mutex<Arc<OwnServers>>,
    on_servers: OnceLock<ServersListener>,
}

/// Takes the tenants' own servers out of a directory (the snapshot does not need them).
fn own_servers(directory: &mut Directory) -> OwnServers {
    directory
        .tenants
        .iter_mut()
        .filter(|t| !t.servers.is_empty())
        .map(|t| (t.tenant.id.clone(), std::mem::take(&mut t.servers)))
        .collect()
}

impl Tenancy {
    /// Opens the store (running its migrations), loads the directory and the gateway's
    /// signing keys (creating the first one), and builds the authenticator.
    pub async fn open(config: &Config) -> anyhow::Result<Arc<Tenancy>> {
        let store = open_store(config).await?;
        let hashing = hashing_key(config)?;
        let mut directory = store
            .load_directory()
            .await
            .context("cannot read the tenancy directory")?;
        let servers = own_servers(&mut directory);
        let keyring = crate::secrets::keyring(config)?;
        let issuer = load_issuer(&store, &keyring, &config.public_url()).await?;
        switchboard_mcp::install_crypto_provider();
        let http = reqwest::Client::builder()
            .build()
            .context("cannot create the HTTP client for issuer keys")?;
        let auth = Authenticator::new(
            Snapshot::build(directory),
            hashing,
            JwksCache::new(http, JwksOptions::default()),
            Some(issuer),
            AuthOptions {
                base_url: config.public_url(),
                subdomain_base: config.auth.subdomain_base.clone(),
            },
        );
        Ok(Arc::new(Tenancy {
            store,
            auth: Arc::new(auth),
            healthy: AtomicBool::new(true),
            reloading: tokio::sync::Mutex::new(()),
            servers: std::sync::Mutex::new(Arc::new(servers)),
            on_servers: OnceLock::new(),
        }))
    }

    /// Calls `listener` with the tenants' own servers now and after every reload.
    pub fn on_servers(&self, listener: impl Fn(&OwnServers) + Send + Sync + 'static) {
        let current = self
            .servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        listener(&current);
        let _ = self.on_servers.set(Box::new(listener));
    }

    /// Reloads the directory if the store's revision moved; returns whether it did.
    ///
    /// Reloads run one at a time and never publish an older revision than the one serving:
    /// otherwise the poller, having read the directory just before a change, could publish
    /// its stale copy over the one a writer published (briefly undoing a revocation).
    pub async fn reload(&self) -> anyhow::Result<bool> {
        let _one_at_a_time = self.reloading.lock().await;
        let current = self.auth.snapshot().revision;
        let revision = self.store.revision().await?;
        if revision == current {
            return Ok(false);
        }
        let mut directory = self.store.load_directory().await?;
        if directory.revision <= self.auth.snapshot().revision {
            return Ok(false);
        }
        let servers = Arc::new(own_servers(&mut directory));
        tracing::info!(
            revision = directory.revision,
            tenants = directory.tenants.len(),
            "tenancy directory reloaded"
        );
        self.auth.publish(Snapshot::build(directory));
        let changed = {
            let mut current = self.servers.lock().unwrap_or_else(|p| p.into_inner());
            let changed = **current != *servers;
            *current = servers.clone();
            changed
        };
        if changed && let Some(listener) = self.on_servers.get() {
            listener(&servers);
        }
        Ok(true)
    }

    /// Whether the last read of the store succeeded.
    pub fn store_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Polls the store until `stop`.
    pub fn spawn_reloader(self: &Arc<Self>, every: Duration, stop: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.cancelled() => return,
                }
                match this.reload().await {
                    Ok(_) => {
                        if !this.healthy.swap(true, Ordering::Relaxed) {
                            tracing::info!("tenancy store reachable again");
                        }
                    }
                    Err(err) => {
                        if this.healthy.swap(false, Ordering::Relaxed) {
                            tracing::error!(%err, "cannot read the tenancy store; serving the last snapshot");
                        }
                    }
                }
            }
        });
    }
}

/// Opens the configured store; for the embedded default, creates the data folder first.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.database_url();
    if config.database.url.is_none() {
        std::fs::create_dir_all(&config.server.data_dir).with_context(|| {
            format!(
                "cannot create the data folder {:?} (server.data_dir)",
                config.server.data_dir
            )
        })?;
    }
    Store::connect(url.expose_secret())
        .await
        .context("cannot open the database (database.url)")
}

/// The key-hashing secret: configured, or generated once into the data folder.
pub fn hashing_key(config: &Config) -> anyhow::Result<HashingKey> {
    let bytes = match &config.auth.key_hashing_secret {
        Some(secret) => secret.expose_secret().as_bytes().to_vec(),
        None => {
            let path = Path::new(&config.server.data_dir).join("key-hashing.secret");
            read_or_create_secret(&path)?
        }
    };
    HashingKey::new(&SecretBox::from(bytes)).map_err(anyhow::Error::msg)
}

fn read_or_create_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(existing) = std::fs::read(path) {
        return Ok(existing);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let secret = HashingKey::generate_secret();
    write_private(path, &secret)?;
    tracing::info!(path = %path.display(), "generated the key-hashing secret; replicas must share it (auth.key_hashing_secret)");
    Ok(secret)
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Seals every signing key stored in the clear (by an earlier version) or under an older
/// master key; returns how many were written again.
pub async fn reseal_signing_keys(store: &Store, keyring: &Keyring) -> anyhow::Result<usize> {
    let mut resealed = 0;
    for row in store.signing_keys().await? {
        if !signing::needs_sealing(keyring, &row.private_key) {
            continue;
        }
        let pkcs8 = signing::open_signing_key(keyring, &row.kid, &row.private_key)?;
        let sealed = signing::seal_signing_key(keyring, &row.kid, &pkcs8)
            .map_err(|e| anyhow::anyhow!("cannot seal signing key {}: {e}", row.kid))?;
        store.reseal_signing_key(&row.kid, &sealed).await?;
        tracing::info!(kid = %row.kid, master = %keyring.primary().id(), "sealed the token signing key under the master key");
        resealed += 1;
    }
    Ok(resealed)
}

/// The gateway's issuer with its stored keys (sealed under the master key; any stored in the
/// clear are sealed now); the first start creates a key.
pub async fn load_issuer(
    store: &Store,
    keyring: &Keyring,
    public_url: &str,
) -> anyhow::Result<GatewayIssuer> {
    reseal_signing_keys(store, keyring).await?;
    let mut rows = store.signing_keys().await?;
    if !rows.iter().any(|r| r.retired_at.is_none()) {
        let (kid, pkcs8, public_jwk) = generate_signing_key().map_err(anyhow::Error::msg)?;
        let sealed = signing::seal_signing_key(keyring, &kid, &pkcs8)
            .map_err(|e| anyhow::anyhow!("cannot seal the new signing key: {e}"))?;
        let row = SigningKeyRow {
            kid,
            algorithm: "ES256".into(),
            private_key: sealed,
            public_jwk,
            created_at: switchboard_auth::issuer::now(),
            retired_at: None,
        };
        match store.add_signing_key(&row).await {
            Ok(()) => tracing::info!(kid = %row.kid, "created the gateway's token signing key"),
            // Another replica created one at the same moment: use what is stored.
            Err(err) => tracing::debug!(%err, "signing key not added"),
        }
        rows = store.signing_keys().await?;
    }
    rows.sort_by_key(|r| r.created_at);
    let material: Vec<SigningKeyMaterial> = rows
        .into_iter()
        .map(|r| {
            let pkcs8 = signing::open_signing_key(keyring, &r.kid, &r.private_key)?;
            Ok(SigningKeyMaterial {
                kid: r.kid,
                pkcs8: pkcs8.to_vec(),
                retired: r.retired_at.is_some(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    GatewayIssuer::new(public_url.to_owned(), &material).map_err(anyhow::Error::msg)
}
