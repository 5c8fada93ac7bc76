//! Migrations, embedded per backend and run by sqlx's migrator, which records them (with
//! checksums) in `_sqlx_migrations` and refuses an edited one.
//!
//! Listed here rather than found by `sqlx::migrate!`: that macro needs sqlx's `macros`
//! feature (sqlx-macros-core and its driver dependencies, an extra build cost on every
//! machine) for what is a three-line table. A unit test checks the table against the
//! folders, so a new file cannot be forgotten. Add a migration as
//! `NNNN_description.sql` in *both* folders and a row to both tables.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::{Backend, Result, Store, StoreError};

const SQLITE: &[(i64, &str, &str)] = &[
    (
        1,
        "tenancy",
        include_str!("../migrations/sqlite/0001_tenancy.sql"),
    ),
    (
        2,
        "audit",
        include_str!("../migrations/sqlite/0002_audit.sql"),
    ),
    (
        3,
        "admin_tokens",
        include_str!("../migrations/sqlite/0003_admin_tokens.sql"),
    ),
    (
        4,
        "usage",
        include_str!("../migrations/sqlite/0004_usage.sql"),
    ),
    (
        5,
        "key_allowlists",
        include_str!("../migrations/sqlite/0005_key_allowlists.sql"),
    ),
    (
        6,
        "secrets",
        include_str!("../migrations/sqlite/0006_secrets.sql"),
    ),
    (
        7,
        "audit_retention",
        include_str!("../migrations/sqlite/0007_audit_retention.sql"),
    ),
    (
        8,
        "tenant_servers",
        include_str!("../migrations/sqlite/0008_tenant_servers.sql"),
    ),
];

const POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "tenancy",
        include_str!("../migrations/postgres/0001_tenancy.sql"),
    ),
    (
        2,
        "audit",
        include_str!("../migrations/postgres/0002_audit.sql"),
    ),
    (
        3,
        "admin_tokens",
        include_str!("../migrations/postgres/0003_admin_tokens.sql"),
    ),
    (
        4,
        "usage",
        include_str!("../migrations/postgres/0004_usage.sql"),
    ),
    (
        5,
        "key_allowlists",
        include_str!("../migrations/postgres/0005_key_allowlists.sql"),
    ),
    (
        6,
        "secrets",
        include_str!("../migrations/postgres/0006_secrets.sql"),
    ),
    (
        7,
        "audit_retention",
        include_str!("../migrations/postgres/0007_audit_retention.sql"),
    ),
    (
        8,
        "tenant_servers",
        include_str!("../migrations/postgres/0008_tenant_servers.sql"),
    ),
];

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file in a migrations folder is embedded, in order, under its own version: the
    /// check `sqlx::migrate!` would do, kept without sqlx's macros.
    #[test]
    fn embedded_migrations_match_the_folders() {
        for (folder, embedded) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(folder);
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            let expected: Vec<String> = embedded
                .iter()
                .map(|(version, description, _)| format!("{version:04}_{description}.sql"))
                .collect();
            assert_eq!(files, expected, "migrations/{folder}");
            for (file, (_, _, sql)) in files.iter().zip(embedded) {
                assert_eq!(&std::fs::read_to_string(dir.join(file)).unwrap(), sql);
            }
        }
    }
}
