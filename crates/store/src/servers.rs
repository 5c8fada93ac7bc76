//! Upstream servers a tenant defines for itself. The definition is stored as written (JSON);
//! the caller checks it with the domain before writing, and the data plane checks it again
//! when it loads the directory. Writes move the revision: a new definition takes effect at
//! the next snapshot.

use sqlx::Row;
use sqlx::any::AnyRow;
use switchboard_domain::RawUpstream;
use switchboard_domain::tenancy::TenantServer;

use crate::tx::{Tx, commit_write};
use crate::{Result, StoreError, TenantStore, now};

const WHAT: &str = "server";

pub(crate) fn server_from_row(row: &AnyRow) -> Result<TenantServer> {
    let definition: RawUpstream = serde_json::from_str(&row.try_get::<String, _>("definition")?)
        .map_err(|e| StoreError::corrupt("server definition", e))?;
    Ok(TenantServer {
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        definition,
        by_platform: row.try_get::<i64, _>("by_platform")? != 0,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Refuses a change by anyone but a platform administrator to what one defined.
fn refuse_platforms(stored: Option<&TenantServer>, platform: bool) -> Result<()> {
    if stored.is_some_and(|s| s.by_platform) && !platform {
        return Err(StoreError::Refused(
            "this server was defined by a platform administrator; ask them to change it".into(),
        ));
    }
    Ok(())
}

/// What a write of a tenant's server changed.
#[derive(Debug, Clone)]
pub struct ServerWrite {
    /// The definition before (none: created).
    pub before: Option<TenantServer>,
    pub after: TenantServer,
}

impl TenantStore<'_> {
    /// The tenant's own servers, by name.
    pub async fn servers(&self) -> Result<Vec<TenantServer>> {
        self.rows("SELECT * FROM tenant_servers WHERE tenant_id = $1 ORDER BY name")
            .await?
            .iter()
            .map(server_from_row)
            .collect()
    }

    /// One of the tenant's servers.
    pub async fn server(&self, name: &str) -> Result<Option<TenantServer>> {
        let mut tx = self.read().await?;
        let server = self.read_server(&mut tx, name).await?;
        tx.commit().await?;
        Ok(server)
    }

    /// One of the tenant's servers, read inside `tx`.
    async fn read_server(&self, tx: &mut Tx, name: &str) -> Result<Option<TenantServer>> {
        sqlx::query("SELECT * FROM tenant_servers WHERE tenant_id = $1 AND name = $2")
            .bind(self.id())
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?
            .as_ref()
            .map(server_from_row)
            .transpose()
    }

    /// Creates or replaces a server (`by_platform`: written by a platform administrator;
    /// otherwise one a platform administrator wrote is refused). `expected` (an `If-Match`)
    /// must be the stored version; a new server is refused once the tenant has `max` of them.
    /// The stored row is changed only if it is still the one read here (its version), so
    /// concurrent writers cannot overwrite each other unseen.
    pub async fn put_server(
        &self,
        name: &str,
        description: &str,
        definition: &RawUpstream,
        by_platform: bool,
        expected: Option<i64>,
        max: usize,
    ) -> Result<ServerWrite> {
        let json = serde_json::to_string(definition)
            .map_err(|e| StoreError::Invalid(format!("the definition cannot be stored: {e}")))?;
        let mut tx = self.write().await?;
        let before = self.read_server(&mut tx, name).await?;
        if let Some(expected) = expected
            && before.as_ref().map(|b| b.version) != Some(expected)
        {
            return Err(StoreError::VersionMismatch {
                what: WHAT,
                expected,
            });
        }
        refuse_platforms(before.as_ref(), by_platform)?;
        let at = now();
        let after = match &before {
            Some(old) => {
                let changed = sqlx::query(
                    "UPDATE tenant_servers SET description = $1, definition = $2, by_platform = $3, \
                     version = version + 1, updated_at = $4 WHERE tenant_id = $5 AND name = $6 AND version = $7",
                )
                .bind(description)
                .bind(&json)
                .bind(i64::from(by_platform))
                .bind(at)
                .bind(self.id())
                .bind(name)
                .bind(old.version)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed == 0 {
                    return Err(StoreError::VersionMismatch {
                        what: WHAT,
                        expected: old.version,
                    });
                }
                TenantServer {
                    description: description.to_owned(),
                    definition: definition.clone(),
                    by_platform,
                    version: old.version + 1,
                    updated_at: at,
                    ..old.clone()
                }
            }
            None => {
                // Counted under the tenant's row lock on PostgreSQL, so two concurrent
                // creates cannot both pass the limit (SQLite's `BEGIN IMMEDIATE` already
                // serialises writers).
                if self.store.backend() == crate::Backend::Postgres {
                    // `NO KEY UPDATE`: concurrent creates wait for each other, while inserts
                    // referencing the tenant (keys, members…) are not held up.
                    sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR NO KEY UPDATE")
                        .bind(self.id())
                        .fetch_optional(&mut *tx)
                        .await?;
                }
                let count: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM tenant_servers WHERE tenant_id = $1")
                        .bind(self.id())
                        .fetch_one(&mut *tx)
                        .await?;
                if usize::try_from(count).unwrap_or(usize::MAX) >= max {
                    return Err(StoreError::Invalid(format!(
                        "the tenant already has {count} servers, the most allowed (tenant_servers.max_per_tenant); delete one first"
                    )));
                }
                sqlx::query(
                    "INSERT INTO tenant_servers (tenant_id, name, description, definition, by_platform, version, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 1, $6, $6)",
                )
                .bind(self.id())
                .bind(name)
                .bind(description)
                .bind(&json)
                .bind(i64::from(by_platform))
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.write_error(e, WHAT, name))?;
                TenantServer {
                    name: name.to_owned(),
                    description: description.to_owned(),
                    definition: definition.clone(),
                    by_platform,
                    version: 1,
                    created_at: at,
                    updated_at: at,
                }
            }
        };
        commit_write(tx).await?;
        Ok(ServerWrite { before, after })
    }

    /// Deletes a server (`expected`: its version, from an `If-Match`; `platform`: the caller
    /// is a platform administrator, else one a platform administrator wrote is refused);
    /// returns what it was.
    pub async fn delete_server(
        &self,
        name: &str,
        expected: Option<i64>,
        platform: bool,
    ) -> Result<TenantServer> {
        let mut tx = self.write().await?;
        let before =
            self.read_server(&mut tx, name)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    what: WHAT,
                    id: name.to_owned(),
                })?;
        if let Some(expected) = expected
            && before.version != expected
        {
            return Err(StoreError::VersionMismatch {
                what: WHAT,
                expected,
            });
        }
        refuse_platforms(Some(&before), platform)?;
        let deleted = sqlx::query(
            "DELETE FROM tenant_servers WHERE tenant_id = $1 AND name = $2 AND version = $3",
        )
        .bind(self.id())
        .bind(name)
        .bind(before.version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if deleted == 0 {
            return Err(StoreError::VersionMismatch {
                what: WHAT,
                expected: before.version,
            });
        }
        commit_write(tx).await?;
        Ok(before)
    }
}
