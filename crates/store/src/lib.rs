//! Switchboard's repositories on SQLite (the embedded default) and PostgreSQL.
//!
//! One [`Store`] over an `sqlx::AnyPool`: the same runtime queries (`$1` placeholders, which
//! both backends accept) serve both databases, so the repository test suite exercises one
//! code path on two engines; the schema is the only per-backend part (`migrations/sqlite`,
//! `migrations/postgres`, embedded in the binary). Column types are kept to what both share
//! (TEXT, BIGINT, BLOB/BYTEA; JSON as TEXT).
//!
//! **Tenant walls.** Tenant-owned operations go through [`Store::tenant`], whose every query
//! filters by the tenant id; on PostgreSQL each of its transactions also sets
//! `switchboard.tenant`, and row-level security policies refuse rows of any other tenant.
//! Platform operations (tenants, the whole directory) set `switchboard.scope = platform`.
//!
//! **Change detection.** Every write bumps `meta.revision` in its own transaction; readers
//! in other processes or replicas poll [`Store::revision`] and reload when it moves.

mod credentials;
mod directory;
mod error;
mod members;
mod schema;
mod tenants;

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Transaction};
use switchboard_domain::tenancy::TenantId;

pub use credentials::SigningKeyRow;
pub use error::StoreError;

/// Result of store operations.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Which database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The engine's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// The repositories.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

/// `url` with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Connects to `sqlite://PATH` (created if missing), `sqlite::memory:` or
    /// `postgres://…`, and runs the migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        install_default_drivers();
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let url = if rest.contains("memory") || rest.contains("mode=") {
                url.to_owned()
            } else if rest.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            let scheme = url.split(':').next().unwrap_or("");
            return Err(StoreError::Invalid(format!(
                "unsupported database URL scheme {scheme:?}; use sqlite://PATH or postgres://…"
            )));
        };
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = AnyPoolOptions::new()
            // One connection keeps an in-memory SQLite database alive and shared.
            .max_connections(if memory { 1 } else { 8 })
            // Fail start-up (and requests for a connection) within seconds when the database
            // is unreachable, instead of sqlx's 30 s default.
            .acquire_timeout(std::time::Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        use sqlx::Executor;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        if !memory {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                        }
                    }
                    Ok(())
                })
            });
        let pool = options.connect(&url).await.map_err(|e| {
            StoreError::Database(format!(
                "cannot open {} database at {}: {e}",
                backend.as_str(),
                redact_url(&url)
            ))
        })?;
        let store = Store { pool, backend };
        schema::migrate(&store).await?;
        Ok(store)
    }

    /// The engine behind the store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The change counter.
    pub async fn revision(&self) -> Result<i64> {
        let value: i64 = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'revision'")
            .fetch_one(&self.pool)
            .await?;
        Ok(value)
    }

    /// A transaction for platform operations (all tenants).
    pub(crate) async fn platform_tx(&self) -> Result<Transaction<'static, Any>> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT set_config('switchboard.scope', 'platform', true)")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// A transaction confined to one tenant.
    pub(crate) async fn tenant_tx(&self, tenant: &TenantId) -> Result<Transaction<'static, Any>> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT set_config('switchboard.tenant', $1, true)")
                .bind(tenant.as_str())
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// The repositories of one tenant.
    pub fn tenant(&self, tenant: &TenantId) -> TenantStore<'_> {
        TenantStore {
            store: self,
            tenant: tenant.clone(),
        }
    }
}

/// Bumps the change counter inside a write transaction.
pub(crate) async fn bump(tx: &mut Transaction<'static, Any>) -> Result<()> {
    sqlx::query("UPDATE meta SET value = value + 1 WHERE key = 'revision'")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Repositories scoped to one tenant: every query filters by it.
pub struct TenantStore<'a> {
    store: &'a Store,
    tenant: TenantId,
}

/// A query with its bound arguments.
pub(crate) type Bound<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

/// Runs `query`, which must change at least one row (else `NotFound { what, id }`), and
/// records the change, in `tx`.
async fn change_one(
    mut tx: Transaction<'static, Any>,
    query: Bound<'_>,
    what: &'static str,
    id: &str,
) -> Result<()> {
    if query.execute(&mut *tx).await?.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what,
            id: id.to_owned(),
        });
    }
    bump(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

impl Store {
    /// A platform change that must touch a row.
    pub(crate) async fn change_platform(
        &self,
        query: Bound<'_>,
        what: &'static str,
        id: &str,
    ) -> Result<()> {
        change_one(self.platform_tx().await?, query, what, id).await
    }
}

impl TenantStore<'_> {
    async fn tx(&self) -> Result<Transaction<'static, Any>> {
        self.store.tenant_tx(&self.tenant).await
    }

    /// A change of this tenant that must touch a row (another tenant's row is not found).
    pub(crate) async fn change(
        &self,
        query: Bound<'_>,
        what: &'static str,
        id: &str,
    ) -> Result<()> {
        change_one(self.tx().await?, query, what, id).await
    }

    fn id(&self) -> &str {
        self.tenant.as_str()
    }
}
