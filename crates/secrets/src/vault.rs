//! The vault: tenants' and users' secrets, encrypted at rest under a data key per tenant,
//! itself wrapped by the master key. Values are returned only to the gateway itself (to
//! inject into upstream calls), never through the admin API or a log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use secrecy::SecretString;
use switchboard_domain::tenancy::{TenantId, UserId};
use switchboard_store::{SecretMeta, Store, StoreError, WrappedKey};

use crate::envelope::{EnvelopeError, Key, data_key_aad, secret_aad};
use crate::keyring::Keyring;

/// Longest secret value accepted (64 KiB).
pub const MAX_VALUE: usize = 64 * 1024;

/// A vault failure.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "secret name {0:?} is not valid: use 1 to 64 letters, digits and '_' (it is referenced as {{{{secret.NAME}}}})"
    )]
    BadName(String),
    #[error("a secret value must be 1 to {MAX_VALUE} bytes of text")]
    BadValue,
    #[error(
        "tenant {tenant}'s data key is wrapped by master key {master}, which is not configured; add it to secrets.previous_master_key_files"
    )]
    UnknownMaster { tenant: TenantId, master: String },
    #[error("tenant {tenant}'s {what} cannot be decrypted: {source}")]
    Crypto {
        tenant: TenantId,
        what: &'static str,
        source: EnvelopeError,
    },
}

/// Checks a secret's name: `[A-Za-z0-9_]{1,64}`.
pub fn check_name(name: &str) -> Result<(), VaultError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(VaultError::BadName(name.chars().take(80).collect()))
    }
}

/// The values an upstream connection is made with (see [`Vault::resolve_all`]).
pub struct Resolution {
    /// By name.
    pub values: std::collections::BTreeMap<String, SecretString>,
    /// True when at least one value is the user's own.
    pub per_user: bool,
    /// Changes when any value used changes: a hash of each one's owner, name and version.
    pub fingerprint: u64,
}

/// Why [`Vault::resolve_all`] found no complete set of values.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Neither the user nor the tenant has this secret.
    #[error("secret {0:?} is not set")]
    Missing(String),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// Result of re-wrapping data keys under the primary master key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    pub rewrapped: usize,
    pub already_current: usize,
}

/// An unwrapped data key and the wrapped form it came from.
type CachedKey = (Vec<u8>, Arc<Key>);

/// Secrets of every tenant.
pub struct Vault {
    store: Store,
    keyring: Keyring,
    /// Unwrapped data keys (wiped when dropped) with the wrapped form they came from, so a
    /// read costs one small query and one decryption. The wrapped form is compared on every
    /// use: a tenant deleted and created again has a new data key, and a rotation changes the
    /// wrapping — either way the cached key is replaced, never used for the wrong data.
    keys: Mutex<HashMap<TenantId, CachedKey>>,
}

fn owner_of(user: Option<&UserId>) -> &str {
    user.map_or("", UserId::as_str)
}

impl Vault {
    pub fn new(store: Store, keyring: Keyring) -> Self {
        Self {
            store,
            keyring,
            keys: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, stored: &WrappedKey) -> Option<Arc<Key>> {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&stored.tenant)
            .filter(|(wrapped, _)| *wrapped == stored.wrapped)
            .map(|(_, key)| key.clone())
    }

    fn unwrap_key(&self, stored: &WrappedKey) -> Result<Key, VaultError> {
        let master =
            self.keyring
                .find(&stored.master_id)
                .ok_or_else(|| VaultError::UnknownMaster {
                    tenant: stored.tenant.clone(),
                    master: stored.master_id.clone(),
                })?;
        let crypto = |source| VaultError::Crypto {
            tenant: stored.tenant.clone(),
            what: "data key",
            source,
        };
        let bytes = master
            .open(&data_key_aad(stored.tenant.as_str()), &stored.wrapped)
            .map_err(crypto)?;
        Key::from_bytes(&bytes).map_err(crypto)
    }

