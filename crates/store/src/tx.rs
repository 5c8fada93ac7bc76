//! Transactions with their walls: a platform or one-tenant scope (PostgreSQL row-level
//! security reads it from transaction-local settings), and the revision bump every write
//! commits with.

use sqlx::{Any, Transaction};
use switchboard_domain::tenancy::TenantId;

use crate::{Backend, Result, Store, StoreError, TenantStore};

/// An open transaction.
pub(crate) type Tx = Transaction<'static, Any>;

/// A query with its bound arguments.
pub(crate) type Bound<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

/// Whose rows a transaction may see.
#[derive(Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// Every tenant's (tenant lifecycle, the whole directory, key lookup by id).
    Platform,
    /// One tenant's only.
    Tenant(&'a TenantId),
}

/// What a transaction will do.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
    /// One consistent snapshot of many tables.
    Snapshot,
}

impl Store {
    /// Opens a transaction confined to `scope`.
    pub(crate) async fn begin(&self, scope: Scope<'_>, access: Access) -> Result<Tx> {
        let mut tx = match (self.backend, access) {
            // A deferred SQLite transaction that reads first and writes later fails at once
            // with "database is locked" when another connection wrote in between (the busy
            // timeout does not apply to that upgrade); taking the write lock up front makes
            // concurrent writers wait their turn instead.
            (Backend::Sqlite, Access::Write) => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            (Backend::Postgres, Access::Snapshot) => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?
            }
            // SQLite in WAL mode reads from one snapshot for the whole transaction anyway.
            _ => self.pool.begin().await?,
        };
        if self.backend == Backend::Postgres {
            // `true`: the setting ends with the transaction, so a pooled connection never
            // carries one tenant's scope into the next use.
            let query = match scope {
                Scope::Platform => {
                    sqlx::query("SELECT set_config('switchboard.scope', 'platform', true)")
                }
                Scope::Tenant(id) => {
                    sqlx::query("SELECT set_config('switchboard.tenant', $1, true)")
                        .bind(id.as_str().to_owned())
                }
            };
            query.execute(&mut *tx).await?;
        }
        Ok(tx)
    }

    /// Runs one platform change that must touch a row (else `NotFound { what, id }`).
    pub(crate) async fn change_platform(
        &self,
        query: Bound<'_>,
        what: &'static str,
        id: &str,
    ) -> Result<()> {
        change_one(
            self.begin(Scope::Platform, Access::Write).await?,
            query,
            what,
            id,
        )
        .await
    }
}

impl TenantStore<'_> {
    /// A read transaction of this tenant.
    pub(crate) async fn read(&self) -> Result<Tx> {
        self.store
            .begin(Scope::Tenant(&self.tenant), Access::Read)
            .await
    }

    /// The rows of one read of this tenant: `sql` takes the tenant id as `$1`.
    pub(crate) async fn rows(&self, sql: &'static str) -> Result<Vec<sqlx::any::AnyRow>> {
        let mut tx = self.read().await?;
        let rows = sqlx::query(sql)
            .bind(self.tenant.as_str().to_owned())
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// A write transaction of this tenant; commit it with [`commit_write`].
    pub(crate) async fn write(&self) -> Result<Tx> {
        self.store
            .begin(Scope::Tenant(&self.tenant), Access::Write)
            .await
    }

    /// Runs one change of this tenant that must touch a row; another tenant's row is not
    /// touched and reads as `NotFound`.
    pub(crate) async fn change(
        &self,
        query: Bound<'_>,
        what: &'static str,
        id: &str,
    ) -> Result<()> {
        change_one(self.write().await?, query, what, id).await
    }
}

/// Records the change (bumps `meta.revision`) and commits.
pub(crate) async fn commit_write(mut tx: Tx) -> Result<()> {
    sqlx::query("UPDATE meta SET value = value + 1 WHERE key = 'revision'")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Runs `query`, which must change at least one row (else `NotFound { what, id }`, and
/// nothing is committed), then records the change.
async fn change_one(mut tx: Tx, query: Bound<'_>, what: &'static str, id: &str) -> Result<()> {
    if query.execute(&mut *tx).await?.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what,
            id: id.to_owned(),
        });
    }
    commit_write(tx).await
}

/// Appends `rows` value tuples of `columns` parameters each: `($1, …), ($n+1, …)` on
/// PostgreSQL, anonymous `?` on SQLite — SQLite looks a numbered parameter's name up by a
/// linear scan (`sqlite3_bind_parameter_name`), which makes binding a large multi-row
/// statement quadratic.
pub(crate) fn push_values(sql: &mut String, backend: Backend, rows: usize, columns: usize) {
    use std::fmt::Write;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    let _ = write!(sql, "${}", row * columns + column + 1);
                }
            }
        }
        sql.push(')');
    }
}
