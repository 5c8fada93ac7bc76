//! Tenants: round trip, domains, conflicts, optimistic concurrency, status, cascade delete.

use switchboard_domain::tenancy::{Plan, Role, Tenant, TenantStatus};
use switchboard_store::{StoreError, TenantFilter};

use crate::fixtures::{SHARED_USER, entry, key, populate, t, u};
use crate::harness::{Db, Engine};

both!(
    tenant_round_trip,
    duplicates_conflict,
    stale_versions_are_refused,
    deleting_a_tenant_removes_everything_it_owns,
    tenant_pages_follow_ids_with_filters,
    platform_admin_tokens_round_trip_and_revoke,
);

async fn tenant_pages_follow_ids_with_filters(db: Db) {
    let store = &db.store;
    for (id, plan) in [
        ("c-co", Plan::Free),
        ("a-co", Plan::Pro),
        ("b-co", Plan::Pro),
        ("d-co", Plan::Free),
    ] {
        let mut tenant = Tenant::new(t(id), id);
        tenant.plan = plan;
        tenant.domains = vec![format!("{id}.example.com")];
        store.create_tenant(&tenant).await.unwrap();
    }
    let all = TenantFilter::default();
    let first = store.tenants_page(None, 3, &all).await.unwrap();
    let ids: Vec<&str> = first.iter().map(|(t, _)| t.id.as_str()).collect();
    assert_eq!(ids, ["a-co", "b-co", "c-co"]);
    assert_eq!(
        first[1].0.domains,
        vec!["b-co.example.com".to_owned()],
        "each page carries its domains"
    );
    assert!(first.iter().all(|(_, version)| *version == 1));
    let rest = store.tenants_page(Some("c-co"), 3, &all).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].0.id.as_str(), "d-co");
    assert!(
        store
            .tenants_page(Some("d-co"), 3, &all)
            .await
            .unwrap()
            .is_empty()
    );
    let pro = TenantFilter {
        plan: Some(Plan::Pro),
        status: None,
    };
    let ids: Vec<String> = store
        .tenants_page(None, 10, &pro)
        .await
        .unwrap()
        .into_iter()
        .map(|(t, _)| t.id.to_string())
        .collect();
    assert_eq!(ids, ["a-co", "b-co"]);
    store
        .set_tenant_status(&t("d-co"), TenantStatus::Suspended)
        .await
        .unwrap();
    let suspended = TenantFilter {
        status: Some(TenantStatus::Suspended),
        plan: None,
    };
    let page = store.tenants_page(None, 10, &suspended).await.unwrap();
    assert_eq!(
        (page.len(), page[0].1),
        (1, 2),
        "the status change bumped the version"
    );
}

async fn platform_admin_tokens_round_trip_and_revoke(db: Db) {
    let store = &db.store;
    let before = store.revision().await.unwrap();
    store
        .create_admin_token("abcdefghijkm", "bootstrap", &[1, 2, 3])
        .await
        .unwrap();
    assert!(store.revision().await.unwrap() > before);
    assert!(matches!(
        store
            .create_admin_token("abcdefghijkm", "again", &[4])
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let row = store.admin_token("abcdefghijkm").await.unwrap().unwrap();
    assert_eq!(
        (row.name.as_str(), row.hash.as_slice(), row.revoked_at),
        ("bootstrap", &[1u8, 2, 3][..], None)
    );
    assert!(
        !format!("{row:?}").contains("hash"),
        "Debug leaves the hash out"
    );
    store.revoke_admin_token("abcdefghijkm").await.unwrap();
    let revoked = store
        .admin_token("abcdefghijkm")
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .unwrap();
    store.revoke_admin_token("abcdefghijkm").await.unwrap();
    assert_eq!(
        store
            .admin_token("abcdefghijkm")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(revoked),
        "the first revocation stands"
    );
    assert!(matches!(
        store.revoke_admin_token("nope").await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.admin_tokens().await.unwrap().len(), 1);
    assert!(store.admin_token("nope").await.unwrap().is_none());
}

async fn tenant_round_trip(db: Db) {
    let store = &db.store;
    let mut acme = Tenant::new(t("acme"), "Acme Inc");
    acme.plan = Plan::Pro;
    acme.status = TenantStatus::Trial;
    acme.domains = vec!["acme.example.com".into(), "mcp.acme.example".into()];
    acme.settings.max_sessions_per_user = Some(3);
    acme.settings.ip_allowlist = vec!["10.0.0.0/8".into()];
    store.create_tenant(&acme).await.unwrap();
    store
        .create_tenant(&Tenant::new(t("globex"), "Globex"))
        .await
        .unwrap();
    assert_eq!(
        store.get_tenant(&t("acme")).await.unwrap(),
        Some(acme.clone())
    );
    assert_eq!(
        store.get_tenant_versioned(&t("acme")).await.unwrap(),
        Some((acme.clone(), 1))
    );
    assert_eq!(store.get_tenant(&t("nope")).await.unwrap(), None);
    let all = store.list_tenants().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], acme);
    assert_eq!(all[1].id, t("globex"));
    // Host names match case-insensitively; unknown ones resolve to nothing.
    assert_eq!(
        store.tenant_by_domain("ACME.example.com").await.unwrap(),
        Some(t("acme"))
    );
    assert_eq!(store.tenant_by_domain("other.example").await.unwrap(), None);
    // Domains are host names.
    let mut bad = Tenant::new(t("bad"), "Bad");
    bad.domains = vec!["not a host".into()];
    assert!(matches!(
        store.create_tenant(&bad).await,
        Err(StoreError::Invalid(_))
    ));
    store
        .set_tenant_status(&t("acme"), TenantStatus::Suspended)
        .await
        .unwrap();
    let (loaded, version) = store
        .get_tenant_versioned(&t("acme"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.status, TenantStatus::Suspended);
    assert_eq!(version, 2, "a status change is a new version");
    assert!(matches!(
        store
            .set_tenant_status(&t("nope"), TenantStatus::Active)
            .await,
        Err(StoreError::NotFound { what: "tenant", .. })
    ));
    assert!(matches!(
        store.delete_tenant(&t("nope")).await,
        Err(StoreError::NotFound { what: "tenant", .. })
    ));
}

async fn duplicates_conflict(db: Db) {
    let store = &db.store;
    let mut acme = Tenant::new(t("acme"), "Acme");
    acme.domains = vec!["acme.example.com".into()];
    store.create_tenant(&acme).await.unwrap();
    let err = store.create_tenant(&acme).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { what: "tenant", id } if id == "acme"),
        "{err:?}"
    );
    // A domain belongs to one tenant; the refused tenant is not half-created.
    let mut globex = Tenant::new(t("globex"), "Globex");
    globex.domains = vec!["acme.example.com".into()];
    assert!(matches!(
        store.create_tenant(&globex).await,
        Err(StoreError::Conflict { what: "domain", .. })
    ));
    assert_eq!(store.get_tenant(&t("globex")).await.unwrap(), None);
    globex.domains.clear();
    store.create_tenant(&globex).await.unwrap();
    // API key ids are unique across tenants.
    let acme_scope = store.tenant(&t("acme"));
    acme_scope
        .create_api_key(&key("acme", "key000000001"))
        .await
        .unwrap();
    let err = store
        .tenant(&t("globex"))
        .create_api_key(&key("globex", "key000000001"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { what: "API key", id } if id == "key000000001"),
        "{err:?}"
    );
    assert_eq!(store.tenant(&t("globex")).api_keys().await.unwrap(), vec![]);
    acme_scope
        .add_member(&u(SHARED_USER), Role::Member)
        .await
        .unwrap();
    assert!(matches!(
        acme_scope.add_member(&u(SHARED_USER), Role::Owner).await,
        Err(StoreError::Conflict { what: "member", .. })
    ));
}

