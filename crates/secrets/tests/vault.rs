//! The vault on a real store: secrets round trip encrypted (never in clear in the database),
//! stay inside their tenant and owner, resolve a user's before the tenant's, and survive a
//! master-key rotation (old key as "previous" while re-wrapping, then gone).

use secrecy::{ExposeSecret, SecretString};
use switchboard_domain::tenancy::{Tenant, TenantId, UserId};
use switchboard_secrets::{Key, Keyring, Vault, VaultError};
use switchboard_store::Store;

async fn store() -> (Store, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("sb_vault_{}.db", uuid::Uuid::new_v4().simple()));
    let store = Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    for id in ["acme", "globex"] {
        store
            .create_tenant(&Tenant::new(TenantId::new(id).unwrap(), id))
            .await
            .unwrap();
    }
    (store, path)
}

fn t(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

fn key(byte: u8) -> Key {
    Key::from_bytes(&[byte; 32]).unwrap()
}

#[tokio::test]
async fn secrets_round_trip_encrypted_and_stay_in_their_place() {
    let (store, path) = store().await;
    let vault = Vault::new(store.clone(), Keyring::new(key(1), Vec::new()));
    let ada = UserId::new("ada@acme.com").unwrap();
    let meta = vault
        .put(
            &t("acme"),
            None,
            "github_token",
            "org token",
            &secret("ghp_tenant_value"),
        )
        .await
        .unwrap();
    assert_eq!(
        (meta.version, meta.description.as_str(), meta.owner.as_str()),
        (1, "org token", "")
    );
    vault
        .put(
            &t("acme"),
            Some(&ada),
            "github_token",
            "",
            &secret("ghp_ada_value"),
        )
        .await
        .unwrap();
    let again = vault
        .put(
            &t("acme"),
            None,
            "github_token",
            "rotated",
            &secret("ghp_tenant_v2"),
        )
        .await
        .unwrap();
    assert_eq!(again.version, 2);

    let get = |tenant: &'static str, user: Option<UserId>, name: &'static str| {
        let vault = &vault;
        async move {
            vault
                .get(&t(tenant), user.as_ref(), name)
                .await
                .unwrap()
                .map(|s| s.expose_secret().to_owned())
        }
    };
    assert_eq!(
        get("acme", None, "github_token").await.as_deref(),
        Some("ghp_tenant_v2")
    );
    assert_eq!(
        get("acme", Some(ada.clone()), "github_token")
            .await
            .as_deref(),
        Some("ghp_ada_value")
    );
    assert_eq!(
        get("globex", None, "github_token").await,
        None,
        "another tenant sees nothing"
    );
    // The user's own secret wins; others fall back to the tenant's.
    let bob = UserId::new("bob@acme.com").unwrap();
    let resolved = vault
        .resolve(&t("acme"), Some(&bob), "github_token")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resolved.expose_secret(), "ghp_tenant_v2");
    let resolved = vault
        .resolve(&t("acme"), Some(&ada), "github_token")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resolved.expose_secret(), "ghp_ada_value");

    // Listing shows names and metadata only; the database holds no value in clear.
    let listed = vault.list(&t("acme"), None).await.unwrap();
    assert_eq!(listed.len(), 1);
    let raw = std::fs::read(&path).unwrap();
    for value in ["ghp_tenant_v2", "ghp_ada_value", "ghp_tenant_value"] {
        assert!(
            !raw.windows(value.len()).any(|w| w == value.as_bytes()),
            "{value} in clear"
        );
    }
    // Names and values are checked.
    assert!(matches!(
        vault
            .put(&t("acme"), None, "bad name", "", &secret("x"))
            .await,
        Err(VaultError::BadName(_))
    ));
    assert!(matches!(
        vault.put(&t("acme"), None, "empty", "", &secret("")).await,
        Err(VaultError::BadValue)
    ));
    vault
        .delete(&t("acme"), None, "github_token")
        .await
        .unwrap();
    assert_eq!(get("acme", None, "github_token").await, None);
    assert!(
        vault
            .delete(&t("acme"), None, "github_token")
            .await
            .is_err()
    );
    std::fs::remove_file(path).ok();
}

#[tokio::test]
async fn a_master_key_rotation_rewraps_data_keys_without_downtime() {
    let (store, path) = store().await;
    let old = Vault::new(store.clone(), Keyring::new(key(1), Vec::new()));
    old.put(&t("acme"), None, "token", "", &secret("value-1"))
        .await
        .unwrap();
    old.put(&t("globex"), None, "token", "", &secret("value-2"))
        .await
        .unwrap();

    // Step 1: every replica runs with the new key as primary and the old as previous.
    let rolling = Vault::new(store.clone(), Keyring::new(key(2), vec![key(1)]));
    assert_eq!(
        rolling
            .get(&t("acme"), None, "token")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        "value-1"
    );
    // Step 2: re-wrap (twice is harmless).
    let report = rolling.rotate().await.unwrap();
    assert_eq!((report.rewrapped, report.already_current), (2, 0));
    assert_eq!(rolling.rotate().await.unwrap().rewrapped, 0);
    // Step 3: the old key is gone; everything still opens.
    let new = Vault::new(store.clone(), Keyring::new(key(2), Vec::new()));
    assert_eq!(
        new.get(&t("globex"), None, "token")
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        "value-2"
    );
    // A gateway still on the old key alone cannot read them (and says why).
    let stale = Vault::new(store.clone(), Keyring::new(key(1), Vec::new()));
    let err = stale.get(&t("acme"), None, "token").await.unwrap_err();
    assert!(matches!(err, VaultError::UnknownMaster { .. }), "{err}");
    assert!(err.to_string().contains("previous_master_key_files"));
    std::fs::remove_file(path).ok();
}

#[tokio::test]
async fn a_tenant_created_again_gets_a_new_data_key_not_the_cached_one() {
    let (store, path) = store().await;
    let vault = Vault::new(store.clone(), Keyring::new(key(1), Vec::new()));
    vault
        .put(&t("acme"), None, "token", "", &secret("first life"))
        .await
        .unwrap();
    // The same id, deleted and created again (perhaps by another replica): a new data key.
    store.delete_tenant(&t("acme")).await.unwrap();
    store
        .create_tenant(&Tenant::new(t("acme"), "Acme again"))
        .await
        .unwrap();
    assert_eq!(
        vault
            .get(&t("acme"), None, "token")
            .await
            .unwrap()
            .map(|s| s.expose_secret().to_owned()),
        None
    );
    vault
        .put(&t("acme"), None, "token", "", &secret("second life"))
        .await
        .unwrap();
    // A fresh vault (another replica) reads what this one wrote: it used the stored key.
    let other = Vault::new(store.clone(), Keyring::new(key(1), Vec::new()));
    let value = other.get(&t("acme"), None, "token").await.unwrap().unwrap();
    assert_eq!(value.expose_secret(), "second life");
    std::fs::remove_file(path).ok();
}
