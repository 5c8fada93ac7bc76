//! Sessions through the admin API: a tenant admin lists the tenant's open legacy sessions
//! (Streamable HTTP and SSE) with their owners, ends one — its client's next request is
//! refused as an unknown session — and cannot see or end another tenant's.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::admin::{Api, PLATFORM};
use support::tenancy::{Backend, TestDb};
use support::{TestGateway, stdio_demo};

async fn admin(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, text) = Api::new(base).raw(token, method, path, body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_admins_list_and_end_their_sessions() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let config = format!(
        "{}[admin]\ntoken = {PLATFORM:?}\n{}",
        db.toml(),
        stdio_demo("alpha", None, "")
    );
    let gw = TestGateway::start("", &config).await;
    let base = gw.base.clone();
    use reqwest::Method as M;
    let mut keys = Vec::new();
    for (tenant, owner) in [("acme", "root@acme.com"), ("globex", "boss@globex.com")] {
        let (status, _) = admin(
            &base,
            PLATFORM,
            M::POST,
            "/tenants",
            Some(json!({"id": tenant, "name": tenant, "owner": owner})),
        )
        .await;
        assert_eq!(status, 201);
        let (_, made) = admin(
            &base,
            PLATFORM,
            M::POST,
            &format!("/tenants/{tenant}/api-keys"),
            Some(json!({"name": "k", "owner": {"type": "user", "id": owner}})),
        )
        .await;
        keys.push(made["secret"].as_str().unwrap().to_owned());
    }
    let (root, boss) = (&keys[0], &keys[1]);

    // A legacy Streamable HTTP session and a legacy SSE stream of acme's owner.
    let mcp = format!("{base}/t/acme/mcp");
    let post = |session: Option<String>, body: Value| {
        let (mcp, root) = (mcp.clone(), root.clone());
        async move {
            let mut request = reqwest::Client::new()
                .post(&mcp)
                .bearer_auth(&root)
                .header("accept", "application/json, text/event-stream")
                .json(&body);
            if let Some(session) = session {
                request = request
                    .header("mcp-session-id", session)
                    .header("mcp-protocol-version", "2025-06-18");
            }
            request.send().await.unwrap()
        }
    };
    let opened = post(None, json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})).await;
    assert_eq!(opened.status(), 200);
    let session_id = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let sse = reqwest::Client::new()
        .get(format!("{base}/t/acme/sse"))
        .bearer_auth(root)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);

    let (status, listed) = admin(&base, root, M::GET, "/tenants/acme/sessions", None).await;
    assert_eq!(status, 200, "{listed}");
    let items = listed["items"].as_array().unwrap();
    let mut transports: Vec<&str> = items
        .iter()
        .map(|s| s["transport"].as_str().unwrap())
        .collect();
    transports.sort();
    assert_eq!(transports, ["sse", "streamable-http"], "{listed}");
    assert!(
        items
            .iter()
            .all(|s| s["owner"] == "user:root@acme.com" && s["openedAt"].as_i64().unwrap() > 0)
    );
    let streamable = items
        .iter()
        .find(|s| s["transport"] == "streamable-http")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stream = items.iter().find(|s| s["transport"] == "sse").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Another tenant sees none of them and cannot end them.
    let (_, theirs) = admin(&base, boss, M::GET, "/tenants/globex/sessions", None).await;
    assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
    assert_eq!(
        admin(&base, boss, M::GET, "/tenants/acme/sessions", None)
            .await
            .0,
        404
    );
    assert_eq!(
        admin(
            &base,
            boss,
            M::DELETE,
            &format!("/tenants/globex/sessions/{streamable}"),
            None
        )
        .await
        .0,
        404
    );

    assert_eq!(streamable, session_id);
    // Ending the Streamable HTTP session: its next request is refused as an unknown session.
    let before = post(Some(session_id.clone()), list.clone()).await;
    assert_ne!(before.status(), 404, "the session works until it is ended");
    let path = format!("/tenants/acme/sessions/{streamable}");
    assert_eq!(admin(&base, root, M::DELETE, &path, None).await.0, 204);
    let after = post(Some(session_id.clone()), list.clone()).await;
    assert_eq!(
        after.status(),
        404,
        "a terminated session no longer answers"
    );
    // Ending the SSE stream closes it.
    assert_eq!(
        admin(
            &base,
            root,
            M::DELETE,
            &format!("/tenants/acme/sessions/{stream}"),
            None
        )
        .await
        .0,
        204
    );
    let body = tokio::time::timeout(Duration::from_secs(10), sse.text()).await;
    assert!(
        body.is_ok(),
        "the SSE stream ends when its session is terminated"
    );
    assert_eq!(
        admin(
            &base,
            root,
            M::DELETE,
            &format!("/tenants/acme/sessions/{stream}"),
            None
        )
        .await
        .0,
        404
    );
    let gone = support::eventually_async(Duration::from_secs(10), || {
        let (base, root) = (base.clone(), root.clone());
        async move {
            let (_, listed) = admin(&base, &root, M::GET, "/tenants/acme/sessions", None).await;
            listed["items"].as_array().is_some_and(Vec::is_empty)
        }
    })
    .await;
    assert!(gone, "ended sessions leave the list");
    let records = gw.tenancy().store.clone();
    let audited = support::eventually_async(Duration::from_secs(10), || {
        let store = records.clone();
        async move {
            store
                .audit_page("acme", 0, 1000)
                .await
                .unwrap()
                .iter()
                .any(|r| r.event.reason == "session.terminate")
        }
    })
    .await;
    assert!(audited);
    db.cleanup().await;
}