async fn stale_versions_are_refused(db: Db) {
    let store = &db.store;
    let mut acme = Tenant::new(t("acme"), "Acme");
    acme.domains = vec!["old.example".into()];
    store.create_tenant(&acme).await.unwrap();
    // Two editors read version 1; the first to write wins.
    let mut first = acme.clone();
    first.name = "Acme Corp".into();
    first.domains = vec!["new.example".into()];
    first.plan = Plan::Enterprise;
    assert_eq!(store.update_tenant(&first, 1).await.unwrap(), 2);
    let mut second = acme.clone();
    second.name = "Stale".into();
    let err = store.update_tenant(&second, 1).await.unwrap_err();
    assert!(
        matches!(err, StoreError::VersionMismatch { expected: 1, .. }),
        "{err:?}"
    );
    assert_eq!(
        store.get_tenant(&t("acme")).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.tenant_by_domain("old.example").await.unwrap(), None);
    assert_eq!(
        store.tenant_by_domain("new.example").await.unwrap(),
        Some(t("acme"))
    );
    // A status change also moves the version, so an edit based on the old one is stale.
    store
        .set_tenant_status(&t("acme"), TenantStatus::Suspended)
        .await
        .unwrap();
    assert!(matches!(
        store.update_tenant(&first, 2).await,
        Err(StoreError::VersionMismatch { .. })
    ));
    assert_eq!(store.update_tenant(&first, 3).await.unwrap(), 4);
    assert!(matches!(
        store.update_tenant(&Tenant::new(t("nope"), "N"), 1).await,
        Err(StoreError::NotFound { what: "tenant", .. })
    ));
}

async fn deleting_a_tenant_removes_everything_it_owns(db: Db) {
    let store = &db.store;
    populate(store, "acme").await;
    let globex = populate(store, "globex").await;
    store.delete_tenant(&t("acme")).await.unwrap();
    assert_eq!(store.get_tenant(&t("acme")).await.unwrap(), None);
    assert_eq!(
        store.tenant_by_domain("acme.example.com").await.unwrap(),
        None
    );
    // Count with raw SQL, under the platform scope, so no store filter hides a leftover.
    let mut conn = db_conn(&db).await;
    for (table, column) in [
        ("tenants", "id"),
        ("tenant_domains", "tenant_id"),
        ("memberships", "tenant_id"),
        ("custom_roles", "tenant_id"),
        ("tenant_groups", "tenant_id"),
        ("group_members", "tenant_id"),
        ("grants", "tenant_id"),
        ("api_keys", "tenant_id"),
        ("service_clients", "tenant_id"),
        ("issuers", "tenant_id"),
        ("revoked_tokens", "tenant_id"),
    ] {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = 'acme'");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} keeps rows of a deleted tenant");
    }
    conn.commit().await.unwrap();
    // The other tenant is untouched, and users are global: the shared one stays.
    assert_eq!(entry(store, "globex").await, Some(globex));
    assert_eq!(
        store.tenant(&t("globex")).members().await.unwrap()[0].user,
        u(SHARED_USER)
    );
}

/// A raw transaction on the case's database with the platform scope set.
pub async fn db_conn(db: &Db) -> sqlx::Transaction<'static, sqlx::Any> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    if db.engine == Engine::Postgres {
        sqlx::query("SELECT set_config('switchboard.scope', 'platform', true)")
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx
}
