//! Platform admin tokens: the credentials of the admin API's platform administrators.
//! Platform-level rows (no tenant); the secret is never stored, only its keyed hash.

use sqlx::Row;

use crate::tx::{Access, Scope, commit_write};
use crate::{Result, Store, StoreError, now};

const WHAT: &str = "admin token";

/// A stored platform admin token. `Debug` leaves the hash out.
#[derive(Clone)]
pub struct AdminTokenRow {
    /// The public part of `sba_<id>_<secret>`.
    pub id: String,
    /// What it is for (`bootstrap`, `ci`, a person's name).
    pub name: String,
    /// HMAC-SHA256 of the secret under the gateway's key-hashing key.
    pub hash: Vec<u8>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl std::fmt::Debug for AdminTokenRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminTokenRow")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("created_at", &self.created_at)
            .field("revoked_at", &self.revoked_at)
            .finish()
    }
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<AdminTokenRow> {
    Ok(AdminTokenRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        hash: row.try_get("hash")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

impl Store {
    /// Stores a new platform admin token (`Conflict` if the id exists).
    pub async fn create_admin_token(&self, id: &str, name: &str, hash: &[u8]) -> Result<()> {
        let mut tx = self.begin(Scope::Platform, Access::Write).await?;
        sqlx::query(
            "INSERT INTO admin_tokens (id, name, hash, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(id)
        .bind(name)
        .bind(hash.to_vec())
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::db(e, WHAT, id))?;
        commit_write(tx).await
    }

    /// One token by its public id.
    pub async fn admin_token(&self, id: &str) -> Result<Option<AdminTokenRow>> {
        let mut tx = self.begin(Scope::Platform, Access::Read).await?;
        let row = sqlx::query("SELECT * FROM admin_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every token, oldest first.
    pub async fn admin_tokens(&self) -> Result<Vec<AdminTokenRow>> {
        let mut tx = self.begin(Scope::Platform, Access::Read).await?;
        let rows = sqlx::query("SELECT * FROM admin_tokens ORDER BY created_at, id")
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter().map(from_row).collect()
    }

    /// Revokes a token now; revoking a revoked token changes nothing.
    pub async fn revoke_admin_token(&self, id: &str) -> Result<()> {
        let query = sqlx::query(
            "UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
        )
        .bind(id.to_owned())
        .bind(now());
        self.change_platform(query, WHAT, id).await
    }
}
