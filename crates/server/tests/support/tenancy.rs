//! Fixtures for tenancy tests: a database per test (SQLite file, or a fresh PostgreSQL
//! database that is dropped afterwards), API keys, and a two-tenant organisation.

use secrecy::{ExposeSecret, SecretBox};
use switchboard_auth::api_key::{self, HashingKey};
use switchboard_domain::tenancy::{
    ApiKeyRecord, Effect, Grant, Grantee, GroupName, KeyOwner, Role, Target, Tenant, TenantId,
    UserId,
};
use switchboard_store::Store;

/// The key-hashing secret every tenancy test gateway is configured with.
pub const HASHING_SECRET: &str = "switchboard-test-key-hashing-secret-0123456789";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database created for one test.
pub struct TestDb {
    pub url: String,
    postgres: Option<(String, String)>,
}

fn postgres_admin_url() -> String {
    std::env::var("SWITCHBOARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into())
}

impl TestDb {
    /// A fresh database, or `None` (with the reason printed) when PostgreSQL is not
    /// reachable and `SWITCHBOARD_REQUIRE_SERVICES` is not set.
    pub async fn create(backend: Backend) -> Option<TestDb> {
        let name = format!("sb_test_{}", uuid::Uuid::new_v4().simple());
        match backend {
            Backend::Sqlite => {
                let dir = super::temp_dir("db");
                Some(TestDb {
                    url: format!("sqlite://{}", dir.join("switchboard.db").display()),
                    postgres: None,
                })
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let admin = postgres_admin_url();
                let mut conn = match sqlx::PgConnection::connect(&admin).await {
                    Ok(c) => c,
                    Err(err) => {
                        if std::env::var_os("SWITCHBOARD_REQUIRE_SERVICES").is_some() {
                            panic!("PostgreSQL required but not reachable at {admin}: {err}");
                        }
                        eprintln!("SKIP: PostgreSQL not reachable at {admin}: {err}");
                        return None;
                    }
                };
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let (base, _) = admin.rsplit_once('/').expect("url has a database");
                Some(TestDb {
                    url: format!("{base}/{name}"),
                    postgres: Some((admin, name)),
                })
            }
        }
    }

    /// Drops a PostgreSQL test database.
    pub async fn cleanup(self) {
        use sqlx::Connection;
        if let Some((admin, name)) = self.postgres
            && let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await;
        }
    }

    /// The `[database]`/`[auth]` TOML for a gateway on this database.
    pub fn toml(&self) -> String {
        format!(
            "[database]\nurl = {:?}\n[auth]\nkey_hashing_secret = {HASHING_SECRET:?}\nreload_interval_ms = 100\n",
            self.url
        )
    }
}

fn hashing() -> HashingKey {
    HashingKey::new(&SecretBox::from(HASHING_SECRET.as_bytes().to_vec())).unwrap()
}

pub fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

pub fn user(email: &str) -> UserId {
    UserId::new(email).unwrap()
}

/// Creates an API key for `owner` in `tenant`, bound to `restrictions`; returns its text.
pub async fn api_key(
    store: &Store,
    tenant_id: &str,
    owner: KeyOwner,
    restrictions: &[&str],
) -> String {
    let new = api_key::generate(&hashing());
    let record = ApiKeyRecord {
        id: new.id.clone(),
        tenant: tenant(tenant_id),
        name: "test key".into(),
        owner,
        hash: new.hash,
        restrictions: restrictions
            .iter()
            .map(|t| Target::parse(t).unwrap())
            .collect(),
        expires_at: None,
        revoked_at: None,
        created_at: 0,
        quotas: None,
        ip_allowlist: Vec::new(),
    };
    store
        .tenant(&tenant(tenant_id))
        .create_api_key(&record)
        .await
        .expect("create api key");
    new.text.expose_secret().to_owned()
}

/// The keys of the two-tenant organisation.
pub struct Org {
    /// acme member in group `eng`.
    pub ada: String,
    /// acme owner.
    pub root: String,
    /// acme owner, key bound to the `shared` server.
    pub root_shared_only: String,
    /// acme readonly, in group `eng`.
    pub rita: String,
    /// globex member.
    pub gus: String,
    pub ada_key_id: String,
}

fn grant(grantee: Grantee, target: &str, effect: Effect) -> Grant {
    Grant {
        grantee,
        target: Target::parse(target).unwrap(),
        effect,
    }
}

