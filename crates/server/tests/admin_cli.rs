//! The admin API's OpenAPI document and docs page, `switchboard admin` driving a running
//! gateway, and the platform admin token of a first start (created once, minted again on the
//! database, revoked).

mod support;

use serde_json::{Value, json};
use support::tenancy::{Backend, HASHING_SECRET, TestDb};
use support::{TestGateway, switchboard_bin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_and_docs_page_describe_the_api() {
    let gw = TestGateway::start("", "").await;
    let doc: Value = reqwest::get(format!("{}/admin/v1/openapi.json", gw.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/admin/v1/tenants", "post"),
        ("/admin/v1/tenants/{tenant}", "patch"),
        ("/admin/v1/tenants/{tenant}/members/{user}", "delete"),
        (
            "/admin/v1/tenants/{tenant}/groups/{group}/members/{user}",
            "put",
        ),
        ("/admin/v1/tenants/{tenant}/roles/{role}", "put"),
        ("/admin/v1/tenants/{tenant}/grants", "post"),
        ("/admin/v1/tenants/{tenant}/api-keys", "post"),
        ("/admin/v1/tenants/{tenant}/clients/{client}", "patch"),
        ("/admin/v1/me", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is documented"
        );
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for schema in ["TenantView", "ErrorBody", "CreatedApiKey", "TenantList"] {
        assert!(schemas.contains_key(schema), "{schema}");
    }
    let page = reqwest::get(format!("{}/admin/v1/docs", gw.base))
        .await
        .unwrap();
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("/admin/v1/tenants/{tenant}/api-keys") && !html.contains("<script"));
}

fn cli(args: &[&str], db: &TestDb, base: &str, token: &str) -> std::process::Output {
    std::process::Command::new(switchboard_bin())
        .args(args)
        .env("SWITCHBOARD_DATABASE_URL", &db.url)
        .env("SWITCHBOARD_AUTH__KEY_HASHING_SECRET", HASHING_SECRET)
        .env("SWITCHBOARD_ADMIN_URL", base)
        .env("SWITCHBOARD_ADMIN_TOKEN", token)
        .env("SWITCHBOARD_LOG", "warn")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run switchboard")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_the_first_start_token_drive_the_admin_api() {
    let Some(db) = TestDb::create(Backend::Sqlite).await else {
        return;
    };
    // No operator token: the first start creates one (and a restart does not add another).
    let mut gw = TestGateway::start("", &db.toml()).await;
    let tokens = gw.tenancy().store.admin_tokens().await.unwrap();
    assert_eq!(tokens.len(), 1);
    gw.stop().await;
    let mut gw = TestGateway::start("", &db.toml()).await;
    assert_eq!(gw.tenancy().store.admin_tokens().await.unwrap().len(), 1);

    // Lost it: mint another on the database, then use it over HTTP.
    let out = cli(
        &["admin", "platform-token", "create", "--name", "ops"],
        &db,
        &gw.base,
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("sba_"));
    let run = |args: &[&str]| cli(args, &db, &gw.base, &token);
    let out = run(&[
        "admin",
        "tenants",
        "create",
        "acme",
        "--name",
        "Acme",
        "--owner",
        "root@acme.com",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "admin",
        "--output",
        "json",
        "api-keys",
        "create",
        "--tenant",
        "acme",
        "--name",
        "ci",
        "--user",
        "root@acme.com",
        "--ttl",
        "30d",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(created["secret"].as_str().unwrap().starts_with("sb_"));
    assert!(created["key"]["expiresAt"].as_i64().unwrap() > 0);
    let out = run(&[
        "admin",
        "--output",
        "json",
        "api-keys",
        "create",
        "--tenant",
        "acme",
        "--name",
        "fenced",
        "--user",
        "root@acme.com",
        "--calls-per-day",
        "5",
        "--allow-ip",
        "10.0.0.0/8",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fenced: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(fenced["key"]["quotas"]["callsPerDay"], 5);
    assert_eq!(fenced["key"]["ipAllowlist"], json!(["10.0.0.0/8"]));
    let out = run(&[
        "admin",
        "usage",
        "--tenant",
        "acme",
        "--group-by",
        "key",
        "--csv",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("key,calls,errors"));
    let out = run(&["admin", "usage", "--tenant", "acme"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("acme from "),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(&["admin", "members", "list", "--tenant", "acme"]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.lines().next().unwrap().starts_with("user") && table.contains("root@acme.com  owner"),
        "{table}"
    );
    // Errors say what is wrong and exit non-zero.
    let out = run(&["admin", "tenants", "get", "globex"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    // Revoked platform tokens stop working.
    let id = &token[4..16];
    let out = run(&["admin", "platform-token", "revoke", id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["admin", "me"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("401"));
    gw.stop().await;
    db.cleanup().await;
}
