//! Members, groups, custom roles and grants of one tenant.

use sqlx::Row;
use sqlx::any::AnyRow;
use switchboard_domain::tenancy::{
    ClientId, Effect, Grant, Grantee, Group, GroupName, Membership, Role, RoleDef, Target, UserId,
};

use crate::tx::commit_write;
use crate::{Result, StoreError, TenantStore, now};

pub(crate) fn role(value: &str) -> Result<Role> {
    Role::parse(value).map_err(|e| StoreError::corrupt("role", e))
}

pub(crate) fn user(value: String) -> Result<UserId> {
    UserId::new(value).map_err(|e| StoreError::corrupt("user", e))
}

pub(crate) fn group_name(value: String) -> Result<GroupName> {
    GroupName::new(value).map_err(|e| StoreError::corrupt("group", e))
}

/// A membership from a row with `email` and `role`.
pub(crate) fn membership_from_row(row: &AnyRow) -> Result<Membership> {
    Ok(Membership {
        user: user(row.try_get("email")?)?,
        role: role(&row.try_get::<String, _>("role")?)?,
    })
}

/// A grant from a row with `grantee_type`, `grantee_id`, `target` and `effect`.
pub(crate) fn grant_from_row(row: &AnyRow) -> Result<Grant> {
    grant_from(
        &row.try_get::<String, _>("grantee_type")?,
        row.try_get("grantee_id")?,
        &row.try_get::<String, _>("target")?,
        &row.try_get::<String, _>("effect")?,
    )
}

fn grant_from(grantee_type: &str, grantee_id: String, target: &str, effect: &str) -> Result<Grant> {
    let corrupt = |m: String| StoreError::corrupt("grant", m);
    let grantee = match grantee_type {
        "user" => Grantee::User(user(grantee_id)?),
        "group" => Grantee::Group(group_name(grantee_id)?),
        "role" => Grantee::Role(role(&grantee_id)?),
        "client" => Grantee::Client(ClientId::new(grantee_id).map_err(|e| corrupt(e.to_string()))?),
        other => return Err(corrupt(format!("grantee type {other:?}"))),
    };
    let effect = match effect {
        "allow" => Effect::Allow,
        "deny" => Effect::Deny,
        other => return Err(corrupt(format!("effect {other:?}"))),
    };
    Ok(Grant {
        grantee,
        target: Target::parse(target).map_err(|e| corrupt(e.to_string()))?,
        effect,
    })
}

fn grantee_parts(grantee: &Grantee) -> (&'static str, &str) {
    match grantee {
        Grantee::User(u) => ("user", u.as_str()),
        Grantee::Group(g) => ("group", g.as_str()),
        Grantee::Role(r) => ("role", r.as_str()),
        Grantee::Client(c) => ("client", c.as_str()),
    }
}

fn not_found(what: &'static str, id: impl std::fmt::Display) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_string(),
    }
}

