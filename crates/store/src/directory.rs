//! The whole directory in one consistent read: what the authentication snapshot is built
//! from.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;
use switchboard_domain::tenancy::{
    Directory, Group, Membership, Permission, RoleDef, TenantDirectory,
};

use crate::credentials::{api_key_from_row, client_from_row, issuer_from_row};
use crate::members::{grant_from, group_name, role, user};
use crate::tenants::tenant_from_row;
use crate::tx::{Access, Scope};
use crate::{Result, Store, StoreError, now};

pub(crate) fn role_from_row(row: &AnyRow) -> Result<RoleDef> {
    let permissions: Vec<Permission> =
        serde_json::from_str(&row.try_get::<String, _>("permissions")?)
            .map_err(|e| StoreError::corrupt("role", e))?;
    Ok(RoleDef {
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        permissions,
    })
}

/// Joins group rows (`name`, `description`) with member rows (`group_name`, `email`).
pub(crate) fn assemble_groups(groups: &[AnyRow], members: &[AnyRow]) -> Result<Vec<Group>> {
    let mut by_group: HashMap<String, Vec<switchboard_domain::tenancy::UserId>> = HashMap::new();
    for m in members {
        by_group
            .entry(m.try_get("group_name")?)
            .or_default()
            .push(user(m.try_get("email")?)?);
    }
    groups
        .iter()
        .map(|g| {
            let name: String = g.try_get("name")?;
            Ok(Group {
                members: by_group.remove(&name).unwrap_or_default(),
                name: group_name(name)?,
                description: g.try_get("description")?,
            })
        })
        .collect()
}

/// Groups rows by their `tenant_id` column.
pub(crate) fn by_tenant(rows: Vec<AnyRow>) -> Result<HashMap<String, Vec<AnyRow>>> {
    let mut out: HashMap<String, Vec<AnyRow>> = HashMap::new();
    for row in rows {
        out.entry(row.try_get("tenant_id")?).or_default().push(row);
    }
    Ok(out)
}

impl Store {
    /// Every tenant with everything authentication and policy need, and the revision the
    /// read saw, from one consistent snapshot of the database.
    pub async fn load_directory(&self) -> Result<Directory> {
        // REPEATABLE READ on PostgreSQL (one read transaction on SQLite): the revision and
        // every table below come from the same snapshot, so a reader that stores this
        // revision never misses a write made after it.
        let mut tx = self.begin(Scope::Platform, Access::Snapshot).await?;
        let revision: i64 = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'revision'")
            .fetch_one(&mut *tx)
            .await?;
        let tenants = sqlx::query("SELECT * FROM tenants ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
        let fetch = |sql: &'static str| sqlx::query(sql);
        let domains = by_tenant(
            fetch("SELECT tenant_id, domain FROM tenant_domains ORDER BY domain")
                .fetch_all(&mut *tx)
                .await?,
        )?;
        let members = by_tenant(
            fetch("SELECT tenant_id, email, role FROM memberships ORDER BY email")
                .fetch_all(&mut *tx)
                .await?,
        )?;
        let groups = by_tenant(
            fetch("SELECT tenant_id, name, description FROM tenant_groups ORDER BY name")
                .fetch_all(&mut *tx)
                .await?,
        )?;
        let group_members = by_tenant(
            fetch("SELECT tenant_id, group_name, email FROM group_members ORDER BY email")
                .fetch_all(&mut *tx)
                .await?,
        )?;
        let roles = by_tenant(
            fetch(
                "SELECT tenant_id, name, description, permissions FROM custom_roles ORDER BY name",
            )
            .fetch_all(&mut *tx)
            .await?,
        )?;
        let grants = by_tenant(fetch("SELECT tenant_id, grantee_type, grantee_id, target, effect FROM grants ORDER BY created_at, id").fetch_all(&mut *tx).await?)?;
        let keys = by_tenant(
            fetch("SELECT * FROM api_keys ORDER BY id")
                .fetch_all(&mut *tx)
                .await?,
        )?;
        let clients = by_tenant(
            fetch("SELECT * FROM service_clients ORDER BY client_id")
                .fetch_all(&mut *tx)
                .await?,
        )?;
        let issuers = by_tenant(
            fetch("SELECT tenant_id, config FROM issuers ORDER BY issuer")
                .fetch_all(&mut *tx)
                .await?,
        )?;
        let revoked = by_tenant(
            sqlx::query(
                "SELECT tenant_id, jti FROM revoked_tokens WHERE expires_at >= $1 ORDER BY jti",
            )
            .bind(now())
            .fetch_all(&mut *tx)
            .await?,
        )?;
        tx.commit().await?;

        let take = |map: &HashMap<String, Vec<AnyRow>>, id: &str| -> Vec<AnyRow> {
            map.get(id).cloned().unwrap_or_default()
        };
        let mut out = Vec::with_capacity(tenants.len());
        for row in &tenants {
            let id: String = row.try_get("id")?;
            let tenant_domains = take(&domains, &id)
                .iter()
                .map(|r| r.try_get::<String, _>("domain"))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let tenant = tenant_from_row(row, tenant_domains)?;
            out.push(TenantDirectory {
                members: take(&members, &id)
                    .iter()
                    .map(|r| {
                        Ok(Membership {
                            user: user(r.try_get("email")?)?,
                            role: role(&r.try_get::<String, _>("role")?)?,
                        })
                    })
                    .collect::<Result<_>>()?,
                groups: assemble_groups(&take(&groups, &id), &take(&group_members, &id))?,
                roles: take(&roles, &id)
                    .iter()
                    .map(role_from_row)
                    .collect::<Result<_>>()?,
                grants: take(&grants, &id)
                    .iter()
                    .map(|r| {
                        grant_from(
                            &r.try_get::<String, _>("grantee_type")?,
                            r.try_get("grantee_id")?,
                            &r.try_get::<String, _>("target")?,
                            &r.try_get::<String, _>("effect")?,
                        )
                    })
                    .collect::<Result<_>>()?,
                api_keys: take(&keys, &id)
                    .iter()
                    .map(api_key_from_row)
                    .collect::<Result<_>>()?,
                clients: take(&clients, &id)
                    .iter()
                    .map(client_from_row)
                    .collect::<Result<_>>()?,
                issuers: take(&issuers, &id)
                    .iter()
                    .map(issuer_from_row)
                    .collect::<Result<_>>()?,
                revoked_tokens: take(&revoked, &id)
                    .iter()
                    .map(|r| r.try_get::<String, _>("jti"))
                    .collect::<std::result::Result<_, _>>()?,
                tenant,
            });
        }
        Ok(Directory {
            revision,
            tenants: out,
        })
    }
}
