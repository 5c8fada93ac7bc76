//! Opening a store: URL schemes, file creation, reopening, and errors that say what to fix
//! without showing a password.

use switchboard_domain::tenancy::Tenant;
use switchboard_store::{Backend, Store};

use crate::fixtures::t;

#[tokio::test]
async fn unsupported_urls_name_the_fix() {
    let err = Store::connect("mysql://u:secret@h/db")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unsupported database URL scheme 'mysql'") && err.contains("sqlite://PATH"),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
    let err = Store::connect("/var/lib/switchboard.db")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no scheme"), "{err}");
}

#[tokio::test]
async fn postgres_errors_never_show_the_password() {
    for url in [
        "postgres://u:hunter2@127.0.0.1:1/db",
        "postgresql://u@127.0.0.1:1/db?password=hunter2",
    ] {
        let err = Store::connect(url).await.unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("cannot connect to PostgreSQL at"), "{err}");
    }
}

#[tokio::test]
async fn sqlite_files_are_created_and_reopened() {
    let dir = std::env::temp_dir().join(format!("sb_store_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    // A path that merely mentions "memory" is still a file.
    let path = dir.join("memory.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store
        .create_tenant(&Tenant::new(t("acme"), "Acme"))
        .await
        .unwrap();
    drop(store);
    assert!(path.exists());
    // Reopening runs no migration twice and keeps the data.
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.list_tenants().await.unwrap().len(), 1);
    // The journal is WAL, so readers and the writer do not block each other.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    pool.close().await;
    drop(store);
    // A folder that does not exist is named in the error.
    let missing = dir.join("no-such-folder").join("x.db");
    let err = Store::connect(&format!("sqlite://{}", missing.display()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot open SQLite database at") && err.contains("no-such-folder"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn sqlite_memory_keeps_its_data_across_calls() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    store
        .create_tenant(&Tenant::new(t("acme"), "Acme"))
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(store.list_tenants().await.unwrap().len(), 1);
    }
}
