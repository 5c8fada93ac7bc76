//! Tenants and their domains (platform operations), and users.

use sqlx::Row;
use sqlx::any::AnyRow;
use switchboard_domain::tenancy::{Plan, Tenant, TenantId, TenantSettings, TenantStatus, UserId};

use crate::tx::{Access, Scope, commit_write};
use crate::{Result, Store, StoreError, now};

const WHAT: &str = "tenant";

/// Filters of a tenant listing; `None` matches every value.
#[derive(Debug, Clone, Copy, Default)]
pub struct TenantFilter {
    pub status: Option<TenantStatus>,
    pub plan: Option<Plan>,
}

pub(crate) fn tenant_from_row(row: &AnyRow, domains: Vec<String>) -> Result<Tenant> {
    let id: String = row.try_get("id")?;
    let status: String = row.try_get("status")?;
    let plan: String = row.try_get("plan")?;
    let settings: String = row.try_get("settings")?;
    Ok(Tenant {
        id: TenantId::new(id).map_err(|e| StoreError::corrupt(WHAT, e))?,
        name: row.try_get("name")?,
        status: TenantStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt(WHAT, format!("status {status:?}")))?,
        plan: Plan::parse(&plan)
            .ok_or_else(|| StoreError::corrupt(WHAT, format!("plan {plan:?}")))?,
        domains,
        settings: serde_json::from_str::<TenantSettings>(&settings)
            .map_err(|e| StoreError::corrupt(WHAT, format!("settings: {e}")))?,
    })
}

