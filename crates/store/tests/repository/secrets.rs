//! Secrets storage: ciphertext upserts with versions, metadata listings per owner, data keys
//! created once (the first writer wins), re-wrapping guarded by the old master id, tenant
//! walls, and cascade on tenant deletion.

use switchboard_domain::tenancy::Tenant;
use switchboard_store::WrappedKey;

use crate::fixtures::t;
use crate::harness::Db;

both!(secrets_and_data_keys_round_trip);

async fn secrets_and_data_keys_round_trip(db: Db) {
    let store = &db.store;
    for id in ["acme", "globex"] {
        store.create_tenant(&Tenant::new(t(id), id)).await.unwrap();
    }
    let revision = store.revision().await.unwrap();
    let acme = store.tenant(&t("acme"));
    assert!(acme.data_key().await.unwrap().is_none());
    let first = acme.create_data_key("m1", &[1, 2, 3]).await.unwrap();
    let second = acme.create_data_key("m2", &[9, 9]).await.unwrap();
    assert_eq!(
        (first.master_id.as_str(), second.master_id.as_str()),
        ("m1", "m1"),
        "the first key stands"
    );
    assert_eq!(second.wrapped, vec![1, 2, 3]);

    let meta = acme
        .put_secret("", "token", "first", &[7; 40])
        .await
        .unwrap();
    assert_eq!((meta.version, meta.name.as_str()), (1, "token"));
    let meta = acme
        .put_secret("", "token", "second", &[8; 40])
        .await
        .unwrap();
    assert_eq!((meta.version, meta.description.as_str()), (2, "second"));
    acme.put_secret("ada@acme.com", "token", "", &[5; 40])
        .await
        .unwrap();
    assert_eq!(
        acme.secret_ciphertext("", "token").await.unwrap(),
        Some(vec![8; 40])
    );
    assert_eq!(acme.secrets("").await.unwrap().len(), 1);
    assert_eq!(
        acme.secrets("ada@acme.com").await.unwrap()[0].owner,
        "ada@acme.com"
    );
    assert_eq!(
        store.revision().await.unwrap(),
        revision,
        "secrets are not part of the directory"
    );

    // Another tenant sees none of it.
    let globex = store.tenant(&t("globex"));
    assert_eq!(globex.secret_ciphertext("", "token").await.unwrap(), None);
    assert!(globex.secrets("").await.unwrap().is_empty());
    assert!(globex.delete_secret("", "token").await.is_err());

    // Re-wrapping only replaces the wrapping it expects.
    let next = WrappedKey {
        tenant: t("acme"),
        master_id: "m2".into(),
        wrapped: vec![4, 4],
    };
    assert!(!store.rewrap_key(&next, "m0").await.unwrap());
    assert!(store.rewrap_key(&next, "m1").await.unwrap());
    assert_eq!(store.wrapped_keys().await.unwrap()[0].master_id, "m2");

    acme.delete_secret("", "token").await.unwrap();
    assert_eq!(acme.secret_ciphertext("", "token").await.unwrap(), None);
    store.delete_tenant(&t("acme")).await.unwrap();
    assert!(
        store.wrapped_keys().await.unwrap().is_empty(),
        "a deleted tenant's data key goes with it"
    );
}
