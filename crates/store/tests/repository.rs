//! One repository suite, run against SQLite and PostgreSQL: round trips, tenant walls,
//! cascades, conflicts, optimistic concurrency, the revision counter, the directory read,
//! corrupt values, and (PostgreSQL) row-level security as a second wall.

use std::future::Future;

use switchboard_domain::tenancy::{
    ApiKeyRecord, ClaimMapping, ClientId, Condition, Effect, Grant, Grantee, GroupName,
    IssuerConfig, ItemKind, KeyOwner, Permission, Plan, Role, RoleDef, ServiceClient, Target,
    Tenant, TenantId, TenantStatus, UserId,
};
use switchboard_store::{SigningKeyRow, Store, StoreError};

fn admin_url() -> String {
    std::env::var("SWITCHBOARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into())
}

/// Runs `case` on a fresh database of the backend; PostgreSQL is skipped (with the reason
/// printed) when unreachable, unless `SWITCHBOARD_REQUIRE_SERVICES` is set.
async fn on<F, Fut>(postgres: bool, case: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let name = format!("sb_store_{}", uuid::Uuid::new_v4().simple());
    if !postgres {
        let path = std::env::temp_dir().join(format!("{name}.db"));
        let url = format!("sqlite://{}", path.display());
        let store = Store::connect(&url).await.expect("open sqlite");
        case(store, url).await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        return;
    }
    use sqlx::Connection;
    let admin = admin_url();
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(err) => {
            if std::env::var_os("SWITCHBOARD_REQUIRE_SERVICES").is_some() {
                panic!("PostgreSQL required but not reachable at {admin}: {err}");
            }
            eprintln!("SKIP: PostgreSQL not reachable at {admin}: {err}");
            return;
        }
    };
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let store = Store::connect(&url).await.expect("open postgres");
    case(store.clone(), url).await;
    drop(store);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
}

macro_rules! both {
    ($case:ident) => {
        mod $case {
            #[tokio::test]
            async fn sqlite() {
                super::on(false, super::$case).await;
            }
            #[tokio::test]
            async fn postgres() {
                super::on(true, super::$case).await;
            }
        }
    };
}

fn t(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

fn u(email: &str) -> UserId {
    UserId::new(email).unwrap()
}

fn key(tenant: &str, id: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.into(),
        tenant: t(tenant),
        name: "k".into(),
        owner: KeyOwner::User(u("ada@x.com")),
        hash: vec![1, 2, 3, 250],
        restrictions: vec![Target::parse("time/now").unwrap()],
        expires_at: Some(4_000_000_000),
        revoked_at: None,
        created_at: 100,
    }
}

async fn two_tenants(store: &Store) {
    for id in ["acme", "globex"] {
        store.create_tenant(&Tenant::new(t(id), id)).await.unwrap();
    }
}

