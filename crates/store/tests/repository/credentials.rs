//! API keys, service clients, trusted issuers, revoked tokens and signing keys.

use switchboard_domain::tenancy::{KeyOwner, Role, Tenant};
use switchboard_store::{SigningKeyRow, StoreError};

use crate::fixtures::{client, issuer, key, t};
use crate::harness::Db;

both!(
    api_keys_round_trip,
    clients_and_issuers_round_trip,
    signing_keys_round_trip,
);

async fn two_tenants(db: &Db) {
    for id in ["acme", "globex"] {
        db.store
            .create_tenant(&Tenant::new(t(id), id))
            .await
            .unwrap();
    }
}

async fn api_keys_round_trip(db: Db) {
    two_tenants(&db).await;
    let acme = db.store.tenant(&t("acme"));
    let old = key("acme", "acmekey00001");
    let mut new = key("acme", "acmekey00002");
    new.owner = KeyOwner::Client(client("acme", "ci").id);
    new.restrictions = vec![];
    new.expires_at = None;
    new.hash = (0..=255).collect();
    new.created_at = 200;
    acme.create_api_key(&old).await.unwrap();
    acme.create_api_key(&new).await.unwrap();
    // Newest first.
    assert_eq!(
        acme.api_keys().await.unwrap(),
        vec![new.clone(), old.clone()]
    );
    acme.revoke_api_key("acmekey00001", 77).await.unwrap();
    // Revoking again keeps the first time (and is not an error).
    let revision = db.store.revision().await.unwrap();
    acme.revoke_api_key("acmekey00001", 99).await.unwrap();
    assert_eq!(db.store.revision().await.unwrap(), revision);
    let keys = acme.api_keys().await.unwrap();
    assert_eq!(keys[1].revoked_at, Some(77));
    assert_eq!(keys[0].revoked_at, None);
    assert!(matches!(
        acme.revoke_api_key("nokey0000001", 1).await,
        Err(StoreError::NotFound {
            what: "API key",
            ..
        })
    ));
    // A record of another tenant is refused before it reaches the database.
    let err = db
        .store
        .tenant(&t("globex"))
        .create_api_key(&key("acme", "sneaky000001"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert_eq!(acme.api_keys().await.unwrap().len(), 2);
}

async fn clients_and_issuers_round_trip(db: Db) {
    two_tenants(&db).await;
    let acme = db.store.tenant(&t("acme"));
    let mut ci = client("acme", "ci");
    let mut bot = client("acme", "bot");
    bot.role = Role::Custom("graph-reader".into());
    bot.disabled = true;
    acme.create_client(&ci).await.unwrap();
    acme.create_client(&bot).await.unwrap();
    assert!(matches!(
        acme.create_client(&ci).await,
        Err(StoreError::Conflict {
            what: "service client",
            ..
        })
    ));
    assert_eq!(acme.clients().await.unwrap(), vec![bot.clone(), ci.clone()]);
    acme.set_client_disabled(&ci.id, true).await.unwrap();
    acme.set_client_disabled(&bot.id, false).await.unwrap();
    ci.disabled = true;
    bot.disabled = false;
    assert_eq!(acme.clients().await.unwrap(), vec![bot, ci]);
    assert!(matches!(
        acme.set_client_disabled(&client("acme", "nope").id, true)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        db.store
            .tenant(&t("globex"))
            .create_client(&client("acme", "x"))
            .await,
        Err(StoreError::Invalid(_))
    ));

    let mut idp = issuer("acme");
    acme.put_issuer(&idp).await.unwrap();
    assert_eq!(acme.issuers().await.unwrap(), vec![idp.clone()]);
    // put_issuer replaces the whole configuration.
    idp.jwks_url = None;
    idp.jwks = Some(r#"{"keys":[]}"#.into());
    idp.default_role = None;
    idp.audiences.clear();
    acme.put_issuer(&idp).await.unwrap();
    assert_eq!(acme.issuers().await.unwrap(), vec![idp.clone()]);
    assert!(matches!(
        db.store.tenant(&t("globex")).put_issuer(&idp).await,
        Err(StoreError::Invalid(_))
    ));
    acme.remove_issuer(&idp.issuer).await.unwrap();
    assert!(acme.issuers().await.unwrap().is_empty());
    assert!(matches!(
        acme.remove_issuer(&idp.issuer).await,
        Err(StoreError::NotFound { what: "issuer", .. })
    ));
}

async fn signing_keys_round_trip(db: Db) {
    let store = &db.store;
    let first = SigningKeyRow {
        kid: "k1".into(),
        algorithm: "ES256".into(),
        private_key: vec![48, 129, 135, 2, 1, 0],
        public_jwk: r#"{"kty":"EC","crv":"P-256"}"#.into(),
        created_at: 5,
        retired_at: None,
    };
    let second = SigningKeyRow {
        kid: "k2".into(),
        created_at: 6,
        retired_at: Some(7),
        ..first.clone()
    };
    store.add_signing_key(&second).await.unwrap();
    store.add_signing_key(&first).await.unwrap();
    assert!(matches!(
        store.add_signing_key(&first).await,
        Err(StoreError::Conflict {
            what: "signing key",
            ..
        })
    ));
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].kid, "k1", "oldest first");
    assert_eq!(keys[0].private_key, first.private_key);
    assert_eq!(keys[0].public_jwk, first.public_jwk);
    assert_eq!(keys[1].retired_at, Some(7));
    let shown = format!("{:?}", keys[0]);
    assert!(
        !shown.contains("48, 129") && shown.contains("redacted"),
        "{shown}"
    );
    store.retire_signing_key("k1").await.unwrap();
    let retired_at = store.signing_keys().await.unwrap()[0].retired_at;
    assert!(retired_at.is_some());
    // Retiring again keeps the first time.
    store.retire_signing_key("k1").await.unwrap();
    assert_eq!(
        store.signing_keys().await.unwrap()[0].retired_at,
        retired_at
    );
    assert!(matches!(
        store.retire_signing_key("nope").await,
        Err(StoreError::NotFound { .. })
    ));
}
