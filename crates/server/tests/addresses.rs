//! Client addresses: an API key's own IP allowlist (on the MCP endpoint and the admin API),
//! and `X-Forwarded-For` believed only from `server.trusted_proxies` — the address every
//! layer sees then (allowlists, the audit log) is the client's, not the proxy's.

mod support;

use serde_json::{Value, json};
use support::TestGateway;
use support::admin::{Api, PLATFORM};
use support::stdio_demo;
use support::tenancy::{Backend, TestDb};
use switchboard_domain::audit::AuditKind;

async fn post(
    url: &str,
    bearer: &str,
    forwarded: Option<&str>,
    body: Option<Value>,
) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut request = match &body {
        Some(body) => client.post(url).json(body),
        None => client.get(url),
    }
    .bearer_auth(bearer)
    .header("accept", "application/json, text/event-stream");
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}})
}

async fn keys(base: &str) -> (String, String) {
    let api = Api::new(base);
    let admin = |path: &'static str, body: Value| {
        let api = &api;
        async move {
            let made = api
                .send(Some(PLATFORM), reqwest::Method::POST, path, Some(body))
                .await;
            assert!(made.status.is_success(), "{}", made.body);
            made.body
        }
    };
    admin(
        "/tenants",
        json!({"id": "acme", "name": "Acme", "owner": "root@acme.com"}),
    )
    .await;
    let owner = json!({"type": "user", "id": "root@acme.com"});
    let fenced = admin(
        "/tenants/acme/api-keys",
        json!({"name": "office", "owner": owner, "ipAllowlist": ["203.0.113.0/24"]}),
    )
    .await;
    assert_eq!(fenced["key"]["ipAllowlist"], json!(["203.0.113.0/24"]));
    let open = api.user_key("acme", "root@acme.com").await;
    (fenced["secret"].as_str().unwrap().to_owned(), open)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_allowlists_see_the_client_behind_trusted_proxies() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let config = format!(
        "{}[admin]\ntoken = {PLATFORM:?}\n{}",
        db.toml(),
        stdio_demo("alpha", None, "")
    );
    let gw = TestGateway::start("trusted_proxies = [\"127.0.0.1\"]\n", &config).await;
    let (fenced, open) = keys(&gw.base).await;
    let mcp = format!("{}/t/acme/mcp", gw.base);
    let me = format!("{}/admin/v1/me", gw.base);

    // From inside the range (as the proxy says): admitted, on MCP and on the admin API.
    assert_eq!(
        post(&mcp, &fenced, Some("203.0.113.5"), Some(initialize()))
            .await
            .0,
        200
    );
    assert_eq!(
        post(&me, &fenced, Some("6.6.6.6, 203.0.113.5"), None)
            .await
            .0,
        200
    );
    // From outside, or from the proxy itself: refused with a message naming the rule.
    let (status, body) = post(&mcp, &fenced, Some("198.51.100.1"), Some(initialize())).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("IP allowlist") && body.contains("198.51.100.1"),
        "{body}"
    );
    assert_eq!(post(&mcp, &fenced, None, Some(initialize())).await.0, 403);
    let (status, body) = post(&me, &fenced, Some("198.51.100.1"), None).await;
    assert_eq!(status, 403, "{body}");
    // A key without an allowlist works from anywhere.
    assert_eq!(
        post(&mcp, &open, Some("198.51.100.1"), Some(initialize()))
            .await
            .0,
        200
    );

    // The audit trail names the client, not the proxy.
    let store = gw.tenancy().store.clone();
    let found = support::eventually_async(std::time::Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            store
                .audit_page("acme", 0, 1000)
                .await
                .unwrap()
                .iter()
                .any(|r| {
                    r.event.kind == AuditKind::AuthRefused
                        && r.event.detail.contains("198.51.100.1")
                })
        }
    })
    .await;
    assert!(found, "the refusal is audited with the client's address");
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let config = format!(
        "{}[admin]\ntoken = {PLATFORM:?}\n{}",
        db.toml(),
        stdio_demo("alpha", None, "")
    );
    let gw = TestGateway::start("", &config).await;
    let (fenced, _) = keys(&gw.base).await;
    let mcp = format!("{}/t/acme/mcp", gw.base);
    // The client claims an allowed address; nobody vouches for it.
    assert_eq!(
        post(&mcp, &fenced, Some("203.0.113.5"), Some(initialize()))
            .await
            .0,
        403
    );
    db.cleanup().await;
}