async fn tenants_round_trip(store: Store, _url: String) {
    let mut acme = Tenant::new(t("acme"), "Acme Inc");
    acme.plan = Plan::Pro;
    acme.domains = vec!["acme.example.com".into()];
    acme.settings.max_sessions_per_user = Some(3);
    store.create_tenant(&acme).await.unwrap();
    let (loaded, version) = store
        .get_tenant_versioned(&t("acme"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded, acme);
    assert_eq!(version, 1);
    assert_eq!(
        store.tenant_by_domain("ACME.example.com").await.unwrap(),
        Some(t("acme"))
    );
    assert!(matches!(
        store.create_tenant(&acme).await,
        Err(StoreError::Conflict { .. })
    ));
    // Optimistic concurrency: the second writer with the old version loses.
    acme.name = "Acme Corp".into();
    assert_eq!(store.update_tenant(&acme, 1).await.unwrap(), 2);
    acme.name = "Stale".into();
    assert!(matches!(
        store.update_tenant(&acme, 1).await,
        Err(StoreError::VersionMismatch { .. })
    ));
    assert_eq!(
        store.get_tenant(&t("acme")).await.unwrap().unwrap().name,
        "Acme Corp"
    );
    store
        .set_tenant_status(&t("acme"), TenantStatus::Suspended)
        .await
        .unwrap();
    assert_eq!(
        store.get_tenant(&t("acme")).await.unwrap().unwrap().status,
        TenantStatus::Suspended
    );
    assert!(matches!(
        store
            .set_tenant_status(&t("nope"), TenantStatus::Active)
            .await,
        Err(StoreError::NotFound { .. })
    ));
}
both!(tenants_round_trip);

async fn members_groups_roles_grants(store: Store, _url: String) {
    two_tenants(&store).await;
    let acme = store.tenant(&t("acme"));
    acme.add_member(&u("ada@x.com"), Role::Member)
        .await
        .unwrap();
    acme.add_member(&u("bob@x.com"), Role::Admin).await.unwrap();
    assert!(matches!(
        acme.add_member(&u("ada@x.com"), Role::Owner).await,
        Err(StoreError::Conflict { .. })
    ));
    acme.set_member_role(&u("ada@x.com"), Role::Readonly)
        .await
        .unwrap();
    let members = acme.members().await.unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(members[0].role, Role::Readonly);
    let eng = GroupName::new("eng").unwrap();
    acme.create_group(&eng, "Engineering").await.unwrap();
    acme.add_group_member(&eng, &u("ada@x.com")).await.unwrap();
    // Only members of the tenant can join its groups.
    assert!(matches!(
        acme.add_group_member(&eng, &u("eve@x.com")).await,
        Err(StoreError::NotFound { .. })
    ));
    let groups = acme.groups().await.unwrap();
    assert_eq!(groups[0].members, vec![u("ada@x.com")]);
    let role = RoleDef {
        name: "graph-reader".into(),
        description: "reads graphs".into(),
        permissions: vec![Permission {
            kinds: vec![ItemKind::Tool],
            target: Target::parse("falkor/query").unwrap(),
            conditions: vec![Condition {
                argument: "graph".into(),
                matches: "acme_*".into(),
            }],
        }],
    };
    acme.put_role(&role).await.unwrap();
    assert_eq!(acme.roles().await.unwrap(), vec![role]);
    assert!(
        acme.put_role(&RoleDef {
            name: "owner".into(),
            description: String::new(),
            permissions: vec![]
        })
        .await
        .is_err()
    );
    let grant = Grant {
        grantee: Grantee::Group(eng.clone()),
        target: Target::parse("git*/create_*").unwrap(),
        effect: Effect::Deny,
    };
    let id = acme.add_grant(&grant).await.unwrap();
    assert_eq!(acme.grants().await.unwrap(), vec![(id.clone(), grant)]);
    acme.remove_member(&u("ada@x.com")).await.unwrap();
    assert!(acme.groups().await.unwrap()[0].members.is_empty());
    acme.remove_grant(&id).await.unwrap();
    assert!(acme.grants().await.unwrap().is_empty());
    acme.delete_group(&eng).await.unwrap();
    acme.delete_role("graph-reader").await.unwrap();
}
both!(members_groups_roles_grants);

async fn tenants_cannot_touch_each_other(store: Store, _url: String) {
    two_tenants(&store).await;
    let acme = store.tenant(&t("acme"));
    let globex = store.tenant(&t("globex"));
    acme.add_member(&u("ada@x.com"), Role::Owner).await.unwrap();
    acme.create_api_key(&key("acme", "acmekey00001"))
        .await
        .unwrap();
    let grant_id = acme
        .add_grant(&Grant {
            grantee: Grantee::Role(Role::Member),
            target: Target::everything(),
            effect: Effect::Allow,
        })
        .await
        .unwrap();
    let eng = GroupName::new("eng").unwrap();
    acme.create_group(&eng, "").await.unwrap();
    // globex's scope neither sees nor changes acme's rows: each answer is "not found".
    assert!(globex.members().await.unwrap().is_empty());
    assert!(globex.api_keys().await.unwrap().is_empty());
    assert!(globex.grants().await.unwrap().is_empty());
    assert!(globex.groups().await.unwrap().is_empty());
    let not_found = |r: Result<(), StoreError>| matches!(r, Err(StoreError::NotFound { .. }));
    assert!(not_found(globex.revoke_api_key("acmekey00001", 1).await));
    assert!(not_found(globex.remove_grant(&grant_id).await));
    assert!(not_found(globex.remove_member(&u("ada@x.com")).await));
    assert!(not_found(
        globex.set_member_role(&u("ada@x.com"), Role::Member).await
    ));
    assert!(not_found(globex.delete_group(&eng).await));
    assert!(not_found(
        globex.add_group_member(&eng, &u("ada@x.com")).await
    ));
    // A record naming another tenant is refused outright.
    assert!(
        globex
            .create_api_key(&key("acme", "sneakykey001"))
            .await
            .is_err()
    );
    // acme is unchanged.
    assert_eq!(acme.members().await.unwrap().len(), 1);
    assert_eq!(acme.api_keys().await.unwrap()[0].revoked_at, None);
    assert_eq!(acme.grants().await.unwrap().len(), 1);
    assert_eq!(acme.groups().await.unwrap().len(), 1);
}
both!(tenants_cannot_touch_each_other);

async fn credentials_round_trip(store: Store, _url: String) {
    two_tenants(&store).await;
    let acme = store.tenant(&t("acme"));
    let record = key("acme", "acmekey00001");
    acme.create_api_key(&record).await.unwrap();
    assert_eq!(acme.api_keys().await.unwrap(), vec![record.clone()]);
    // Key ids are unique across tenants.
    let mut clash = key("globex", "acmekey00001");
    clash.name = "other".into();
    assert!(matches!(
        store.tenant(&t("globex")).create_api_key(&clash).await,
        Err(StoreError::Conflict { .. })
    ));
    acme.revoke_api_key("acmekey00001", 77).await.unwrap();
    assert_eq!(acme.api_keys().await.unwrap()[0].revoked_at, Some(77));
    let client = ServiceClient {
        id: ClientId::new("ci").unwrap(),
        tenant: t("acme"),
        name: "CI".into(),
        role: Role::Admin,
        secret_hash: vec![9; 32],
        disabled: false,
    };
    acme.create_client(&client).await.unwrap();
    acme.set_client_disabled(&client.id, true).await.unwrap();
    assert!(acme.clients().await.unwrap()[0].disabled);
    let issuer = IssuerConfig {
        tenant: t("acme"),
        issuer: "https://idp.example".into(),
        jwks_url: Some("https://idp.example/jwks".into()),
        jwks: None,
        audiences: vec!["https://gw".into()],
        claims: ClaimMapping {
            groups: Some("groups".into()),
            ..Default::default()
        },
        required_scopes: vec!["mcp".into()],
        default_role: Some(Role::Member),
    };
    acme.put_issuer(&issuer).await.unwrap();
    assert_eq!(acme.issuers().await.unwrap(), vec![issuer]);
    acme.remove_issuer("https://idp.example").await.unwrap();
    assert!(acme.issuers().await.unwrap().is_empty());
    let row = SigningKeyRow {
        kid: "k1".into(),
        algorithm: "ES256".into(),
        private_key: vec![1, 2, 3],
        public_jwk: "{}".into(),
        created_at: 5,
        retired_at: None,
    };
    store.add_signing_key(&row).await.unwrap();
    store.retire_signing_key("k1").await.unwrap();
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys[0].private_key, vec![1, 2, 3]);
    assert!(keys[0].retired_at.is_some());
    assert!(
        !format!("{:?}", keys[0]).contains("[1, 2, 3]"),
        "private key redacted"
    );
}
both!(credentials_round_trip);

