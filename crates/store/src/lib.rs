//! Switchboard's repositories on SQLite (the embedded default) and PostgreSQL.
//!
//! **One pool type.** [`Store`] holds an `sqlx::AnyPool` rather than an enum over
//! `SqlitePool`/`PgPool`: the queries are runtime strings with `$1` placeholders, which both
//! engines accept, so one set of repository functions serves both and the repository test
//! suite exercises one code path on two engines. An enum would need every function written
//! twice (or generic over `sqlx::Database` with a thicket of `Encode`/`Decode` bounds). The
//! price is that column types stay within what `Any` maps on both sides (TEXT, BIGINT,
//! BLOB/BYTEA; JSON as TEXT; booleans as BIGINT 0/1), which is all this schema needs. The
//! schema is the only per-backend part (`migrations/sqlite`, `migrations/postgres`, embedded
//! in the binary).
//!
//! **Tenant walls.** Tenant-owned operations go through [`Store::tenant`], whose every query
//! filters by the tenant id; on PostgreSQL each of its transactions also sets
//! `switchboard.tenant`, and row-level security policies refuse rows of any other tenant
//! (SQLite has no RLS: there the filter is the only wall). Platform operations (tenants, the
//! whole directory, signing keys) set `switchboard.scope = platform`.
//!
//! **Change detection.** Every write bumps `meta.revision` in its own transaction; readers
//! in other processes or replicas poll [`Store::revision`] and reload when it moves.

mod admin_tokens;
mod audit;
mod connect;
mod credentials;
mod directory;
mod error;
mod members;
mod schema;
mod secrets;
mod servers;
mod signing;
mod tenants;
mod tx;
mod usage;

use sqlx::AnyPool;
use switchboard_domain::tenancy::TenantId;

pub use admin_tokens::AdminTokenRow;
pub use audit::AuditFilter;
pub use connect::redact_url;
pub use error::StoreError;
pub use secrets::{SecretMeta, WrappedKey};
pub use servers::ServerWrite;
pub use signing::SigningKeyRow;
pub use tenants::TenantFilter;
pub use usage::{MAX_REPORT_ROWS, UsageGroup, UsageRow};

/// Result of store operations.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Which database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The engine's name (`sqlite`, `postgres`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// The repositories: platform operations directly, tenant-owned ones through
/// [`Store::tenant`]. Cheap to clone (the pool is shared).
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

impl Store {
    /// The engine behind the store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The change counter: moves on every write, never on a read.
    pub async fn revision(&self) -> Result<i64> {
        let value: i64 = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'revision'")
            .fetch_one(&self.pool)
            .await?;
        Ok(value)
    }

    /// The repositories of one tenant.
    pub fn tenant(&self, tenant: &TenantId) -> TenantStore<'_> {
        TenantStore {
            store: self,
            tenant: tenant.clone(),
        }
    }
}

/// Repositories scoped to one tenant: every query filters by it, and on PostgreSQL runs
/// with `switchboard.tenant` set to it. Another tenant's object is indistinguishable from a
/// missing one.
pub struct TenantStore<'a> {
    store: &'a Store,
    tenant: TenantId,
}

impl TenantStore<'_> {
    /// The tenant this scope is confined to.
    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant
    }

    fn id(&self) -> &str {
        self.tenant.as_str()
    }

    /// Maps a failed insert of this tenant: a duplicate is a `Conflict` on `what`/`id`, and a
    /// broken reference to `tenants` means this tenant does not exist.
    fn write_error(&self, err: sqlx::Error, what: &'static str, id: &str) -> StoreError {
        match &err {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound {
                what: "tenant",
                id: self.tenant.to_string(),
            },
            _ => StoreError::db(err, what, id),
        }
    }
}

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
