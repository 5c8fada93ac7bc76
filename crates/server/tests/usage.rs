//! Usage metering and call quotas through the real server, on SQLite and PostgreSQL: a
//! tenant's and a key's daily quotas refuse the call after the last allowed one (a JSON-RPC
//! error inside the MCP stream, saying which quota and when it resets), hold across a
//! restart, and the admin API reports the usage by key and by tool — as JSON with the
//! quotas, and as CSV.

mod support;

use serde_json::{Value, json};
use support::admin::{Api, PLATFORM};
use support::tenancy::{Backend, TestDb};
use support::{Era, TestGateway, call, connect_as, mcp_error, stdio_demo};

async fn admin(
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    Api::new(base).raw(PLATFORM, method, path, body).await
}

async fn json_of(base: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let (status, text) = admin(base, method, path, body).await;
    assert!(status < 300, "{status}: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn calls(url: &str, key: &str, n: usize) -> Result<(), rmcp::model::ErrorData> {
    let (client, _) = connect_as(url, Era::Legacy, key).await;
    for i in 0..n {
        let result = client
            .call_tool(call("alpha__echo", json!({"text": format!("call {i}")})))
            .await;
        if let Err(err) = result {
            client.cancel().await.ok();
            return Err(mcp_error(err));
        }
    }
    client.cancel().await.ok();
    Ok(())
}

async fn quotas_hold_and_usage_is_reported(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let config = format!(
        "{}[admin]\ntoken = {PLATFORM:?}\n[usage]\nflush_interval_ms = 200\n{}",
        db.toml(),
        stdio_demo("alpha", None, "")
    );
    let mut gw = TestGateway::start("", &config).await;
    let base = gw.base.clone();
    use reqwest::Method as M;
    json_of(
        &base,
        M::POST,
        "/tenants",
        Some(json!({
            "id": "acme", "name": "Acme", "owner": "root@acme.com",
            "settings": {"quotas": {"callsPerDay": 6}}
        })),
    )
    .await;
    let key = |name: &str, quotas: Option<Value>| {
        let mut body = json!({"name": name, "owner": {"type": "user", "id": "root@acme.com"}});
        if let Some(q) = quotas {
            body["quotas"] = q;
        }
        body
    };
    let a = json_of(
        &base,
        M::POST,
        "/tenants/acme/api-keys",
        Some(key("a", None)),
    )
    .await;
    let b = json_of(
        &base,
        M::POST,
        "/tenants/acme/api-keys",
        Some(key("b", Some(json!({"callsPerDay": 2})))),
    )
    .await;
    assert_eq!(b["key"]["quotas"]["callsPerDay"], 2);
    let (a_key, b_key) = (
        a["secret"].as_str().unwrap().to_owned(),
        b["secret"].as_str().unwrap().to_owned(),
    );
    let (a_id, b_id) = (
        a["key"]["id"].as_str().unwrap().to_owned(),
        b["key"]["id"].as_str().unwrap().to_owned(),
    );
    let url = format!("{base}/t/acme/mcp");

    // Key b: its own quota of 2.
    let err = calls(&url, &b_key, 3).await.unwrap_err();
    assert_eq!(err.code.0, -32029, "{}", err.message);
    let data = err.data.unwrap();
    assert_eq!(
        (
            data["quota"].as_str(),
            data["period"].as_str(),
            data["limit"].as_u64()
        ),
        (Some("key"), Some("day"), Some(2))
    );
    assert!(
        err.message.contains("2 calls per day") && err.message.contains("resets at"),
        "{}",
        err.message
    );
    // Key a: the tenant's 6, of which b used 2 (b's refused call is not counted).
    let err = calls(&url, &a_key, 5).await.unwrap_err();
    assert_eq!(err.data.unwrap()["quota"], "tenant");

    // The usage report, by key: the calls that went upstream.
    let report = json_of(&base, M::GET, "/tenants/acme/usage?group_by=key", None).await;
    let rows = report["rows"].as_array().unwrap();
    let by_key: Vec<(String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_owned(),
                r["calls"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut expected = vec![(a_id.clone(), 4), (b_id.clone(), 2)];
    expected.sort();
    assert_eq!(by_key, expected);
    assert!(rows.iter().all(|r| r["bytesIn"].as_u64().unwrap() > 0
        && r["bytesOut"].as_u64().unwrap() > 0
        && r["errors"] == 0));
    assert!(rows[0]["latencyMs"]["p50"].as_f64().unwrap() > 0.0);
    assert_eq!(report["quotas"]["callsPerDay"]["used"], 6);
    assert_eq!(report["quotas"]["callsPerDay"]["limit"], 6);
    let by_tool = json_of(&base, M::GET, "/tenants/acme/usage?group_by=tool,day", None).await;
    let row = &by_tool["rows"][0];
    assert_eq!(
        (
            row["server"].as_str(),
            row["kind"].as_str(),
            row["tool"].as_str(),
            row["calls"].as_u64()
        ),
        (Some("alpha"), Some("tool"), Some("echo"), Some(6))
    );
    assert!(row["day"].as_str().unwrap().ends_with("T00:00:00Z"));
    let (status, csv) = admin(
        &base,
        M::GET,
        "/tenants/acme/usage?group_by=key&format=csv",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("key,calls,errors,latency_mean_ms"),
        "{csv}"
    );
    assert_eq!(lines.len(), 3);
    for (bad, field) in [
        ("group_by=colour", "group_by"),
        ("from=yesterday", "from"),
        ("format=xml", "format"),
        ("from=2026-12-02&to=2026-12-01", "to"),
    ] {
        let (status, text) =
            admin(&base, M::GET, &format!("/tenants/acme/usage?{bad}"), None).await;
        assert_eq!(status, 422, "{bad}: {text}");
        assert!(text.contains(field), "{bad}: {text}");
    }

    // A restart keeps the count: still refused.
    gw.stop().await;
    let gw = TestGateway::start("", &config).await;
    let url = format!("{}/t/acme/mcp", gw.base);
    let err = calls(&url, &a_key, 1).await.unwrap_err();
    assert_eq!(err.code.0, -32029);
    // Raising the quota admits again.
    json_of(
        &gw.base,
        M::PATCH,
        "/tenants/acme",
        Some(json!({"settings": {"quotas": {"callsPerDay": 7}}})),
    )
    .await;
    calls(&url, &a_key, 1).await.unwrap();
    assert_eq!(calls(&url, &a_key, 1).await.unwrap_err().code.0, -32029);
    drop(gw);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_and_usage_on_sqlite() {
    quotas_hold_and_usage_is_reported(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_and_usage_on_postgres() {
    quotas_hold_and_usage_is_reported(Backend::Postgres).await;
}