    /// The tenant's data key, created (and wrapped by the primary master key) on first use.
    async fn data_key(&self, tenant: &TenantId) -> Result<Arc<Key>, VaultError> {
        let scoped = self.store.tenant(tenant);
        let stored = match scoped.data_key().await? {
            Some(stored) => stored,
            None => {
                let crypto = |source| VaultError::Crypto {
                    tenant: tenant.clone(),
                    what: "data key",
                    source,
                };
                let fresh = Key::generate().map_err(crypto)?;
                let primary = self.keyring.primary();
                let wrapped = primary
                    .seal(&data_key_aad(tenant.as_str()), fresh.bytes())
                    .map_err(crypto)?;
                // Another replica may have created one first: the stored one stands.
                scoped.create_data_key(&primary.id(), &wrapped).await?
            }
        };
        if let Some(key) = self.cached(&stored) {
            return Ok(key);
        }
        let key = Arc::new(self.unwrap_key(&stored)?);
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.clone(), (stored.wrapped.clone(), key.clone()));
        Ok(key)
    }

    /// Stores a secret of the tenant (`user: None`) or of one of its users.
    pub async fn put(
        &self,
        tenant: &TenantId,
        user: Option<&UserId>,
        name: &str,
        description: &str,
        value: &SecretString,
    ) -> Result<SecretMeta, VaultError> {
        use secrecy::ExposeSecret;
        check_name(name)?;
        let plain = value.expose_secret().as_bytes();
        if plain.is_empty() || plain.len() > MAX_VALUE {
            return Err(VaultError::BadValue);
        }
        let owner = owner_of(user);
        let key = self.data_key(tenant).await?;
        let sealed = key
            .seal(&secret_aad(tenant.as_str(), owner, name), plain)
            .map_err(|source| VaultError::Crypto {
                tenant: tenant.clone(),
                what: "secret",
                source,
            })?;
        Ok(self
            .store
            .tenant(tenant)
            .put_secret(owner, name, description, &sealed)
            .await?)
    }

    /// A secret's value, for the gateway's own use (upstream credentials).
    pub async fn get(
        &self,
        tenant: &TenantId,
        user: Option<&UserId>,
        name: &str,
    ) -> Result<Option<SecretString>, VaultError> {
        check_name(name)?;
        let owner = owner_of(user);
        let Some(sealed) = self
            .store
            .tenant(tenant)
            .secret_ciphertext(owner, name)
            .await?
        else {
            return Ok(None);
        };
        let key = self.data_key(tenant).await?;
        let plain = key
            .open(&secret_aad(tenant.as_str(), owner, name), &sealed)
            .map_err(|source| VaultError::Crypto {
                tenant: tenant.clone(),
                what: "secret",
                source,
            })?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| VaultError::BadValue)?;
        Ok(Some(SecretString::from(text)))
    }

    /// The user's secret if they set one, else the tenant's.
    pub async fn resolve(
        &self,
        tenant: &TenantId,
        user: Option<&UserId>,
        name: &str,
    ) -> Result<Option<SecretString>, VaultError> {
        if let Some(user) = user
            && let Some(value) = self.get(tenant, Some(user), name).await?
        {
            return Ok(Some(value));
        }
        self.get(tenant, None, name).await
    }

    /// The values of `names` for `user` in `tenant`, each the user's own when they set one,
    /// else the tenant's; the first name set by neither is an error. Costs two metadata
    /// queries and one read and decryption per name.
    pub async fn resolve_all(
        &self,
        tenant: &TenantId,
        user: Option<&UserId>,
        names: &[String],
    ) -> Result<Resolution, ResolveError> {
        use std::hash::{Hash, Hasher};
        let tenants = self.list(tenant, None).await?;
        let users = match user {
            Some(user) => self.list(tenant, Some(user)).await?,
            None => Vec::new(),
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let mut values = std::collections::BTreeMap::new();
        let mut per_user = false;
        for name in names {
            let (owner, meta) = if let Some(meta) = users.iter().find(|m| &m.name == name) {
                (user, meta)
            } else if let Some(meta) = tenants.iter().find(|m| &m.name == name) {
                (None, meta)
            } else {
                return Err(ResolveError::Missing(name.clone()));
            };
            per_user |= owner.is_some();
            (&meta.owner, &meta.name, meta.version).hash(&mut hasher);
            // Deleted between the two reads: as if never set.
            let value = self
                .get(tenant, owner, name)
                .await?
                .ok_or_else(|| ResolveError::Missing(name.clone()))?;
            values.insert(name.clone(), value);
        }
        Ok(Resolution {
            values,
            per_user,
            fingerprint: hasher.finish(),
        })
    }

    /// Names and metadata of the tenant's (or a user's) secrets.
    pub async fn list(
        &self,
        tenant: &TenantId,
        user: Option<&UserId>,
    ) -> Result<Vec<SecretMeta>, VaultError> {
        Ok(self.store.tenant(tenant).secrets(owner_of(user)).await?)
    }

    /// Deletes a secret.
    pub async fn delete(
        &self,
        tenant: &TenantId,
        user: Option<&UserId>,
        name: &str,
    ) -> Result<(), VaultError> {
        check_name(name)?;
        Ok(self
            .store
            .tenant(tenant)
            .delete_secret(owner_of(user), name)
            .await?)
    }

    /// Re-wraps every data key not yet under the primary master key. Safe to run while the
    /// gateway serves, and again (it skips current keys).
    pub async fn rotate(&self) -> Result<Rotation, VaultError> {
        let primary = self.keyring.primary();
        let primary_id = primary.id();
        let mut report = Rotation::default();
        for stored in self.store.wrapped_keys().await? {
            if stored.master_id == primary_id {
                report.already_current += 1;
                continue;
            }
            let key = self.unwrap_key(&stored)?;
            let wrapped = primary
                .seal(&data_key_aad(stored.tenant.as_str()), key.bytes())
                .map_err(|source| VaultError::Crypto {
                    tenant: stored.tenant.clone(),
                    what: "data key",
                    source,
                })?;
            let next = WrappedKey {
                tenant: stored.tenant.clone(),
                master_id: primary_id.clone(),
                wrapped,
            };
            if self.store.rewrap_key(&next, &stored.master_id).await? {
                report.rewrapped += 1;
            } else {
                report.already_current += 1;
            }
        }
        Ok(report)
    }
}
