//! Tenants' own server definitions: create and replace with versions (optimistic
//! concurrency), the per-tenant limit, delete, tenant walls, the revision, and cascade on
//! tenant deletion.

use switchboard_domain::tenancy::Tenant;
use switchboard_store::StoreError;

use crate::fixtures::{server_def, t};
use crate::harness::Db;

both!(
    servers_round_trip_with_versions_and_walls,
    concurrent_creates_never_pass_the_limit
);

async fn servers_round_trip_with_versions_and_walls(db: Db) {
    let store = &db.store;
    for id in ["acme", "globex"] {
        store.create_tenant(&Tenant::new(t(id), id)).await.unwrap();
    }
    let acme = store.tenant(&t("acme"));
    let revision = store.revision().await.unwrap();
    let created = acme
        .put_server("crm", "first", &server_def("acme"), false, None, 2)
        .await
        .unwrap();
    assert!(created.before.is_none());
    assert_eq!(created.after.version, 1);
    assert!(
        store.revision().await.unwrap() > revision,
        "a definition is part of the directory"
    );

    // If-Match: the stored version or nothing; a stale one changes nothing.
    let stale = acme
        .put_server("crm", "stale", &server_def("acme"), false, Some(7), 2)
        .await;
    assert!(
        matches!(stale, Err(StoreError::VersionMismatch { .. })),
        "{stale:?}"
    );
    let mut changed = server_def("acme");
    changed.prefix = Some("sales".into());
    let replaced = acme
        .put_server("crm", "second", &changed, true, Some(1), 2)
        .await
        .unwrap();
    assert_eq!(replaced.before.unwrap().description, "first");
    assert_eq!(replaced.after.version, 2);
    assert_eq!(replaced.after.created_at, created.after.created_at);
    let read = acme.server("crm").await.unwrap().unwrap();
    assert_eq!(read.definition, changed);
    assert_eq!(read.description, "second");
    assert!(read.by_platform, "who wrote it is kept");
    let missing = acme
        .put_server("new", "", &server_def("acme"), false, Some(1), 2)
        .await;
    assert!(
        matches!(missing, Err(StoreError::VersionMismatch { .. })),
        "{missing:?}"
    );

    // The limit counts the tenant's own servers only.
    acme.put_server("two", "", &server_def("acme"), false, None, 2)
        .await
        .unwrap();
    let full = acme
        .put_server("three", "", &server_def("acme"), false, None, 2)
        .await;
    assert!(
        matches!(&full, Err(StoreError::Invalid(m)) if m.contains("max_per_tenant")),
        "{full:?}"
    );
    let globex = store.tenant(&t("globex"));
    globex
        .put_server("crm", "", &server_def("globex"), false, None, 2)
        .await
        .unwrap();

    // Walls: another tenant reads, replaces and deletes none of acme's.
    assert_eq!(globex.servers().await.unwrap().len(), 1);
    assert_eq!(
        globex.server("two").await.unwrap().map(|s| s.name),
        None,
        "acme's server is not globex's"
    );
    assert!(matches!(
        globex.delete_server("two", None, true).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(acme.servers().await.unwrap().len(), 2);

    // Delete with a stale version refused; then deleted; the tenant's deletion cascades.
    assert!(matches!(
        acme.delete_server("crm", Some(1), true).await,
        Err(StoreError::VersionMismatch { .. })
    ));
    // What a platform administrator wrote, nobody else changes or deletes.
    assert!(matches!(
        acme.put_server("crm", "", &server_def("acme"), false, None, 2)
            .await,
        Err(StoreError::Refused(_))
    ));
    assert!(matches!(
        acme.delete_server("crm", None, false).await,
        Err(StoreError::Refused(_))
    ));
    assert_eq!(
        acme.delete_server("crm", Some(2), true)
            .await
            .unwrap()
            .version,
        2
    );
    assert_eq!(acme.server("crm").await.unwrap(), None);
    store.delete_tenant(&t("acme")).await.unwrap();
    assert!(acme.servers().await.unwrap().is_empty());
    assert_eq!(globex.servers().await.unwrap().len(), 1);
}

/// Eight creates at once against a limit of three: exactly three are stored, whatever the
/// interleaving (on PostgreSQL each counts under the tenant's row lock).
async fn concurrent_creates_never_pass_the_limit(db: Db) {
    let store = &db.store;
    store
        .create_tenant(&Tenant::new(t("acme"), "acme"))
        .await
        .unwrap();
    let mut creates = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = store.clone();
        creates.spawn(async move {
            store
                .tenant(&t("acme"))
                .put_server(&format!("s{i}"), "", &server_def("acme"), false, None, 3)
                .await
        });
    }
    let results = creates.join_all().await;
    let stored = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(stored, 3, "{stored} of 8 creates stored under a limit of 3");
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(refused, StoreError::Invalid(m) if m.contains("max_per_tenant")),
            "{refused:?}"
        );
    }
    assert_eq!(store.tenant(&t("acme")).servers().await.unwrap().len(), 3);
}