async fn directory_and_revision(store: Store, _url: String) {
    let start = store.revision().await.unwrap();
    two_tenants(&store).await;
    let after_tenants = store.revision().await.unwrap();
    assert!(after_tenants >= start + 2);
    let acme = store.tenant(&t("acme"));
    acme.add_member(&u("ada@x.com"), Role::Member)
        .await
        .unwrap();
    acme.create_api_key(&key("acme", "acmekey00001"))
        .await
        .unwrap();
    acme.revoke_token("live", 4_000_000_000).await.unwrap();
    acme.revoke_token("dead", 10).await.unwrap();
    store
        .tenant(&t("globex"))
        .add_member(&u("gus@y.com"), Role::Owner)
        .await
        .unwrap();
    let before_reads = store.revision().await.unwrap();
    let directory = store.load_directory().await.unwrap();
    let _ = acme.members().await.unwrap();
    assert_eq!(
        store.revision().await.unwrap(),
        before_reads,
        "reads do not bump"
    );
    assert_eq!(directory.revision, before_reads);
    assert_eq!(directory.tenants.len(), 2);
    let a = &directory.tenants[0];
    assert_eq!(a.tenant.id, t("acme"));
    assert_eq!(a.members.len(), 1);
    assert_eq!(a.api_keys, vec![key("acme", "acmekey00001")]);
    assert_eq!(
        a.revoked_tokens,
        vec!["live".to_string()],
        "expired revocations dropped"
    );
    assert_eq!(directory.tenants[1].members[0].user, u("gus@y.com"));
    // Deleting a tenant removes everything it owns.
    store.delete_tenant(&t("acme")).await.unwrap();
    assert!(acme.members().await.unwrap().is_empty());
    assert!(acme.api_keys().await.unwrap().is_empty());
    let directory = store.load_directory().await.unwrap();
    assert_eq!(directory.tenants.len(), 1);
}
both!(directory_and_revision);

