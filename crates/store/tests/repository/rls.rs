//! PostgreSQL row-level security as a second wall: raw SQL, with no store filter, still sees
//! only the tenant set in `switchboard.tenant`, and nothing when no scope is set.

use sqlx::Connection;

use crate::fixtures::{key, populate};
use crate::harness::{self, Db, Engine};

#[tokio::test]
async fn postgres_row_level_security_is_a_second_wall() {
    harness::run(Engine::Postgres, second_wall).await;
}

async fn ids(conn: &mut sqlx::PgConnection, sql: &'static str) -> Vec<String> {
    sqlx::query_scalar(sql).fetch_all(conn).await.unwrap()
}

async fn second_wall(db: Db) {
    let acme = populate(&db.store, "acme").await;
    populate(&db.store, "globex").await;
    let (role, url) = db.create_role("sb_rls").await;
    let mut admin = db.admin().await;
    for sql in [
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let mut app = sqlx::PgConnection::connect(&url).await.unwrap();

    // Neither setting: no rows at all, in any tenant-owned table.
    assert_eq!(
        ids(&mut app, "SELECT id FROM api_keys").await,
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&mut app, "SELECT id FROM tenants").await,
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&mut app, "SELECT email FROM memberships").await,
        Vec::<String>::new()
    );

    // As globex: none of acme's rows can be seen, changed or written.
    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('switchboard.tenant', 'globex', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        ids(&mut tx, "SELECT id FROM api_keys ORDER BY id").await,
        vec!["globexkey0001".to_string(), "globexkey0002".to_string()]
    );
    assert_eq!(
        ids(&mut tx, "SELECT id FROM tenants").await,
        vec!["globex".to_string()]
    );
    assert_eq!(
        ids(&mut tx, "SELECT tenant_id FROM tenant_servers").await,
        vec!["globex".to_string()]
    );
    let touched = sqlx::query("UPDATE tenant_servers SET version = 9 WHERE tenant_id = 'acme'")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(touched, 0);
    let touched = sqlx::query("UPDATE api_keys SET revoked_at = 1 WHERE tenant_id = 'acme'")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(touched, 0);
    let touched = sqlx::query("DELETE FROM memberships WHERE tenant_id = 'acme'")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(touched, 0);
    tx.commit().await.unwrap();
    // WITH CHECK: a row for acme cannot be written from globex's scope.
    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('switchboard.tenant', 'globex', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let sneaky = key("acme", "sneaky000001");
    let err = sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, name, owner_type, owner_id, hash, restrictions, created_at) \
         VALUES ($1, 'acme', 'x', 'user', 'eve@x.example', $2, '[]', 1)",
    )
    .bind(&sneaky.id)
    .bind(sneaky.hash)
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    drop(tx);
    // The setting is transaction-local: after the transaction, the connection sees nothing.
    assert_eq!(
        ids(&mut app, "SELECT id FROM api_keys").await,
        Vec::<String>::new()
    );
    app.close().await.unwrap();

    // The store's own role (the tables' owner) is held to the same policies.
    let mut owner = sqlx::PgConnection::connect(&db.url).await.unwrap();
    assert_eq!(
        ids(&mut owner, "SELECT id FROM api_keys").await,
        Vec::<String>::new()
    );
    owner.close().await.unwrap();

    // acme is unchanged; drop the role's grants so the role can be dropped.
    assert_eq!(crate::fixtures::entry(&db.store, "acme").await, Some(acme));
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP OWNED BY {role}")))
        .execute(&mut admin)
        .await
        .unwrap();
}