impl TenantStore<'_> {
    /// Adds `user` (created if new) with `role`.
    pub async fn add_member(&self, user: &UserId, role: Role) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO users (email, name, created_at) VALUES ($1, '', $2) ON CONFLICT (email) DO NOTHING",
        )
        .bind(user.as_str())
        .bind(now())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO memberships (tenant_id, email, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(self.id())
        .bind(user.as_str())
        .bind(role.as_str())
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.write_error(e, "member", user.as_str()))?;
        commit_write(tx).await
    }

    /// Changes a member's role.
    pub async fn set_member_role(&self, user: &UserId, role: Role) -> Result<()> {
        let query =
            sqlx::query("UPDATE memberships SET role = $3 WHERE tenant_id = $1 AND email = $2")
                .bind(self.id().to_owned())
                .bind(user.as_str().to_owned())
                .bind(role.as_str().to_owned());
        self.change(query, "member", user.as_str()).await
    }

    /// Removes a member (and their group memberships in this tenant).
    pub async fn remove_member(&self, user: &UserId) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM group_members WHERE tenant_id = $1 AND email = $2")
            .bind(self.id())
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND email = $2")
            .bind(self.id())
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(not_found("member", user));
        }
        commit_write(tx).await
    }

    /// Members and their roles, by email.
    pub async fn members(&self) -> Result<Vec<Membership>> {
        self.rows("SELECT email, role FROM memberships WHERE tenant_id = $1 ORDER BY email")
            .await?
            .iter()
            .map(membership_from_row)
            .collect()
    }

    /// Creates a group.
    pub async fn create_group(&self, name: &GroupName, description: &str) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query("INSERT INTO tenant_groups (tenant_id, name, description) VALUES ($1, $2, $3)")
            .bind(self.id())
            .bind(name.as_str())
            .bind(description)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.write_error(e, "group", name.as_str()))?;
        commit_write(tx).await
    }

    /// Deletes a group and its memberships.
    pub async fn delete_group(&self, name: &GroupName) -> Result<()> {
        let query = sqlx::query("DELETE FROM tenant_groups WHERE tenant_id = $1 AND name = $2")
            .bind(self.id().to_owned())
            .bind(name.as_str().to_owned());
        self.change(query, "group", name.as_str()).await
    }

    /// Adds a member of the tenant to a group of the tenant.
    pub async fn add_group_member(&self, group: &GroupName, member: &UserId) -> Result<()> {
        let mut tx = self.write().await?;
        let group_exists: Option<String> =
            sqlx::query_scalar("SELECT name FROM tenant_groups WHERE tenant_id = $1 AND name = $2")
                .bind(self.id())
                .bind(group.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        if group_exists.is_none() {
            return Err(not_found("group", group));
        }
        let is_member: Option<String> =
            sqlx::query_scalar("SELECT email FROM memberships WHERE tenant_id = $1 AND email = $2")
                .bind(self.id())
                .bind(member.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        if is_member.is_none() {
            return Err(not_found("member", member));
        }
        sqlx::query("INSERT INTO group_members (tenant_id, group_name, email) VALUES ($1, $2, $3)")
            .bind(self.id())
            .bind(group.as_str())
            .bind(member.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.write_error(e, "group member", member.as_str()))?;
        commit_write(tx).await
    }

    /// Removes a user from a group.
    pub async fn remove_group_member(&self, group: &GroupName, member: &UserId) -> Result<()> {
        let query = sqlx::query(
            "DELETE FROM group_members WHERE tenant_id = $1 AND group_name = $2 AND email = $3",
        )
        .bind(self.id().to_owned())
        .bind(group.as_str().to_owned())
        .bind(member.as_str().to_owned());
        self.change(query, "group member", member.as_str()).await
    }

    /// Groups with their members.
    pub async fn groups(&self) -> Result<Vec<Group>> {
        let mut tx = self.read().await?;
        let groups = sqlx::query(
            "SELECT name, description FROM tenant_groups WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(self.id())
        .fetch_all(&mut *tx)
        .await?;
        let members = sqlx::query(
            "SELECT group_name, email FROM group_members WHERE tenant_id = $1 ORDER BY email",
        )
        .bind(self.id())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        crate::directory::assemble_groups(&groups, &members)
    }

    /// Creates or replaces a custom role.
    pub async fn put_role(&self, def: &RoleDef) -> Result<()> {
        if !matches!(Role::parse(&def.name), Ok(Role::Custom(_))) {
            return Err(StoreError::Invalid(format!(
                "{:?} is not a custom role name (built-in names are reserved)",
                def.name.chars().take(40).collect::<String>()
            )));
        }
        let permissions = serde_json::to_string(&def.permissions)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO custom_roles (tenant_id, name, description, permissions) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET description = excluded.description, permissions = excluded.permissions",
        )
        .bind(self.id())
        .bind(&def.name)
        .bind(&def.description)
        .bind(permissions)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.write_error(e, "role", &def.name))?;
        commit_write(tx).await
    }

    /// Deletes a custom role.
    pub async fn delete_role(&self, name: &str) -> Result<()> {
        let query = sqlx::query("DELETE FROM custom_roles WHERE tenant_id = $1 AND name = $2")
            .bind(self.id().to_owned())
            .bind(name.to_owned());
        self.change(query, "role", name).await
    }

    /// Custom roles, by name.
    pub async fn roles(&self) -> Result<Vec<RoleDef>> {
        self.rows(
            "SELECT name, description, permissions FROM custom_roles WHERE tenant_id = $1 ORDER BY name",
        )
        .await?
        .iter()
        .map(crate::directory::role_from_row)
        .collect()
    }

    /// Adds a grant; returns its id.
    pub async fn add_grant(&self, grant: &Grant) -> Result<String> {
        let id = format!("g_{}", uuid::Uuid::new_v4().simple());
        let (kind, grantee) = grantee_parts(&grant.grantee);
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO grants (tenant_id, id, grantee_type, grantee_id, target, effect, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(self.id())
        .bind(&id)
        .bind(kind)
        .bind(grantee)
        .bind(grant.target.to_string())
        .bind(grant.effect.as_str())
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.write_error(e, "grant", &id))?;
        commit_write(tx).await?;
        Ok(id)
    }

    /// Removes a grant.
    pub async fn remove_grant(&self, id: &str) -> Result<()> {
        let query = sqlx::query("DELETE FROM grants WHERE tenant_id = $1 AND id = $2")
            .bind(self.id().to_owned())
            .bind(id.to_owned());
        self.change(query, "grant", id).await
    }

    /// Grants with their ids, oldest first.
    pub async fn grants(&self) -> Result<Vec<(String, Grant)>> {
        self.rows(
            "SELECT id, grantee_type, grantee_id, target, effect FROM grants WHERE tenant_id = $1 ORDER BY created_at, id",
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get("id")?, grant_from_row(r)?)))
        .collect()
    }
}