/// The upstreams of [`provision`]'s tenants: `alpha` (acme's), `beta` (globex's) and
/// `shared`, each a stdio demo.
pub fn two_tenant_upstreams() -> String {
    format!(
        "{}{}{}",
        super::stdio_demo("alpha", None, "tenants = [\"acme\"]"),
        super::stdio_demo("beta", None, "tenants = [\"globex\"]"),
        super::stdio_demo("shared", None, ""),
    )
}

/// Two tenants: acme (servers `alpha` and `shared`) and globex (`beta` and `shared`).
pub async fn provision(store: &Store) -> Org {
    store
        .create_tenant(&Tenant::new(tenant("acme"), "Acme"))
        .await
        .unwrap();
    store
        .create_tenant(&Tenant::new(tenant("globex"), "Globex"))
        .await
        .unwrap();
    let acme = store.tenant(&tenant("acme"));
    for (email, role) in [
        ("ada@acme.com", Role::Member),
        ("root@acme.com", Role::Owner),
        ("rita@acme.com", Role::Readonly),
    ] {
        acme.add_member(&user(email), role).await.unwrap();
    }
    let eng = GroupName::new("eng").unwrap();
    acme.create_group(&eng, "engineering").await.unwrap();
    for email in ["ada@acme.com", "rita@acme.com"] {
        acme.add_group_member(&eng, &user(email)).await.unwrap();
    }
    acme.add_grant(&grant(Grantee::Group(eng.clone()), "alpha", Effect::Allow))
        .await
        .unwrap();
    acme.add_grant(&grant(
        Grantee::Group(eng),
        "alpha/slow_count",
        Effect::Deny,
    ))
    .await
    .unwrap();
    acme.add_grant(&grant(
        Grantee::Role(Role::Member),
        "shared/echo",
        Effect::Allow,
    ))
    .await
    .unwrap();
    let globex = store.tenant(&tenant("globex"));
    globex
        .add_member(&user("gus@globex.com"), Role::Member)
        .await
        .unwrap();
    for target in ["beta", "shared"] {
        globex
            .add_grant(&grant(Grantee::Role(Role::Member), target, Effect::Allow))
            .await
            .unwrap();
    }
    let ada = api_key(store, "acme", KeyOwner::User(user("ada@acme.com")), &[]).await;
    let ada_key_id = api_key::parse(&ada).unwrap().id.to_owned();
    Org {
        root: api_key(store, "acme", KeyOwner::User(user("root@acme.com")), &[]).await,
        root_shared_only: api_key(
            store,
            "acme",
            KeyOwner::User(user("root@acme.com")),
            &["shared"],
        )
        .await,
        rita: api_key(store, "acme", KeyOwner::User(user("rita@acme.com")), &[]).await,
        gus: api_key(store, "globex", KeyOwner::User(user("gus@globex.com")), &[]).await,
        ada,
        ada_key_id,
    }
}

/// A raw legacy `initialize` at `url` with `bearer` (opens a session when admitted).
pub async fn initialize(url: &str, bearer: &str) -> reqwest::Response {
    let init = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}});
    reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-11-25")
        .bearer_auth(bearer)
        .json(&init)
        .send()
        .await
        .unwrap()
}

/// Opens a legacy session with raw HTTP and returns its id.
pub async fn legacy_session(url: &str, bearer: &str) -> String {
    let resp = initialize(url, bearer).await;
    assert_eq!(resp.status().as_u16(), 200);
    resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// A gateway in front of the `shared` stdio demo whose tenant `acme` allows
/// `per_user` sessions per user and `per_tenant` in all (`server_extra` in `[server]`).
pub async fn gateway_with_session_caps(
    per_user: u32,
    per_tenant: Option<u32>,
    server_extra: &str,
) -> (super::TestGateway, Org, TestDb) {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let store = Store::connect(&db.url).await.unwrap();
    let org = provision(&store).await;
    let mut acme = store.get_tenant(&tenant("acme")).await.unwrap().unwrap();
    acme.settings.max_sessions_per_user = Some(per_user);
    acme.settings.max_sessions = per_tenant;
    store.update_tenant(&acme, 1).await.unwrap();
    let upstreams = super::stdio_demo("shared", None, "");
    let gw = super::TestGateway::start(server_extra, &format!("{}{upstreams}", db.toml())).await;
    (gw, org, db)
}
