//! Migrations, embedded per backend. Written out here (rather than with `sqlx::migrate!`) so
//! the crate needs no sqlx macros at build time; sqlx's migrator still records and checks
//! them in `_sqlx_migrations`.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::{Backend, Result, Store, StoreError};

const SQLITE: &[(i64, &str, &str)] = &[(
    1,
    "tenancy",
    include_str!("../migrations/sqlite/0001_tenancy.sql"),
)];

const POSTGRES: &[(i64, &str, &str)] = &[(
    1,
    "tenancy",
    include_str!("../migrations/postgres/0001_tenancy.sql"),
)];

pub(crate) async fn migrate(store: &Store) -> Result<()> {
    let source = match store.backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
    let migrations = source
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect::<Vec<_>>();
    let migrator = Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    };
    migrator
        .run(&store.pool)
        .await
        .map_err(|e| StoreError::Database(format!("migrating the database failed: {e}")))
}