fn settings_json(tenant: &Tenant) -> Result<String> {
    serde_json::to_string(&tenant.settings).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn check_domains(tenant: &Tenant) -> Result<Vec<String>> {
    tenant
        .domains
        .iter()
        .map(|d| {
            let d = d.to_ascii_lowercase();
            let ok = !d.is_empty()
                && d.len() <= 253
                && d.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if ok {
                Ok(d)
            } else {
                Err(StoreError::Invalid(format!(
                    "domain {:?} is not a host name (lowercase letters, digits, '-' and '.')",
                    d.chars().take(40).collect::<String>()
                )))
            }
        })
        .collect()
}

impl Store {
    /// Creates a tenant (version 1).
    pub async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        let domains = check_domains(tenant)?;
        let mut tx = self.begin(Scope::Platform, Access::Write).await?;
        let at = now();
        sqlx::query(
            "INSERT INTO tenants (id, name, status, plan, settings, created_at, updated_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, 1)",
        )
        .bind(tenant.id.as_str())
        .bind(&tenant.name)
        .bind(tenant.status.as_str())
        .bind(tenant.plan.as_str())
        .bind(settings_json(tenant)?)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::db(e, WHAT, tenant.id.as_str()))?;
        for domain in &domains {
            sqlx::query("INSERT INTO tenant_domains (domain, tenant_id) VALUES ($1, $2)")
                .bind(domain)
                .bind(tenant.id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::db(e, "domain", domain))?;
        }
        commit_write(tx).await
    }

    /// A tenant with its domains and version.
    pub async fn get_tenant_versioned(&self, id: &TenantId) -> Result<Option<(Tenant, i64)>> {
        let mut tx = self.begin(Scope::Platform, Access::Read).await?;
        let Some(row) = sqlx::query("SELECT * FROM tenants WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let domains: Vec<String> = sqlx::query_scalar(
            "SELECT domain FROM tenant_domains WHERE tenant_id = $1 ORDER BY domain",
        )
        .bind(id.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let version: i64 = row.try_get("version")?;
        tx.commit().await?;
        Ok(Some((tenant_from_row(&row, domains)?, version)))
    }

    /// A tenant with its domains.
    pub async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
        Ok(self.get_tenant_versioned(id).await?.map(|(t, _)| t))
    }

    /// All tenants with their domains, by id.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let mut tx = self.begin(Scope::Platform, Access::Read).await?;
        let rows = sqlx::query("SELECT * FROM tenants ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
        let domains = sqlx::query("SELECT tenant_id, domain FROM tenant_domains ORDER BY domain")
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut by_tenant = crate::directory::by_tenant(domains)?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                let domains = by_tenant
                    .remove(&id)
                    .unwrap_or_default()
                    .iter()
                    .map(|r| r.try_get::<String, _>("domain"))
                    .collect::<std::result::Result<_, _>>()?;
                tenant_from_row(row, domains)
            })
            .collect()
    }

    /// One page of tenants by id, those after `after`, with their versions: at most `limit`,
    /// filtered by status and plan when given.
    pub async fn tenants_page(
        &self,
        after: Option<&str>,
        limit: u32,
        filter: &TenantFilter,
    ) -> Result<Vec<(Tenant, i64)>> {
        let mut tx = self.begin(Scope::Platform, Access::Read).await?;
        let rows = sqlx::query(
            "SELECT * FROM tenants WHERE id > $1 AND ($2 = '' OR status = $2) \
             AND ($3 = '' OR plan = $3) ORDER BY id LIMIT $4",
        )
        .bind(after.unwrap_or(""))
        .bind(filter.status.map_or("", TenantStatus::as_str))
        .bind(filter.plan.map_or("", Plan::as_str))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            tx.commit().await?;
            return Ok(Vec::new());
        };
        let (first, last): (String, String) = (first.try_get("id")?, last.try_get("id")?);
        let domains = sqlx::query(
            "SELECT tenant_id, domain FROM tenant_domains WHERE tenant_id >= $1 AND tenant_id <= $2 \
             ORDER BY domain",
        )
        .bind(first)
        .bind(last)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut by_tenant = crate::directory::by_tenant(domains)?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                let domains = by_tenant
                    .remove(&id)
                    .unwrap_or_default()
                    .iter()
                    .map(|r| r.try_get::<String, _>("domain"))
                    .collect::<std::result::Result<_, _>>()?;
                Ok((tenant_from_row(row, domains)?, row.try_get("version")?))
            })
            .collect()
    }

    /// Replaces a tenant's name, status, plan, domains and settings if its version is still
    /// `expected_version`; returns the new version.
    pub async fn update_tenant(&self, tenant: &Tenant, expected_version: i64) -> Result<i64> {
        let domains = check_domains(tenant)?;
        let mut tx = self.begin(Scope::Platform, Access::Write).await?;
        let updated = sqlx::query(
            "UPDATE tenants SET name = $1, status = $2, plan = $3, settings = $4, updated_at = $5, \
             version = version + 1 WHERE id = $6 AND version = $7",
        )
        .bind(&tenant.name)
        .bind(tenant.status.as_str())
        .bind(tenant.plan.as_str())
        .bind(settings_json(tenant)?)
        .bind(now())
        .bind(tenant.id.as_str())
        .bind(expected_version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT version FROM tenants WHERE id = $1")
                    .bind(tenant.id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            return Err(match exists {
                Some(_) => StoreError::VersionMismatch {
                    what: WHAT,
                    expected: expected_version,
                },
                None => StoreError::NotFound {
                    what: WHAT,
                    id: tenant.id.to_string(),
                },
            });
        }
        sqlx::query("DELETE FROM tenant_domains WHERE tenant_id = $1")
            .bind(tenant.id.as_str())
            .execute(&mut *tx)
            .await?;
        for domain in &domains {
            sqlx::query("INSERT INTO tenant_domains (domain, tenant_id) VALUES ($1, $2)")
                .bind(domain)
                .bind(tenant.id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::db(e, "domain", domain))?;
        }
        commit_write(tx).await?;
        Ok(expected_version + 1)
    }

    /// Suspends, resumes or marks a tenant as trial.
    pub async fn set_tenant_status(&self, id: &TenantId, status: TenantStatus) -> Result<()> {
        let query = sqlx::query(
            "UPDATE tenants SET status = $1, updated_at = $2, version = version + 1 WHERE id = $3",
        )
        .bind(status.as_str())
        .bind(now())
        .bind(id.as_str().to_owned());
        self.change_platform(query, WHAT, id.as_str()).await
    }

    /// Deletes a tenant and everything it owns (its usage too; its audit chain stays).
    pub async fn delete_tenant(&self, id: &TenantId) -> Result<()> {
        let mut tx = self.begin(Scope::Platform, Access::Write).await?;
        let deleted = sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound {
                what: WHAT,
                id: id.to_string(),
            });
        }
        sqlx::query("DELETE FROM usage_rollups WHERE tenant_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        commit_write(tx).await
    }

    /// The tenant owning a host name.
    pub async fn tenant_by_domain(&self, domain: &str) -> Result<Option<TenantId>> {
        let mut tx = self.begin(Scope::Platform, Access::Read).await?;
        let id: Option<String> =
            sqlx::query_scalar("SELECT tenant_id FROM tenant_domains WHERE domain = $1")
                .bind(domain.to_ascii_lowercase())
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        id.map(|id| TenantId::new(id).map_err(|e| StoreError::corrupt("domain", e)))
            .transpose()
    }

    /// Creates or renames a user.
    pub async fn upsert_user(&self, user: &UserId, name: &str) -> Result<()> {
        let mut tx = self.begin(Scope::Platform, Access::Write).await?;
        sqlx::query(
            "INSERT INTO users (email, name, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (email) DO UPDATE SET name = excluded.name",
        )
        .bind(user.as_str())
        .bind(name)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        commit_write(tx).await
    }
}
