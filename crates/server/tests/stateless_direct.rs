//! The direct path for plain 2026-07-28 stateless requests (`downstream/direct/`): served
//! without rmcp's per-request service loop, answered exactly as rmcp answers (progress
//! included), and everything that is not plain — notifications, mismatched headers, foreign
//! hosts and origins, bad bodies — left to rmcp. `switchboard_direct_requests_total` tells
//! which path a request took.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::tenancy::{Backend, TestDb, provision};
use support::{Era, TestGateway, call, connect, eventually, stdio_demo, text};

/// `switchboard_direct_requests_total` as `/metrics` reports it.
async fn direct(gw: &TestGateway) -> u64 {
    support::metric(gw, "switchboard_direct_requests_total")
        .await
        .map_or(0, |v| v as u64)
}

/// A 2026-07-28 request body: `method` with `params`, the required `_meta` added.
fn request(id: u64, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A POST of `body` with the headers a 2026-07-28 client sends (`Mcp-Name` = `name`).
fn post(
    url: &str,
    bearer: Option<&str>,
    body: &Value,
    name: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", body["method"].as_str().unwrap())
        .json(body);
    if let Some(name) = name {
        request = request.header("mcp-name", name);
    }
    if let Some(key) = bearer {
        request = request.bearer_auth(key);
    }
    request
}

/// [`post`]s and reads the answer: status, content type and JSON body.
async fn exchange(
    url: &str,
    bearer: Option<&str>,
    body: &Value,
    name: Option<&str>,
) -> (u16, String, Value) {
    json_of(post(url, bearer, body, name).send().await.unwrap()).await
}

async fn json_of(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    (
        status,
        kind,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_requests_go_direct_and_everything_else_to_rmcp() {
    let mut gw = TestGateway::start("", &stdio_demo("demo", None, "")).await;
    let mcp = gw.mcp_url();

    // rmcp's own 2026-07-28 client: every call it makes is plain.
    let (client, _) = connect(&mcp, Era::Modern).await;
    let before = direct(&gw).await;
    for n in 0..3 {
        let echoed = client
            .call_tool(call("demo__echo", json!({"text": format!("hi {n}")})))
            .await
            .unwrap();
        assert_eq!(text(&echoed), format!("hi {n}"));
    }
    assert_eq!(direct(&gw).await, before + 3, "three calls, three direct");

    // A plain call: the JSON body rmcp would write, `resultType` included.
    let body = request(
        7,
        "tools/call",
        json!({"name": "demo__echo", "arguments": {"text": "x"}}),
    );
    let before = direct(&gw).await;
    let (status, kind, answer) = exchange(&mcp, None, &body, Some("demo__echo")).await;
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    assert_eq!(answer["id"], 7);
    assert_eq!(answer["result"]["content"][0]["text"], "x");
    assert_eq!(answer["result"]["resultType"], "complete");
    // A plain list, and a call the gateway refuses: answered on the direct path too.
    let list = request(8, "tools/list", json!({}));
    let (status, _, listed) = exchange(&mcp, None, &list, None).await;
    assert_eq!(status, 200);
    assert!(
        listed["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "demo__echo")
    );
    let unknown = request(
        9,
        "tools/call",
        json!({"name": "demo__nope", "arguments": {}}),
    );
    let (status, _, refused) = exchange(&mcp, None, &unknown, Some("demo__nope")).await;
    assert_eq!(status, 200, "{refused}");
    assert_eq!(refused["id"], 9);
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("demo__nope"),
        "{refused}"
    );
    // Progress asked for: a quick answer is still plain JSON; progress that comes first
    // turns the reply into a stream of the progress, then the answer.
    let mut with_progress = body.clone();
    with_progress["params"]["_meta"]["progressToken"] = json!("p1");
    let (status, kind, quick) = exchange(&mcp, None, &with_progress, Some("demo__echo")).await;
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    assert_eq!(quick["result"]["content"][0]["text"], "x");
    let mut counting = request(
        10,
        "tools/call",
        json!({"name": "demo__slow_count", "arguments": {"steps": 3, "delay_ms": 20}}),
    );
    counting["params"]["_meta"]["progressToken"] = json!("p2");
    let streamed = post(&mcp, None, &counting, Some("demo__slow_count"))
        .send()
        .await
        .unwrap();
    assert!(
        streamed.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events: Vec<Value> = streamed
        .text()
        .await
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .collect();
    let (answer, progress) = events.split_last().unwrap();
    assert_eq!(progress.len(), 3, "{events:?}");
    for (n, p) in progress.iter().enumerate() {
        assert_eq!(p["method"], "notifications/progress");
        assert_eq!(p["params"]["progressToken"], "p2", "the client's own token");
        assert_eq!(p["params"]["progress"], (n + 1) as f64);
    }
    assert_eq!(answer["id"], 10);
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("counted to 3")
    );
    assert_eq!(direct(&gw).await, before + 5);

    // Not plain: rmcp answers, with its own statuses and codes.
    let before = direct(&gw).await;
    let (status, _, mismatch) = exchange(&mcp, None, &body, Some("demo__add")).await;
    assert_eq!(
        status, 400,
        "Mcp-Name must repeat the body's name: {mismatch}"
    );
    assert_eq!(mismatch["error"]["code"], -32020);
    let notification = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, _) = exchange(&mcp, None, &notification, None).await;
    assert_eq!(status, 202, "a stateless notification is accepted");
    let foreign = post(&mcp, None, &body, Some("demo__echo"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        foreign.status(),
        403,
        "a foreign Host is refused, as by rmcp"
    );
    let origin = post(&mcp, None, &body, Some("demo__echo"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        origin.status(),
        403,
        "a foreign Origin is refused, as by rmcp"
    );
    let garbled = reqwest::Client::new()
        .post(&mcp)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .body("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ")
        .send()
        .await
        .unwrap();
    assert!(garbled.status().is_client_error(), "{}", garbled.status());
    let text_only = reqwest::Client::new()
        .post(&mcp)
        .header("accept", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "demo__echo")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(text_only.status(), 406, "both media types must be accepted");
    assert_eq!(direct(&gw).await, before, "none of those went direct");
    drop(client);
    gw.stop().await;
}

/// Tenant isolation on the direct path: each caller lists and calls only what its own
/// tenant and grants allow, and another tenant's tool is unknown, exactly as through rmcp;
/// a call whose client goes away ends at once and is still in its tenant's audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_direct_path_keeps_tenants_apart() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let store = switchboard_store::Store::connect(&db.url).await.unwrap();
    let org = provision(&store).await;
    let upstreams = support::tenancy::two_tenant_upstreams();
    let mut gw = TestGateway::start("", &format!("{}{upstreams}", db.toml())).await;
    let url = |tenant: &str| format!("{}/t/{tenant}/mcp", gw.base);
    let names = |listed: &Value| -> Vec<String> {
        listed["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = direct(&gw).await;
    let list = request(1, "tools/list", json!({}));
    let (_, _, acme) = exchange(&url("acme"), Some(&org.ada), &list, None).await;
    let (_, _, globex) = exchange(&url("globex"), Some(&org.gus), &list, None).await;
    let (acme, globex) = (names(&acme), names(&globex));
    assert!(acme.iter().any(|n| n.starts_with("alpha__")), "{acme:?}");
    assert!(!acme.iter().any(|n| n.starts_with("beta__")), "{acme:?}");
    assert!(globex.iter().any(|n| n.starts_with("beta__")), "{globex:?}");
    assert!(
        !globex.iter().any(|n| n.starts_with("alpha__")),
        "{globex:?}"
    );

    // globex calls acme's tool: unknown, as if it did not exist.
    let steal = request(
        2,
        "tools/call",
        json!({"name": "alpha__echo", "arguments": {"text": "x"}}),
    );
    let (status, _, refused) =
        exchange(&url("globex"), Some(&org.gus), &steal, Some("alpha__echo")).await;
    assert_eq!(status, 200);
    assert!(refused["error"].is_object(), "{refused}");
    assert!(refused.get("result").is_none());
    // ada's own call works; ada's key at globex's endpoint is refused before any MCP.
    let own = request(
        3,
        "tools/call",
        json!({"name": "alpha__echo", "arguments": {"text": "mine"}}),
    );
    let (_, _, mine) = exchange(&url("acme"), Some(&org.ada), &own, Some("alpha__echo")).await;
    assert_eq!(mine["result"]["content"][0]["text"], "mine");
    assert_eq!(direct(&gw).await, before + 4, "all four went direct");
    let crossed = post(&url("globex"), Some(&org.ada), &own, Some("alpha__echo"))
        .send()
        .await
        .unwrap();
    assert!(
        [401, 403].contains(&crossed.status().as_u16()),
        "{}",
        crossed.status()
    );
    assert_eq!(direct(&gw).await, before + 4);

    // A call whose client goes away is cancelled — and still recorded in the audit log.
    let slow = request(
        5,
        "tools/call",
        json!({"name": "alpha__slow_count", "arguments": {"steps": 1000, "delay_ms": 50}}),
    );
    let pending = tokio::spawn(
        post(
            &url("acme"),
            Some(&org.root),
            &slow,
            Some("alpha__slow_count"),
        )
        .send(),
    );
    assert!(eventually(Duration::from_secs(5), || gw.gateway().in_flight() == 1).await);
    pending.abort();
    assert!(
        eventually(Duration::from_secs(5), || gw.gateway().in_flight() == 0).await,
        "the call ends with its client's connection, not 50 s later"
    );
    assert_eq!(direct(&gw).await, before + 5, "it went direct");
    let mut recorded = None;
    for _ in 0..50 {
        let page = store.audit_page("acme", 0, 10_000).await.unwrap();
        recorded = page
            .into_iter()
            .find(|r| r.event.target == "alpha/slow_count");
        if recorded.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recorded = recorded.expect("the cancelled call is in acme's audit log");
    assert_ne!(recorded.event.outcome, "ok", "{:?}", recorded.event);
    gw.stop().await;
    db.cleanup().await;
}

/// `server.stateless_direct = false`: every request goes through rmcp, with the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turned_off_rmcp_serves_everything_alike() {
    let mut gw =
        TestGateway::start("stateless_direct = false\n", &stdio_demo("demo", None, "")).await;
    let body = request(
        7,
        "tools/call",
        json!({"name": "demo__echo", "arguments": {"text": "x"}}),
    );
    let (status, kind, answer) = exchange(&gw.mcp_url(), None, &body, Some("demo__echo")).await;
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    assert_eq!(answer["result"]["content"][0]["text"], "x");
    assert_eq!(answer["result"]["resultType"], "complete");
    assert_eq!(direct(&gw).await, 0);
    gw.stop().await;
}

/// Every method the direct path takes answers as through rmcp: lists, a prompt, a resource
/// (by URI, which its `Mcp-Name` repeats), a template list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_plain_method_is_answered_on_the_direct_path() {
    let mut gw = TestGateway::start("", &stdio_demo("demo", None, "")).await;
    let mcp = gw.mcp_url();
    let cases = [
        ("prompts/list", json!({}), None, "prompts"),
        (
            "prompts/get",
            json!({"name": "demo__greeting", "arguments": {"name": "Ada"}}),
            Some("demo__greeting"),
            "messages",
        ),
        ("resources/list", json!({}), None, "resources"),
        (
            "resources/read",
            json!({"uri": "demo+demo://readme"}),
            Some("demo+demo://readme"),
            "contents",
        ),
        (
            "resources/templates/list",
            json!({}),
            None,
            "resourceTemplates",
        ),
    ];
    for (n, (method, params, name, field)) in cases.into_iter().enumerate() {
        let before = direct(&gw).await;
        let body = request(n as u64 + 1, method, params);
        let (status, kind, answer) = exchange(&mcp, None, &body, name).await;
        assert_eq!(
            (status, kind.as_str()),
            (200, "application/json"),
            "{method}"
        );
        assert_eq!(answer["id"], n + 1, "{method}");
        assert!(answer["result"][field].is_array(), "{method}: {answer}");
        assert_eq!(direct(&gw).await, before + 1, "{method} went direct");
    }
    let greeting = request(
        9,
        "prompts/get",
        json!({"name": "demo__greeting", "arguments": {"name": "Ada"}}),
    );
    let (_, _, got) = exchange(&mcp, None, &greeting, Some("demo__greeting")).await;
    assert!(got.to_string().contains("Ada"), "{got}");
    gw.stop().await;
}
