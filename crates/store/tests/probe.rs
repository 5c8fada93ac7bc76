use switchboard_domain::tenancy::*;
use switchboard_store::*;

#[tokio::test]
async fn memory_in_path() {
    let dir = std::env::temp_dir().join(format!("sbprobe_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/memory.db", dir.display());
    let r = Store::connect(&url).await;
    eprintln!("memory-in-path: {:?}", r.as_ref().err());
    let url = format!("sqlite://{}/a@b.db", dir.display());
    let r = Store::connect(&url).await;
    eprintln!("at-in-path: {:?}", r.as_ref().err());
    let r = Store::connect("/var/x.db").await;
    eprintln!("no scheme: {:?}", r.as_ref().err().map(|e| e.to_string()));
    let r = Store::connect("postgres://u@127.0.0.1:1/db?password=hunter2").await;
    eprintln!("pw param: {:?}", r.as_ref().err().map(|e| e.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sqlite_writes() {
    let path = std::env::temp_dir().join(format!("sbprobe_{}.db", uuid::Uuid::new_v4().simple()));
    let store = Store::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let t = TenantId::new("acme").unwrap();
    store.create_tenant(&Tenant::new(t.clone(), "A")).await.unwrap();
    let g = GroupName::new("eng").unwrap();
    store.tenant(&t).create_group(&g, "").await.unwrap();
    let mut handles = vec![];
    for i in 0..32 {
        let store = store.clone();
        let t = t.clone();
        let g = g.clone();
        handles.push(tokio::spawn(async move {
            let u = UserId::new(format!("u{i}@x.com")).unwrap();
            store.tenant(&t).add_member(&u, Role::Member).await?;
            store.tenant(&t).add_group_member(&g, &u).await
        }));
    }
    let mut errs = 0;
    for h in handles { if let Err(e) = h.await.unwrap() { errs += 1; eprintln!("ERR {e}"); } }
    eprintln!("concurrent errors: {errs}");
    let r = store.tenant(&TenantId::new("nope").unwrap()).add_grant(&Grant{grantee: Grantee::Role(Role::Member), target: Target::everything(), effect: Effect::Allow}).await;
    eprintln!("missing tenant: {:?}", r.err());
}

#[tokio::test]
async fn pg_as_app_role() {
    use sqlx::Connection;
    let name = format!("sb_probe_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect("postgres://root@127.0.0.1:5432/test").await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    let url = format!("postgres://root@127.0.0.1:5432/{name}");
    let store = Store::connect(&url).await.unwrap();
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    for sql in [format!("CREATE ROLE {name} LOGIN"), format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}")] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut db).await.unwrap();
    }
    drop(db);
    let app = Store::connect(&format!("postgres://{name}@127.0.0.1:5432/{name}")).await;
    eprintln!("app connect: {:?}", app.as_ref().err());
    if let Ok(app) = app {
        let t = TenantId::new("acme").unwrap();
        eprintln!("create: {:?}", app.create_tenant(&Tenant::new(t.clone(), "A")).await);
        eprintln!("member: {:?}", app.tenant(&t).add_member(&UserId::new("a@x.com").unwrap(), Role::Member).await);
        eprintln!("dir: {:?}", app.load_directory().await.map(|d| d.tenants.len()));
        eprintln!("signing: {:?}", app.signing_keys().await.map(|d| d.len()));
        eprintln!("get: {:?}", app.get_tenant(&t).await.map(|d| d.is_some()));
    }
    drop(store);
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).execute(&mut conn).await.unwrap();
    eprintln!("drop role: {:?}", sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE {name}"))).execute(&mut conn).await.err());
}
