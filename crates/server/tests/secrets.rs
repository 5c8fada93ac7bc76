//! Secrets through the real server: write-only tenant and user secrets in the admin API
//! (values never in an answer, the audit trail or the database file), roles and tenant walls,
//! the vault resolving a user's secret before the tenant's, and a master-key rotation with
//! `switchboard secrets rotate-key` while the data stays readable.

mod support;

use serde_json::{Value, json};
use support::admin::{Api, PLATFORM};
use support::tenancy::{Backend, HASHING_SECRET, TestDb};
use support::{TestGateway, switchboard_bin, temp_dir};
use switchboard_domain::tenancy::{TenantId, UserId};

const VALUE: &str = "ghp_tenant-secret-value-0001";
const ADA_VALUE: &str = "ghp_ada-own-secret-value-0002";

async fn call(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    Api::new(base).raw(token, method, path, body).await
}

async fn key_for(base: &str, tenant: &str, user: &str) -> String {
    Api::new(base).user_key(tenant, user).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_write_only_scoped_and_survive_a_key_rotation() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let data = temp_dir("secrets-data");
    let server = format!("data_dir = {:?}\n", data.display().to_string());
    let config = format!("{}[admin]\ntoken = {PLATFORM:?}\n", db.toml());
    let mut gw = TestGateway::start(&server, &config).await;
    let base = gw.base.clone();
    use reqwest::Method as M;
    for (id, owner) in [("acme", "root@acme.com"), ("globex", "boss@globex.com")] {
        let (status, _) = call(
            &base,
            PLATFORM,
            M::POST,
            "/tenants",
            Some(json!({"id": id, "name": id, "owner": owner})),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (status, _) = call(
        &base,
        PLATFORM,
        M::POST,
        "/tenants/acme/members",
        Some(json!({"user": "ada@acme.com"})),
    )
    .await;
    assert_eq!(status, 201);
    let root = key_for(&base, "acme", "root@acme.com").await;
    let ada = key_for(&base, "acme", "ada@acme.com").await;
    let boss = key_for(&base, "globex", "boss@globex.com").await;

    // The owner sets the tenant's secret: 201, then 200 with a new version; no value back.
    let (status, text) = call(
        &base,
        &root,
        M::PUT,
        "/tenants/acme/secrets/github_token",
        Some(json!({"value": "first", "description": "org"})),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let (status, text) = call(
        &base,
        &root,
        M::PUT,
        "/tenants/acme/secrets/github_token",
        Some(json!({"value": VALUE, "description": "org"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["version"], 2);
    let (_, listed) = call(&base, &root, M::GET, "/tenants/acme/secrets", None).await;
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["items"][0]["name"], "github_token");
    assert!(!listed.to_string().contains(VALUE) && !text.contains(VALUE));

    // A member cannot touch the tenant's secrets but keeps their own.
    assert_eq!(
        call(
            &base,
            &ada,
            M::PUT,
            "/tenants/acme/secrets/x",
            Some(json!({"value": "v"}))
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(&base, &ada, M::GET, "/tenants/acme/secrets", None)
            .await
            .0,
        403
    );
    let (status, _) = call(
        &base,
        &ada,
        M::PUT,
        "/me/secrets/github_token",
        Some(json!({"value": ADA_VALUE})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, mine) = call(&base, &ada, M::GET, "/me/secrets", None).await;
    assert_eq!(
        serde_json::from_str::<Value>(&mine).unwrap()["items"][0]["owner"],
        "ada@acme.com"
    );
    // Another tenant: 404. The platform has no secrets of its own. Bad input: 422 naming it.
    assert_eq!(
        call(&base, &boss, M::GET, "/tenants/acme/secrets", None)
            .await
            .0,
        404
    );
    assert_eq!(
        call(
            &base,
            &boss,
            M::DELETE,
            "/tenants/acme/secrets/github_token",
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(
            &base,
            PLATFORM,
            M::PUT,
            "/me/secrets/x",
            Some(json!({"value": "v"}))
        )
        .await
        .0,
        403
    );
    let (status, text) = call(
        &base,
        &root,
        M::PUT,
        "/tenants/acme/secrets/bad%20name",
        Some(json!({"value": "v"})),
    )
    .await;
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("\"field\":\"name\""), "{text}");
    let (status, text) = call(
        &base,
        &root,
        M::PUT,
        "/tenants/acme/secrets/empty",
        Some(json!({"value": ""})),
    )
    .await;
    assert_eq!(
        (status, text.contains("\"field\":\"value\"")),
        (422, true),
        "{text}"
    );

    // The vault (what upstream calls will use): a user's own secret first, else the tenant's.
    let gateway_config = switchboard_server::config::Config::from_toml(
        &format!("[server]\n{server}{config}"),
        Vec::new(),
    )
    .unwrap();
    let store = gw.tenancy().store.clone();
    let vault = switchboard_server::secrets::vault(&gateway_config, &store).unwrap();
    let acme = TenantId::new("acme").unwrap();
    let resolve = |user: &str| {
        let (vault, acme) = (vault.clone(), acme.clone());
        let user = UserId::new(user).unwrap();
        async move {
            use secrecy::ExposeSecret;
            vault
                .resolve(&acme, Some(&user), "github_token")
                .await
                .unwrap()
                .unwrap()
                .expose_secret()
                .to_owned()
        }
    };
    assert_eq!(resolve("ada@acme.com").await, ADA_VALUE);
    assert_eq!(resolve("bob@acme.com").await, VALUE);

    // Never in the audit trail or the database file.
    let records = store.audit_page("acme", 0, 1000).await.unwrap();
    assert!(records.iter().any(|r| r.event.reason == "secret.set"));
    for record in &records {
        assert!(!record.event.detail.contains(VALUE) && !record.event.detail.contains(ADA_VALUE));
    }
    let db_file = db.url.trim_start_matches("sqlite://");
    let raw = std::fs::read(db_file).unwrap();
    assert!(
        !raw.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()),
        "a value in clear in the database"
    );
    // The CLI: the value from a file (never the command line), listings without values.
    let value_file = data.join("value.txt");
    std::fs::write(&value_file, "cli-value\n").unwrap();
    let admin_cli = |token: &str, args: &[&str]| {
        std::process::Command::new(switchboard_bin())
            .arg("admin")
            .args(args)
            .env("SWITCHBOARD_ADMIN_URL", &base)
            .env("SWITCHBOARD_ADMIN_TOKEN", token)
            .output()
            .unwrap()
    };
    let out = admin_cli(
        &root,
        &[
            "secrets",
            "set",
            "--tenant",
            "acme",
            "cli_token",
            "--value-file",
            &value_file.display().to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = admin_cli(&ada, &["secrets", "list", "--mine"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("github_token") && !text.contains(ADA_VALUE),
        "{text}"
    );
    let value = vault
        .resolve(&acme, None, "cli_token")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&value),
        "cli-value",
        "the final newline is not part of it"
    );
    gw.stop().await;

    // Rotation: a new master key, the old one as previous, rotate-key, then the old one gone.
    let new_key = data.join("master-2.key");
    std::fs::write(&new_key, "ab".repeat(32)).unwrap();
    let rotate = std::process::Command::new(switchboard_bin())
        .args(["secrets", "rotate-key"])
        .env("SWITCHBOARD_DATABASE_URL", &db.url)
        .env("SWITCHBOARD_AUTH__KEY_HASHING_SECRET", HASHING_SECRET)
        .env("SWITCHBOARD_SERVER__DATA_DIR", data.display().to_string())
        .env(
            "SWITCHBOARD_SECRETS__MASTER_KEY_FILE",
            new_key.display().to_string(),
        )
        .env(
            "SWITCHBOARD_SECRETS__PREVIOUS_MASTER_KEY_FILES",
            format!("[{:?}]", data.join("master.key").display().to_string()),
        )
        .env("SWITCHBOARD_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        rotate.status.success(),
        "{}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    let said = String::from_utf8_lossy(&rotate.stdout);
    assert!(
        said.contains("re-wrapped 1 data key") && said.contains("re-sealed 1 token signing key"),
        "{said}"
    );
    let rotated = format!(
        "[server]\n{server}{config}[secrets]\nmaster_key_file = {:?}\n",
        new_key.display().to_string()
    );
    let rotated = switchboard_server::config::Config::from_toml(&rotated, Vec::new()).unwrap();
    let store = switchboard_store::Store::connect(&db.url).await.unwrap();
    let vault = switchboard_server::secrets::vault(&rotated, &store).unwrap();
    let value = vault
        .resolve(&acme, None, "github_token")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secrecy::ExposeSecret::expose_secret(&value), VALUE);

    // The token signing key is sealed under the master key (now the new one), and opens
    // with the new key alone; a key stored in the clear by an earlier version is sealed at
    // the next load.
    let keyring = switchboard_server::secrets::keyring(&rotated).unwrap();
    let sealed = store.signing_keys().await.unwrap();
    assert!(sealed.iter().all(|k| k.private_key.starts_with(b"SBK1")));
    let (kid, pkcs8, public_jwk) = switchboard_auth::generate_signing_key().unwrap();
    store
        .add_signing_key(&switchboard_store::SigningKeyRow {
            kid: kid.clone(),
            algorithm: "ES256".into(),
            private_key: pkcs8.clone(),
            public_jwk,
            created_at: 1,
            retired_at: None,
        })
        .await
        .unwrap();
    switchboard_server::tenancy::load_issuer(&store, &keyring, "http://127.0.0.1:1")
        .await
        .expect("every key opens with the configured master key");
    let legacy = store.signing_keys().await.unwrap();
    let legacy = legacy.iter().find(|k| k.kid == kid).unwrap();
    assert!(legacy.private_key.starts_with(b"SBK1"));
    assert!(
        !legacy
            .private_key
            .windows(16)
            .any(|w| pkcs8.windows(16).any(|p| p == w)),
        "no part of the private key is stored in the clear"
    );
    db.cleanup().await;
}
