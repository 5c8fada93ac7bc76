//! Tenant walls: one tenant's scope neither sees nor changes another's rows. Every attempt
//! reads as "not found" (or an empty list), and the other tenant's data is unchanged.

use switchboard_domain::tenancy::{ClientId, Effect, Grantee, Role};
use switchboard_store::StoreError;

use crate::fixtures::{SHARED_USER, client, entry, grant, issuer, key, populate, t, u};
use crate::harness::Db;

both!(tenants_cannot_touch_each_other);

async fn tenants_cannot_touch_each_other(db: Db) {
    let store = &db.store;
    let acme_before = populate(store, "acme").await;
    store
        .create_tenant(&switchboard_domain::tenancy::Tenant::new(
            t("globex"),
            "Globex",
        ))
        .await
        .unwrap();
    let acme = store.tenant(&t("acme"));
    let globex = store.tenant(&t("globex"));
    let acme_grant = acme.grants().await.unwrap()[0].0.clone();
    let revision = store.revision().await.unwrap();

    // Nothing of acme's is visible from globex.
    assert!(globex.members().await.unwrap().is_empty());
    assert!(globex.groups().await.unwrap().is_empty());
    assert!(globex.roles().await.unwrap().is_empty());
    assert!(globex.grants().await.unwrap().is_empty());
    assert!(globex.api_keys().await.unwrap().is_empty());
    assert!(globex.clients().await.unwrap().is_empty());
    assert!(globex.issuers().await.unwrap().is_empty());

    // Every change aimed at acme's objects is "not found", exactly like a missing object.
    let not_found = |r: Result<(), StoreError>| matches!(r, Err(StoreError::NotFound { .. }));
    let eng = crate::fixtures::g("eng");
    let ci = ClientId::new("ci").unwrap();
    assert!(not_found(globex.revoke_api_key("acmekey0001", 1).await));
    assert!(not_found(globex.remove_grant(&acme_grant).await));
    assert!(not_found(globex.remove_member(&u(SHARED_USER)).await));
    assert!(not_found(
        globex.set_member_role(&u(SHARED_USER), Role::Owner).await
    ));
    assert!(not_found(globex.delete_group(&eng).await));
    assert!(not_found(
        globex.add_group_member(&eng, &u(SHARED_USER)).await
    ));
    assert!(not_found(
        globex.remove_group_member(&eng, &u(SHARED_USER)).await
    ));
    assert!(not_found(globex.delete_role("graph-reader").await));
    assert!(not_found(globex.set_client_disabled(&ci, true).await));
    assert!(not_found(
        globex.remove_issuer(&issuer("acme").issuer).await
    ));
    // Records that name acme are refused outright from globex's scope.
    let invalid = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Invalid(_)));
    assert!(invalid(
        globex.create_api_key(&key("acme", "sneaky000001")).await
    ));
    assert!(invalid(
        globex.create_client(&client("acme", "sneaky")).await
    ));
    assert!(invalid(globex.put_issuer(&issuer("acme")).await));
    assert_eq!(
        store.revision().await.unwrap(),
        revision,
        "nothing was written"
    );

    // globex may use the same names for its own objects without touching acme's.
    globex
        .add_member(&u(SHARED_USER), Role::Owner)
        .await
        .unwrap();
    globex
        .create_group(&eng, "Globex engineering")
        .await
        .unwrap();
    globex
        .add_group_member(&eng, &u(SHARED_USER))
        .await
        .unwrap();
    globex.create_client(&client("globex", "ci")).await.unwrap();
    globex
        .add_grant(&grant(Grantee::Role(Role::Owner), "*", Effect::Deny))
        .await
        .unwrap();
    globex
        .remove_group_member(&eng, &u(SHARED_USER))
        .await
        .unwrap();
    globex.delete_group(&eng).await.unwrap();
    globex.remove_member(&u(SHARED_USER)).await.unwrap();
    globex.set_client_disabled(&ci, true).await.unwrap();

    assert_eq!(entry(store, "acme").await, Some(acme_before));
    assert_eq!(acme.members().await.unwrap().len(), 2);
}
