//! The client-facing transports on real sockets: legacy HTTP+SSE, Streamable HTTP limits,
//! DNS-rebinding protection, and a legacy SSE upstream (a second gateway's /sse).

mod support;

use std::time::Duration;

use futures::StreamExt;
use rmcp::model::CallToolRequestParams;
use serde_json::json;
use support::*;

type EventStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// Reads the `endpoint` event of a legacy SSE stream: the absolute message URL, and the rest
/// of the stream.
async fn sse_endpoint(stream: reqwest::Response, base: &str) -> (String, EventStream) {
    let mut s: EventStream = Box::pin(stream.bytes_stream());
    let mut buffer = String::new();
    while !buffer.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .expect("endpoint event in time")
            .expect("stream open")
            .expect("chunk");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(buffer.starts_with("event: endpoint"), "{buffer}");
    let path = buffer
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("endpoint data")
        .to_owned();
    assert!(path.starts_with("/messages?sessionId="), "{path}");
    (format!("{base}{path}"), s)
}

#[tokio::test]
async fn legacy_sse_session_speaks_json_rpc_over_get_and_post() {
    let gw = TestGateway::start("", &stdio_demo("demo", None, "")).await;
    let http = reqwest::Client::new();
    let stream = http
        .get(format!("{}/sse", gw.base))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (post_url, mut events) = sse_endpoint(stream, &gw.base).await;
    let post = |body: serde_json::Value| http.post(&post_url).json(&body).send();
    let init = post(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}))
        .await
        .unwrap();
    assert_eq!(init.status(), 202);
    post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await
        .unwrap();
    post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "demo__echo", "arguments": {"text": "over sse"}}}))
        .await
        .unwrap();

    let mut buffer = String::new();
    while !buffer.contains("over sse") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        buffer.contains("\"protocolVersion\":\"2024-11-05\""),
        "{buffer}"
    );
    assert!(buffer.contains("event: message"), "{buffer}");

    // Bad input on the message endpoint.
    let bad_json = http.post(&post_url).body("{nope").send().await.unwrap();
    assert_eq!(bad_json.status(), 400);
    let body: serde_json::Value = bad_json.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32700);
    let unknown = http
        .post(format!("{}/messages?sessionId=doesnotexist", gw.base))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let missing = http
        .post(format!("{}/messages", gw.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    let not_jsonrpc = http
        .post(&post_url)
        .json(&json!({"hello": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(not_jsonrpc.status(), 400);

    // Closing the stream ends the session: its message URL is gone.
    drop(events);
    let mut closed = false;
    for _ in 0..50 {
        let r = http
            .post(&post_url)
            .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}))
            .send()
            .await
            .unwrap();
        if r.status() == 404 {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed, "session must end when its SSE stream closes");
}

#[tokio::test]
async fn foreign_host_and_origin_are_refused_on_every_mcp_endpoint() {
    let gw = TestGateway::start("", &stdio_demo("demo", None, "")).await;
    let http = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    for (path, method) in [("/mcp", "POST"), ("/sse", "GET")] {
        let url = format!("{}{path}", gw.base);
        let req = |h: &str, v: &str| {
            let builder = if method == "POST" {
                http.post(&url)
                    .json(&init)
                    .header("accept", "application/json, text/event-stream")
            } else {
                http.get(&url)
            };
            builder.header(h, v)
        };
        let evil_host = req("host", "evil.example:80").send().await.unwrap();
        assert_eq!(evil_host.status(), 403, "{path} with a foreign Host");
        let evil_origin = req("origin", "https://evil.example").send().await.unwrap();
        assert_eq!(evil_origin.status(), 403, "{path} with a foreign Origin");
        let local_origin = req("origin", "http://localhost:5173").send().await.unwrap();
        assert!(
            local_origin.status().is_success(),
            "{path} with a loopback Origin: {}",
            local_origin.status()
        );
    }
}

#[tokio::test]
async fn streamable_http_enforces_methods_body_size_and_sessions() {
    let gw = TestGateway::start("max_body_bytes = 2048", &stdio_demo("demo", None, "")).await;
    let http = reqwest::Client::new();
    let url = gw.mcp_url();
    let put = http.put(&url).send().await.unwrap();
    assert_eq!(put.status(), 405);
    let get_messages = http
        .get(format!("{}/messages", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(get_messages.status(), 405);
    let big_init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "x".repeat(10_000), "version": "0"}}});
    let too_big = http
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .json(&big_init)
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413, "/mcp body over max_body_bytes");
    // The legacy SSE message endpoint applies the same cap, with a JSON-RPC error.
    let stream = http.get(format!("{}/sse", gw.base)).send().await.unwrap();
    let (post_url, _events) = sse_endpoint(stream, &gw.base).await;
    let too_big = http.post(&post_url).json(&big_init).send().await.unwrap();
    assert_eq!(too_big.status(), 413, "/messages body over max_body_bytes");
    let body: serde_json::Value = too_big.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.max_body_bytes"),
        "{body}"
    );
    let unknown_session = http
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", "no-such-session")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_session.status(), 404);
    // A session ended with DELETE answers 204 (not 202: nothing is pending), and is gone.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"}}});
    let opened = http
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let ended = http
        .delete(&url)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 204);
    let after = http
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 404, "the ended session is gone");
    let not_found = http
        .get(format!("{}/nowhere", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(not_found.status(), 404);
}

#[tokio::test]
async fn a_legacy_sse_upstream_is_proxied() {
    // Gateway A serves the demo; gateway B uses A's legacy /sse endpoint as its upstream.
    let a = TestGateway::start("", &stdio_demo("demo", None, "")).await;
    let b = TestGateway::start(
        "",
        &http_upstream("a", "sse", &format!("{}/sse", a.base), ""),
    )
    .await;
    for era in [Era::Legacy, Era::Modern] {
        let (client, _) = connect(&b.mcp_url(), era).await;
        let tools = client.list_all_tools().await.unwrap();
        assert!(
            tools.iter().any(|t| t.name == "a__demo__echo"),
            "{era:?}: {:?}",
            tools.iter().map(|t| &t.name).collect::<Vec<_>>()
        );
        let mut params = CallToolRequestParams::new("a__demo__echo");
        params.arguments = json!({"text": "two hops"}).as_object().cloned();
        let result = client.call_tool(params).await.unwrap();
        assert_eq!(result.content[0].as_text().unwrap().text, "two hops");
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn sse_streams_carry_keep_alives() {
    let gw = TestGateway::start("sse_keep_alive_ms = 100", &stdio_demo("demo", None, "")).await;
    let response = reqwest::Client::new()
        .get(format!("{}/sse", gw.base))
        .send()
        .await
        .unwrap();
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !buffer.lines().any(|l| l.starts_with(':')) {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("a keep-alive comment within 5 s")
            .unwrap()
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn the_stdio_bridge_reaches_a_remote_gateway() {
    use rmcp::ServiceExt;
    let gw = TestGateway::start("", &stdio_demo("demo", None, "")).await;
    let mut command = tokio::process::Command::new(switchboard_bin());
    command.args(["connect", &gw.mcp_url(), "--token", "not-needed-yet"]);
    let transport = rmcp::transport::TokioChildProcess::new(command).unwrap();
    let client = tokio::time::timeout(
        Duration::from_secs(20),
        TestClient::default().serve(transport),
    )
    .await
    .expect("bridge handshake in time")
    .expect("bridge handshake succeeds");
    let tools = client.list_all_tools().await.unwrap();
    assert!(
        tools.iter().any(|t| t.name == "demo__echo"),
        "names pass through the bridge unchanged"
    );
    let mut params = CallToolRequestParams::new("demo__echo");
    params.arguments = json!({"text": "through the bridge"}).as_object().cloned();
    let result = client.call_tool(params).await.unwrap();
    assert_eq!(
        result.content[0].as_text().unwrap().text,
        "through the bridge"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn legacy_sessions_are_bounded_but_stateless_requests_are_not() {
    let gw = TestGateway::start("max_sessions = 2", &stdio_demo("demo", None, "")).await;
    let (a, _) = connect(&gw.mcp_url(), Era::Legacy).await;
    let (b, _) = connect(&gw.mcp_url(), Era::Legacy).await;
    let third = reqwest::Client::new()
        .post(gw.mcp_url())
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 503);
    let body: serde_json::Value = third.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.max_sessions"),
        "{body}"
    );
    // Stateless 2026-07-28 requests hold no session and are still served.
    let (modern, _) = connect(&gw.mcp_url(), Era::Modern).await;
    assert_eq!(
        modern.list_all_tools().await.unwrap().len(),
        DEMO_TOOLS.len()
    );
    // Closing a session frees its place.
    a.cancel().await.unwrap();
    let (c, _) = connect(&gw.mcp_url(), Era::Legacy).await;
    b.cancel().await.unwrap();
    c.cancel().await.unwrap();
    modern.cancel().await.unwrap();
}
