//! Legacy Streamable HTTP session limits: per user (`maxSessionsPerUser`) and per tenant
//! (`maxSessions`), a session ended with `DELETE` or by going idle frees its place.

mod support;

use serde_json::json;
use support::tenancy::{Backend, TestDb, provision, tenant};
use support::{Era, TestGateway, stdio_demo, try_connect};

fn upstreams() -> String {
    stdio_demo("shared", None, "")
}

/// A raw legacy `initialize` (opens a session when admitted).
async fn initialize(url: &str, bearer: &str) -> reqwest::Response {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
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

async fn legacy_session(url: &str, bearer: &str) -> String {
    let resp = initialize(url, bearer).await;
    assert_eq!(resp.status().as_u16(), 200);
    resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// Sessions the gateway ends on its own (idle) stop counting against the limits: the
/// running counts are corrected before anyone is refused.
#[tokio::test]
async fn idle_sessions_that_ended_free_their_place() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let store = switchboard_store::Store::connect(&db.url).await.unwrap();
    let org = provision(&store).await;
    let mut acme = store.get_tenant(&tenant("acme")).await.unwrap().unwrap();
    acme.settings.max_sessions_per_user = Some(1);
    acme.settings.max_sessions = Some(1);
    store.update_tenant(&acme, 1).await.unwrap();
    let gw = TestGateway::start(
        "session_idle_ms = 300\n",
        &format!("{}{}", db.toml(), upstreams()),
    )
    .await;
    let url = format!("{}/t/acme/mcp", gw.base);
    let _idle = legacy_session(&url, &org.ada).await;
    let refused = initialize(&url, &org.root).await;
    assert_eq!(refused.status().as_u16(), 429, "the tenant's one session");
    // The idle session ends after 300 ms; a refusal re-counts at most once a second.
    let mut status = 0;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        status = initialize(&url, &org.root).await.status().as_u16();
        if status == 200 {
            break;
        }
    }
    assert_eq!(status, 200, "the ended session no longer counts");
    db.cleanup().await;
}

#[tokio::test]
async fn sessions_are_bounded_per_user() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let store = switchboard_store::Store::connect(&db.url).await.unwrap();
    let org = provision(&store).await;
    let mut acme = store.get_tenant(&tenant("acme")).await.unwrap().unwrap();
    acme.settings.max_sessions_per_user = Some(2);
    store.update_tenant(&acme, 1).await.unwrap();
    let gw = TestGateway::start("", &format!("{}{}", db.toml(), upstreams())).await;
    let url = format!("{}/t/acme/mcp", gw.base);
    let one = legacy_session(&url, &org.ada).await;
    let _two = legacy_session(&url, &org.ada).await;
    let third = initialize(&url, &org.ada).await;
    assert_eq!(third.status().as_u16(), 429);
    let body: serde_json::Value = third.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maxSessionsPerUser")
    );
    // A session ended with DELETE frees its place at once.
    let ended = reqwest::Client::new()
        .delete(&url)
        .bearer_auth(&org.ada)
        .header("mcp-session-id", &one)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(ended.status().is_success(), "{}", ended.status());
    let _three = legacy_session(&url, &org.ada).await;
    let fourth = initialize(&url, &org.ada).await;
    assert_eq!(fourth.status().as_u16(), 429, "two open again: refused");
    // Another user of the same tenant is not affected.
    assert!(
        try_connect(&url, Era::Legacy, Some(&org.root))
            .await
            .is_ok()
    );
    db.cleanup().await;
}
