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
        .env("SWITCHBOARD_MASTER_KEY", support::TEST_MASTER_KEY)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_defines_tries_and_removes_a_tenants_own_server() {
    let Some(db) = TestDb::create(Backend::Sqlite).await else {
        return;
    };
    let (url, seen, upstream) = support::capture::capturing_upstream().await;
    let config = format!(
        "{}[admin]\ntoken = {:?}\n[tenant_servers]\nallow_private_networks = true\n",
        db.toml(),
        support::admin::PLATFORM
    );
    let mut gw = TestGateway::start("", &config).await;
    let api = support::admin::Api::new(&gw.base);
    api.create_tenants(&[("acme", "root@acme.com")]).await;
    let root = api.user_key("acme", "root@acme.com").await;
    let run = |args: &[&str]| {
        let out = cli(args, &db, &gw.base, &root);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let mut set = std::process::Command::new(switchboard_bin())
        .args(["admin", "secrets", "set", "--tenant", "acme", "crm_token"])
        .env("SWITCHBOARD_ADMIN_URL", &gw.base)
        .env("SWITCHBOARD_ADMIN_TOKEN", &root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = set.stdin.take().unwrap();
        stdin.write_all(b"token-from-cli\n").unwrap();
    }
    assert!(set.wait().unwrap().success());
    let def = [
        "--endpoint",
        url.as_str(),
        "--header",
        "Authorization: Bearer {{secret.crm_token}}",
    ];
    let tried = run(&[
        &[
            "admin", "--output", "json", "servers", "validate", "--tenant", "acme", "crm",
        ][..],
        &def,
    ]
    .concat());
    let tried: Value = serde_json::from_str(&tried).unwrap();
    assert!(
        tried["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "echo"),
        "{tried}"
    );
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|r| r.auth == "Bearer token-from-cli")
    );
    run(&[
        &["admin", "servers", "put", "--tenant", "acme", "crm"][..],
        &def,
    ]
    .concat());
    let table = run(&["admin", "servers", "list", "--tenant", "acme"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("crm") && l.contains("tenant")),
        "{table}"
    );
    let read: Value = serde_json::from_str(&run(&[
        "admin", "--output", "json", "servers", "get", "--tenant", "acme", "crm",
    ]))
    .unwrap();
    assert_eq!(
        read["headers"]["Authorization"],
        "Bearer {{secret.crm_token}}"
    );
    run(&["admin", "servers", "delete", "--tenant", "acme", "crm"]);
    let out = cli(
        &["admin", "servers", "get", "--tenant", "acme", "crm"],
        &db,
        &gw.base,
        &root,
    );
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("404"));
    gw.stop().await;
    upstream.cancel();
    db.cleanup().await;
}
