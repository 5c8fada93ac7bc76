//! The whole directory in one consistent read: what the authentication snapshot is built
//! from.

use std::collections::HashMap;

use sqlx::Row;
use sqlx::any::AnyRow;
use switchboard_domain::tenancy::{Directory, Group, Permission, RoleDef, TenantDirectory};

use crate::credentials::{api_key_from_row, client_from_row, issuer_from_row};
use crate::members::{grant_from_row, group_name, membership_from_row, user};
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

/// The tenant-owned tables the directory reads, in the order of [`TABLES`].
#[derive(Clone, Copy)]
enum Table {
    Domains,
    Members,
    Groups,
    GroupMembers,
    Roles,
    Grants,
    ApiKeys,
    Clients,
    Issuers,
    Revoked,
    Servers,
}

/// One query per [`Table`]; each may use `$1` = now (only revocations do: expired ones are
/// useless and not loaded).
const TABLES: [&str; 11] = [
    "SELECT tenant_id, domain FROM tenant_domains ORDER BY domain",
    "SELECT tenant_id, email, role FROM memberships ORDER BY email",
    "SELECT tenant_id, name, description FROM tenant_groups ORDER BY name",
    "SELECT tenant_id, group_name, email FROM group_members ORDER BY email",
    "SELECT tenant_id, name, description, permissions FROM custom_roles ORDER BY name",
    "SELECT tenant_id, grantee_type, grantee_id, target, effect FROM grants ORDER BY created_at, id",
    "SELECT * FROM api_keys ORDER BY id",
    "SELECT * FROM service_clients ORDER BY client_id",
    "SELECT tenant_id, config FROM issuers ORDER BY issuer",
    "SELECT tenant_id, jti FROM revoked_tokens WHERE expires_at >= $1 ORDER BY jti",
    "SELECT * FROM tenant_servers ORDER BY name",
];

fn convert<T>(rows: Vec<AnyRow>, f: impl Fn(&AnyRow) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(f).collect()
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
        // Every tenant-owned table, read whole and grouped by tenant. The order of this list is
        // the order of `Table`.
        let mut tables = Vec::with_capacity(TABLES.len());
        for sql in TABLES {
            let query = sqlx::query(sql);
            let query = if sql.contains("$1") {
                query.bind(now())
            } else {
                query
            };
            let rows = query.fetch_all(&mut *tx).await?;
            tables.push(by_tenant(rows)?);
        }
        tx.commit().await?;

        let mut out = Vec::with_capacity(tenants.len());
        for row in &tenants {
            let id: String = row.try_get("id")?;
            let mut take = |table: Table| tables[table as usize].remove(&id).unwrap_or_default();
            let domains = take(Table::Domains)
                .iter()
                .map(|r| r.try_get::<String, _>("domain"))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let (groups, group_members) = (take(Table::Groups), take(Table::GroupMembers));
            out.push(TenantDirectory {
                tenant: tenant_from_row(row, domains)?,
                members: convert(take(Table::Members), membership_from_row)?,
                groups: assemble_groups(&groups, &group_members)?,
                roles: convert(take(Table::Roles), role_from_row)?,
                grants: convert(take(Table::Grants), grant_from_row)?,
                api_keys: convert(take(Table::ApiKeys), api_key_from_row)?,
                clients: convert(take(Table::Clients), client_from_row)?,
                issuers: convert(take(Table::Issuers), issuer_from_row)?,
                revoked_tokens: convert(take(Table::Revoked), |r| Ok(r.try_get("jti")?))?,
                servers: convert(take(Table::Servers), crate::servers::server_from_row)?,
            });
        }
        Ok(Directory {
            revision,
            tenants: out,
        })
    }
}
