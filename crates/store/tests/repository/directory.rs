//! The whole-directory read, the revision counter, corrupt stored values, and concurrent
//! writers.

use std::future::Future;

use switchboard_domain::tenancy::{Effect, Grantee, Role, Tenant, TenantStatus};
use switchboard_store::{SigningKeyRow, Store, StoreError};

use crate::fixtures::{SHARED_USER, client, g, grant, issuer, key, populate, role_def, t, u};
use crate::harness::Db;
use crate::tenants::db_conn;

both!(
    directory_is_exactly_the_stored_data,
    every_write_moves_the_revision_and_no_read_does,
    corrupt_values_surface_as_corrupt,
    concurrent_writers_all_land,
);

async fn directory_is_exactly_the_stored_data(db: Db) {
    let store = &db.store;
    let acme = populate(store, "acme").await;
    let globex = populate(store, "globex").await;
    let revision = store.revision().await.unwrap();
    let directory = store.load_directory().await.unwrap();
    assert_eq!(directory.revision, revision);
    let tenants: Vec<_> = directory
        .tenants
        .into_iter()
        .map(crate::fixtures::normalized)
        .collect();
    // Exactly: expired revocations (`dead-*`) are absent, and nothing else is.
    assert_eq!(tenants, vec![acme, globex]);
}

/// Runs `write`, which must move the revision by exactly one.
async fn bumps<T: std::fmt::Debug>(
    store: &Store,
    write: impl Future<Output = Result<T, StoreError>>,
) {
    let before = store.revision().await.unwrap();
    write.await.unwrap();
    assert_eq!(store.revision().await.unwrap(), before + 1);
}

async fn every_write_moves_the_revision_and_no_read_does(db: Db) {
    let s = &db.store;
    let acme = s.tenant(&t("acme"));
    bumps(s, s.create_tenant(&Tenant::new(t("acme"), "Acme"))).await;
    bumps(s, s.update_tenant(&Tenant::new(t("acme"), "Acme Inc"), 1)).await;
    bumps(s, s.set_tenant_status(&t("acme"), TenantStatus::Trial)).await;
    bumps(s, s.upsert_user(&u(SHARED_USER), "Ada")).await;
    bumps(s, acme.add_member(&u(SHARED_USER), Role::Member)).await;
    bumps(s, acme.set_member_role(&u(SHARED_USER), Role::Admin)).await;
    bumps(s, acme.create_group(&g("eng"), "")).await;
    bumps(s, acme.add_group_member(&g("eng"), &u(SHARED_USER))).await;
    bumps(s, acme.remove_group_member(&g("eng"), &u(SHARED_USER))).await;
    bumps(s, acme.delete_group(&g("eng"))).await;
    bumps(s, acme.put_role(&role_def("graph-reader"))).await;
    bumps(s, acme.put_role(&role_def("graph-reader"))).await;
    bumps(s, acme.delete_role("graph-reader")).await;
    let before = s.revision().await.unwrap();
    let id = acme
        .add_grant(&grant(Grantee::Role(Role::Member), "*", Effect::Allow))
        .await
        .unwrap();
    assert_eq!(s.revision().await.unwrap(), before + 1);
    bumps(s, acme.remove_grant(&id)).await;
    bumps(s, acme.create_api_key(&key("acme", "acmekey00001"))).await;
    bumps(s, acme.revoke_api_key("acmekey00001", 5)).await;
    bumps(s, acme.create_client(&client("acme", "ci"))).await;
    bumps(s, acme.set_client_disabled(&client("acme", "ci").id, true)).await;
    bumps(s, acme.put_issuer(&issuer("acme"))).await;
    bumps(s, acme.remove_issuer(&issuer("acme").issuer)).await;
    bumps(s, acme.revoke_token("jti-1", i64::MAX)).await;
    let key_row = SigningKeyRow {
        kid: "k1".into(),
        algorithm: "ES256".into(),
        private_key: vec![1],
        public_jwk: "{}".into(),
        created_at: 1,
        retired_at: None,
    };
    bumps(s, s.add_signing_key(&key_row)).await;
    bumps(s, s.retire_signing_key("k1")).await;
    bumps(s, acme.remove_member(&u(SHARED_USER))).await;

    // Reads, and writes that fail, leave it alone.
    let before = s.revision().await.unwrap();
    s.load_directory().await.unwrap();
    s.list_tenants().await.unwrap();
    s.get_tenant(&t("acme")).await.unwrap();
    s.tenant_by_domain("acme.example").await.unwrap();
    s.signing_keys().await.unwrap();
    acme.members().await.unwrap();
    acme.groups().await.unwrap();
    acme.roles().await.unwrap();
    acme.grants().await.unwrap();
    acme.api_keys().await.unwrap();
    acme.clients().await.unwrap();
    acme.issuers().await.unwrap();
    assert!(
        s.create_tenant(&Tenant::new(t("acme"), "again"))
            .await
            .is_err()
    );
    assert!(
        s.update_tenant(&Tenant::new(t("acme"), "stale"), 1)
            .await
            .is_err()
    );
    assert!(acme.remove_member(&u(SHARED_USER)).await.is_err());
    assert_eq!(s.revision().await.unwrap(), before);

    bumps(s, s.delete_tenant(&t("acme"))).await;
}

async fn corrupt_values_surface_as_corrupt(db: Db) {
    let store = &db.store;
    for id in ["acme", "globex"] {
        store.create_tenant(&Tenant::new(t(id), id)).await.unwrap();
    }
    // Damage rows behind the store's back: a role name no role can have, a target no
    // pattern can be.
    let mut tx = db_conn(&db).await;
    for sql in [
        "INSERT INTO users (email, name, created_at) VALUES ('eve@x.example', '', 1)",
        "INSERT INTO memberships (tenant_id, email, role, created_at) \
         VALUES ('acme', 'eve@x.example', 'Bad Role!', 1)",
        "INSERT INTO grants (tenant_id, id, grantee_type, grantee_id, target, effect, created_at) \
         VALUES ('globex', 'g1', 'role', 'member', 'NOT A TARGET', 'allow', 1)",
    ] {
        sqlx::query(sql).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    let err = store.tenant(&t("acme")).members().await.unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { what: "role", .. }),
        "{err:?}"
    );
    let err = store.tenant(&t("globex")).grants().await.unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { what: "grant", .. }),
        "{err:?}"
    );
    let err = store.load_directory().await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("stored"), "{err}");
    // The damage is confined to what reads it.
    assert!(
        store
            .tenant(&t("globex"))
            .members()
            .await
            .unwrap()
            .is_empty()
    );
}

async fn concurrent_writers_all_land(db: Db) {
    const WRITERS: usize = 16;
    let store = db.store.clone();
    store
        .create_tenant(&Tenant::new(t("acme"), "Acme"))
        .await
        .unwrap();
    store
        .tenant(&t("acme"))
        .create_group(&g("eng"), "")
        .await
        .unwrap();
    let before = store.revision().await.unwrap();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let scope = store.tenant(&t("acme"));
                let user = u(&format!("user{i:02}@x.example"));
                // Each reads (membership check) before it writes: the pattern that fails
                // under SQLite's deferred transactions.
                scope.add_member(&user, Role::Member).await?;
                scope.add_group_member(&g("eng"), &user).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.revision().await.unwrap(), before + 2 * WRITERS as i64);
    let groups = store.tenant(&t("acme")).groups().await.unwrap();
    assert_eq!(groups[0].members.len(), WRITERS);
}
