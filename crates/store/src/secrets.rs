//! Encrypted secrets and the tenants' wrapped data keys. The store only ever sees
//! ciphertext; encryption is the `switchboard-secrets` crate's. Not part of the directory:
//! writes do not move the revision.

use sqlx::Row;
use switchboard_domain::tenancy::TenantId;

use crate::tx::{Access, Scope};
use crate::{Result, Store, StoreError, TenantStore, now};

/// A tenant's data key as stored: wrapped by the master key `master_id`.
#[derive(Clone)]
pub struct WrappedKey {
    pub tenant: TenantId,
    pub master_id: String,
    pub wrapped: Vec<u8>,
}

/// What is known about a secret without decrypting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMeta {
    /// Empty for the tenant's own secret, else the owning user's email.
    pub owner: String,
    pub name: String,
    pub description: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Increases with every write.
    pub version: i64,
}

fn meta(row: &sqlx::any::AnyRow) -> Result<SecretMeta> {
    Ok(SecretMeta {
        owner: row.try_get("owner")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

impl Store {
    /// Every tenant's wrapped data key (for master-key rotation).
    pub async fn wrapped_keys(&self) -> Result<Vec<WrappedKey>> {
        let mut tx = self.begin(Scope::Platform, Access::Read).await?;
        let rows =
            sqlx::query("SELECT tenant_id, master_id, wrapped FROM tenant_keys ORDER BY tenant_id")
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                Ok(WrappedKey {
                    tenant: TenantId::new(r.try_get::<String, _>("tenant_id")?)
                        .map_err(|e| StoreError::corrupt("data key", e))?,
                    master_id: r.try_get("master_id")?,
                    wrapped: r.try_get("wrapped")?,
                })
            })
            .collect()
    }

    /// Replaces a data key's wrapping if it is still wrapped by `old_master`; returns
    /// whether it was (another process may have re-wrapped it first).
    pub async fn rewrap_key(&self, key: &WrappedKey, old_master: &str) -> Result<bool> {
        let mut tx = self.begin(Scope::Platform, Access::Write).await?;
        let n = sqlx::query(
            "UPDATE tenant_keys SET master_id = $1, wrapped = $2, rotated_at = $3 \
             WHERE tenant_id = $4 AND master_id = $5",
        )
        .bind(&key.master_id)
        .bind(key.wrapped.clone())
        .bind(now())
        .bind(key.tenant.as_str())
        .bind(old_master)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }
}

impl TenantStore<'_> {
    /// The tenant's wrapped data key, if it has one yet.
    pub async fn data_key(&self) -> Result<Option<WrappedKey>> {
        let mut tx = self.read().await?;
        let row = sqlx::query("SELECT master_id, wrapped FROM tenant_keys WHERE tenant_id = $1")
            .bind(self.id())
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.map(|r| {
            Ok(WrappedKey {
                tenant: self.tenant_id().clone(),
                master_id: r.try_get("master_id")?,
                wrapped: r.try_get("wrapped")?,
            })
        })
        .transpose()
    }

    /// Stores the tenant's data key unless it has one already (another replica won the
    /// race); returns the one that stands.
    pub async fn create_data_key(&self, master_id: &str, wrapped: &[u8]) -> Result<WrappedKey> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO tenant_keys (tenant_id, master_id, wrapped, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(self.id())
        .bind(master_id)
        .bind(wrapped.to_vec())
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.write_error(e, "data key", self.id()))?;
        tx.commit().await?;
        self.data_key().await?.ok_or_else(|| StoreError::NotFound {
            what: "tenant",
            id: self.id().to_owned(),
        })
    }

    /// Creates or replaces a secret's ciphertext; returns its metadata.
    pub async fn put_secret(
        &self,
        owner: &str,
        name: &str,
        description: &str,
        ciphertext: &[u8],
    ) -> Result<SecretMeta> {
        let at = now();
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO secrets (tenant_id, owner, name, description, ciphertext, created_at, updated_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, 1) \
             ON CONFLICT (tenant_id, owner, name) DO UPDATE SET description = excluded.description, \
             ciphertext = excluded.ciphertext, updated_at = excluded.updated_at, version = secrets.version + 1",
        )
        .bind(self.id())
        .bind(owner)
        .bind(name)
        .bind(description)
        .bind(ciphertext.to_vec())
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.write_error(e, "secret", name))?;
        let row = sqlx::query(
            "SELECT owner, name, description, created_at, updated_at, version FROM secrets \
             WHERE tenant_id = $1 AND owner = $2 AND name = $3",
        )
        .bind(self.id())
        .bind(owner)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        meta(&row)
    }

    /// A secret's ciphertext.
    pub async fn secret_ciphertext(&self, owner: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let mut tx = self.read().await?;
        let value: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT ciphertext FROM secrets WHERE tenant_id = $1 AND owner = $2 AND name = $3",
        )
        .bind(self.id())
        .bind(owner)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(value)
    }

    /// Secrets' metadata (never values): of one owner (`""` for the tenant's own), by name.
    pub async fn secrets(&self, owner: &str) -> Result<Vec<SecretMeta>> {
        let mut tx = self.read().await?;
        let rows = sqlx::query(
            "SELECT owner, name, description, created_at, updated_at, version FROM secrets \
             WHERE tenant_id = $1 AND owner = $2 ORDER BY name",
        )
        .bind(self.id())
        .bind(owner)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(meta).collect()
    }

    /// Deletes a secret.
    pub async fn delete_secret(&self, owner: &str, name: &str) -> Result<()> {
        let mut tx = self.write().await?;
        let n =
            sqlx::query("DELETE FROM secrets WHERE tenant_id = $1 AND owner = $2 AND name = $3")
                .bind(self.id())
                .bind(owner)
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "secret",
                id: name.to_owned(),
            });
        }
        tx.commit().await?;
        Ok(())
    }
}
