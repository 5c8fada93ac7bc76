//! A fresh database per case: a SQLite file under the temp folder, or a PostgreSQL database
//! created for the case and dropped after it (even when the case panics).
//!
//! On PostgreSQL the store connects as a new non-superuser role that owns the database:
//! superusers bypass row-level security, so running as one would leave the policies
//! untested; an owner is subject to them because the tables `FORCE` them. Every PostgreSQL
//! case therefore also proves the store's queries work behind the second wall.

use std::future::Future;
use std::sync::{Arc, Mutex};

use sqlx::Connection;
use switchboard_store::Store;

/// The engine a case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// What a case gets.
pub struct Db {
    pub store: Store,
    pub engine: Engine,
    /// The store's own URL (on PostgreSQL, the owning non-superuser role).
    pub url: String,
    postgres: Option<Postgres>,
}

#[derive(Clone)]
struct Postgres {
    admin: String,
    database: String,
    /// Roles to drop once the database is gone.
    roles: Arc<Mutex<Vec<String>>>,
}

fn admin_url() -> String {
    std::env::var("SWITCHBOARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into())
}

/// `url` with its credentials replaced by `user:password` and its database by `database`.
fn url_for(url: &str, user: &str, password: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("postgres URL has a scheme");
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{user}:{password}@{host}/{database}{query}")
}

impl Db {
    /// A superuser connection to this case's database (PostgreSQL only).
    pub async fn admin(&self) -> sqlx::PgConnection {
        let pg = self.postgres.as_ref().expect("PostgreSQL case");
        let (base, _) = pg.admin.split_once('?').unwrap_or((&pg.admin, ""));
        let (server, _) = base.rsplit_once('/').expect("admin URL names a database");
        sqlx::PgConnection::connect(&format!("{server}/{}", pg.database))
            .await
            .expect("admin connection to the test database")
    }

    /// A new login role (PostgreSQL only), dropped after the case; returns its name and a
    /// URL of this case's database as that role.
    pub async fn create_role(&self, prefix: &str) -> (String, String) {
        let pg = self.postgres.as_ref().expect("PostgreSQL case");
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&pg.admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE ROLE {name} LOGIN PASSWORD '{name}'"
        )))
        .execute(&mut admin)
        .await
        .expect("create role (the admin URL needs CREATEROLE)");
        pg.roles.lock().unwrap().push(name.clone());
        let url = url_for(&pg.admin, &name, &name, &pg.database);
        (name, url)
    }
}

/// Runs `case` on a fresh database of `engine`. PostgreSQL is skipped (with the reason on
/// stderr) when unreachable, unless `SWITCHBOARD_REQUIRE_SERVICES=1`.
pub async fn run<F, Fut>(engine: Engine, case: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    match engine {
        Engine::Sqlite => run_sqlite(case).await,
        Engine::Postgres => run_postgres(case).await,
    }
}

/// Removes the SQLite files when dropped, also while a failed case unwinds.
struct SqliteFiles(std::path::PathBuf);

impl Drop for SqliteFiles {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

async fn run_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let files = SqliteFiles(
        std::env::temp_dir().join(format!("sb_store_{}.db", uuid::Uuid::new_v4().simple())),
    );
    let url = format!("sqlite://{}", files.0.display());
    let store = Store::connect(&url).await.expect("open SQLite");
    let result = tokio::spawn(case(Db {
        store,
        engine: Engine::Sqlite,
        url,
        postgres: None,
    }))
    .await;
    drop(files);
    if let Err(err) = result {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// Whether PostgreSQL tests must run rather than skip.
pub fn services_required() -> bool {
    std::env::var("SWITCHBOARD_REQUIRE_SERVICES").is_ok_and(|v| !v.is_empty() && v != "0")
}

async fn run_postgres<F, Fut>(case: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let admin = admin_url();
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(conn) => conn,
        Err(err) => {
            let redacted = switchboard_store::redact_url(&admin);
            if services_required() {
                panic!("PostgreSQL required but not reachable at {redacted}: {err}");
            }
            eprintln!("SKIP: PostgreSQL not reachable at {redacted}: {err}");
            return;
        }
    };
    let id = uuid::Uuid::new_v4().simple();
    let pg = Postgres {
        admin: admin.clone(),
        database: format!("sb_test_{id}"),
        roles: Arc::default(),
    };
    let owner = format!("sb_app_{id}");
    pg.roles.lock().unwrap().push(owner.clone());
    for sql in [
        format!("CREATE ROLE {owner} LOGIN PASSWORD '{owner}'"),
        format!("CREATE DATABASE {} OWNER {owner}", pg.database),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect("set up the test database (the admin URL needs CREATEDB and CREATEROLE)");
    }
    let url = url_for(&admin, &owner, &owner, &pg.database);
    let result = match Store::connect(&url).await {
        Ok(store) => {
            tokio::spawn(case(Db {
                store,
                engine: Engine::Postgres,
                url,
                postgres: Some(pg.clone()),
            }))
            .await
        }
        Err(err) => tokio::spawn(async move { panic!("open PostgreSQL: {err}") }).await,
    };
    // WITH (FORCE) ends the connections still open in the store's pool.
    let mut cleanup = vec![format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        pg.database
    )];
    let roles = pg.roles.lock().unwrap().clone();
    cleanup.extend(roles.iter().map(|r| format!("DROP ROLE IF EXISTS {r}")));
    for sql in cleanup {
        if let Err(err) = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await
        {
            eprintln!("cleanup failed: {sql}: {err}");
        }
    }
    if let Err(err) = result {
        std::panic::resume_unwind(err.into_panic());
    }
}