async fn corrupt_values_are_reported(store: Store, url: String) {
    two_tenants(&store).await;
    store
        .tenant(&t("acme"))
        .add_member(&u("ada@x.com"), Role::Member)
        .await
        .unwrap();
    // Damage a row behind the store's back.
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let sql = "UPDATE memberships SET role = 'Bad Role!'";
    let mut tx = pool.begin().await.unwrap();
    if url.starts_with("postgres") {
        sqlx::query("SELECT set_config('switchboard.scope', 'platform', true)")
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    sqlx::query(sql).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let err = store.load_directory().await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("role"), "{err}");
}
both!(corrupt_values_are_reported);

#[tokio::test]
async fn unsupported_urls_are_named() {
    let err = Store::connect("mysql://u:secret@h/db")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("mysql") && err.contains("sqlite://"), "{err}");
    assert!(!err.contains("secret"));
    let err = Store::connect("postgres://u:hunter2@127.0.0.1:1/db")
        .await
        .unwrap_err()
        .to_string();
    assert!(!err.contains("hunter2"), "{err}");
    let memory = Store::connect("sqlite::memory:").await.unwrap();
    assert!(memory.list_tenants().await.unwrap().is_empty());
}

/// Row-level security: a role that is not a superuser sees only the tenant it set.
#[tokio::test]
async fn postgres_row_level_security_is_a_second_wall() {
    on(true, |store, url| async move {
        two_tenants(&store).await;
        store
            .tenant(&t("acme"))
            .create_api_key(&key("acme", "acmekey00001"))
            .await
            .unwrap();
        store
            .tenant(&t("globex"))
            .create_api_key(&key("globex", "globexkey001"))
            .await
            .unwrap();
        use sqlx::Connection;
        let role = format!("sb_rls_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        for sql in [
            format!("CREATE ROLE {role} LOGIN"),
            format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut admin)
                .await
                .unwrap();
        }
        let base = url.replacen("root@", &format!("{role}@"), 1);
        let mut app = sqlx::PgConnection::connect(&base).await.unwrap();
        let ids = |rows: Vec<(String,)>| rows.into_iter().map(|r| r.0).collect::<Vec<_>>();
        // No tenant set: nothing.
        let none: Vec<(String,)> = sqlx::query_as("SELECT id FROM api_keys")
            .fetch_all(&mut app)
            .await
            .unwrap();
        assert!(none.is_empty());
        let mut tx = app.begin().await.unwrap();
        sqlx::query("SELECT set_config('switchboard.tenant', 'globex', true)")
            .execute(&mut *tx)
            .await
            .unwrap();
        let rows: Vec<(String,)> = sqlx::query_as("SELECT id FROM api_keys")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        assert_eq!(ids(rows), vec!["globexkey001".to_string()]);
        tx.commit().await.unwrap();
        drop(app);
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP OWNED BY {role}")))
            .execute(&mut admin)
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE {role}")))
            .execute(&mut admin)
            .await
            .unwrap();
    })
    .await;
}
