//! Parked sessions through the real server: a quiet legacy session's service loop stops and
//! its client carries on as if nothing happened — the same session id, its GET stream kept
//! open, list changes still delivered, `DELETE` and the idle timeout still ending it.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Era, TestGateway, call, connect, eventually, stdio_demo, text};

/// A gateway that parks sessions after one quiet second.
async fn gateway() -> TestGateway {
    TestGateway::start(
        "session_park_after_ms = 1000\n",
        &stdio_demo("demo", None, ""),
    )
    .await
}

/// `switchboard_sessions_parked` as `/metrics` reports it.
async fn parked(gw: &TestGateway) -> f64 {
    support::metric(gw, "switchboard_sessions_parked")
        .await
        .unwrap_or(-1.0)
}

/// A legacy-era POST to `url`, with `bearer`, on `session`.
async fn post(
    url: &str,
    bearer: Option<&str>,
    session: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(key) = bearer {
        request = request.bearer_auth(key);
    }
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-06-18");
    }
    request.send().await.unwrap()
}

/// Opens a legacy session on `url` (`initialize`, then `initialized`); returns its id.
async fn open_session(url: &str, bearer: Option<&str>) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let opened = post(url, bearer, None, init).await;
    assert_eq!(opened.status(), 200);
    let id = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(
        post(url, bearer, Some(&id), initialized).await.status(),
        202
    );
    id
}

async fn until_parked(gw: &TestGateway, n: f64) -> bool {
    for _ in 0..50 {
        if parked(gw).await == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_sessions_client_carries_on_and_hears_of_list_changes() {
    let mut gw = gateway().await;
    let (client, seen) = connect(&gw.mcp_url(), Era::Legacy).await;
    let (other, _) = connect(&gw.mcp_url(), Era::Legacy).await;
    let one = client
        .call_tool(call("demo__echo", json!({"text": "one"})))
        .await
        .unwrap();
    assert_eq!(text(&one), "one");

    assert!(until_parked(&gw, 2.0).await, "both quiet sessions park");
    assert_eq!(
        gw.gateway().hub().session_count(),
        0,
        "no service loop left"
    );

    // Another client changes the tool list: the parked session hears of it on the GET
    // stream rmcp's client keeps open (`other` is restored to make the call).
    other
        .call_tool(call("demo__toggle_extra", json!({})))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || *seen
            .tools_changed_count
            .lock()
            .unwrap()
            > 0)
        .await,
        "a parked session still gets notifications/tools/list_changed"
    );

    // Its next call restores it, under the same session.
    let two = client
        .call_tool(call("demo__echo", json!({"text": "two"})))
        .await
        .unwrap();
    assert_eq!(text(&two), "two");
    assert!(
        client
            .list_all_tools()
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == "demo__extra")
    );
    assert!(gw.gateway().hub().session_count() >= 1);
    drop((client, other));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_session_ends_with_delete_and_unknown_ids_stay_unknown() {
    let mut gw = gateway().await;
    let mcp = gw.mcp_url();
    let id = open_session(&mcp, None).await;
    assert!(until_parked(&gw, 1.0).await);

    // A request restores it: the reply comes on the same session.
    let listed = post(
        &mcp,
        None,
        Some(&id),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    assert_eq!(listed.status(), 200);
    assert!(listed.text().await.unwrap().contains("demo__echo"));
    assert_eq!(parked(&gw).await, 0.0);
    assert!(until_parked(&gw, 1.0).await, "and parks again when quiet");

    // An id nobody was given is not restored.
    let unknown = post(
        &mcp,
        None,
        Some("0123456789abcdef0123456789abcdef"),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
    )
    .await;
    assert_eq!(unknown.status(), 404);

    // DELETE ends the parked session; its id is unknown afterwards.
    let deleted = reqwest::Client::new()
        .delete(&mcp)
        .header("mcp-session-id", &id)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    assert_eq!(parked(&gw).await, 0.0);
    let gone = post(
        &mcp,
        None,
        Some(&id),
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}),
    )
    .await;
    assert_eq!(gone.status(), 404);
    gw.stop().await;
}

/// Tenant isolation: a parked session is bound to its owner as a live one is. Another
/// tenant's credential presenting its id gets 404 and neither restores nor ends it; another
/// tenant's admin cannot end it; its own tenant's admin can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_session_stays_its_owners() {
    use support::admin::{Api, PLATFORM};
    use support::tenancy::{Backend, TestDb};
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let config = format!(
        "{}[admin]\ntoken = {PLATFORM:?}\n{}",
        db.toml(),
        stdio_demo("demo", None, "")
    );
    let mut gw = TestGateway::start("session_park_after_ms = 1000\n", &config).await;
    let base = gw.base.clone();
    let api = Api::new(&base);
    let admin = |token: String, method: reqwest::Method, path: String, body: Option<Value>| {
        let api = &api;
        async move {
            let (status, text) = api.raw(&token, method, &path, body).await;
            (
                status,
                serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
            )
        }
    };
    use reqwest::Method as M;
    let mut keys = Vec::new();
    for (tenant, owner) in [("acme", "root@acme.com"), ("globex", "boss@globex.com")] {
        let body = json!({"id": tenant, "name": tenant, "owner": owner});
        let (status, _) = admin(PLATFORM.into(), M::POST, "/tenants".into(), Some(body)).await;
        assert_eq!(status, 201);
        let body = json!({"name": "k", "owner": {"type": "user", "id": owner}});
        let path = format!("/tenants/{tenant}/api-keys");
        let (_, made) = admin(PLATFORM.into(), M::POST, path, Some(body)).await;
        keys.push(made["secret"].as_str().unwrap().to_owned());
    }
    let (root, boss) = (keys[0].clone(), keys[1].clone());
    let url = |tenant: &str| format!("{base}/t/{tenant}/mcp");
    let post = |tenant: &str, key: &str, session: Option<&str>, body: Value| {
        let url = url(tenant);
        let (key, session) = (key.to_owned(), session.map(str::to_owned));
        async move { post(&url, Some(&key), session.as_deref(), body).await }
    };
    let id = open_session(&url("acme"), Some(&root)).await;
    assert!(until_parked(&gw, 1.0).await);

    // globex presents acme's parked session, on either path: unknown, and nothing changes.
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    for tenant in ["globex", "acme"] {
        let probed = post(tenant, &boss, Some(&id), list.clone()).await;
        assert!(
            [403, 404].contains(&probed.status().as_u16()),
            "{tenant}: {}",
            probed.status()
        );
    }
    assert_eq!(parked(&gw).await, 1.0, "not restored by another tenant");
    let path = format!("/tenants/globex/sessions/{id}");
    assert_eq!(admin(boss.clone(), M::DELETE, path, None).await.0, 404);
    let (status, listed) = admin(root.clone(), M::GET, "/tenants/acme/sessions".into(), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        listed["items"][0]["id"],
        id.as_str(),
        "a parked session is listed"
    );

    // Its owner carries on; its tenant's admin ends it once parked again.
    let listed = post("acme", &root, Some(&id), list.clone()).await;
    assert_eq!(listed.status(), 200);
    assert!(until_parked(&gw, 1.0).await);
    let path = format!("/tenants/acme/sessions/{id}");
    let (status, _) = admin(root.clone(), M::DELETE, path, None).await;
    assert!((200..300).contains(&status), "{status}");
    assert_eq!(parked(&gw).await, 0.0);
    let gone = post("acme", &root, Some(&id), list).await;
    assert_eq!(gone.status(), 404);
    gw.stop().await;
}
