//! Server-to-client requests through the gateway: sampling reaches the one client it belongs
//! to, across protocol eras — legacy session ↔ legacy upstream (per-session connection),
//! legacy session ↔ 2026-07-28 upstream (input_required driven by the gateway), 2026-07-28
//! client ↔ 2026-07-28 upstream (input_required passed through) — and the one combination
//! that cannot be attributed (a shared legacy upstream connection) fails with a specific error.

mod support;

use std::time::Duration;

use rmcp::model::CallToolRequestParams;
use serde_json::json;
use support::*;

fn sample(name: &str, prompt: &str) -> CallToolRequestParams {
    call(name, json!({"prompt": prompt}))
}

#[tokio::test]
async fn legacy_client_answers_a_modern_upstream_through_the_gateway() {
    // Shared connection; the demo upstream speaks 2026-07-28 and answers input_required.
    let gw = TestGateway::start("", &stdio_demo("demo", None, "")).await;
    let (client, seen) = connect(&gw.mcp_url(), Era::Legacy).await;
    let result = client
        .call_tool(sample("demo__sample", "ping"))
        .await
        .unwrap();
    assert_eq!(text(&result), "client said: pong to ping");
    assert_eq!(*seen.sampling_requests.lock().unwrap(), 1);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn modern_client_receives_input_required_and_completes() {
    let gw = TestGateway::start("", &stdio_demo("demo", None, "")).await;
    let (client, seen) = connect(&gw.mcp_url(), Era::Modern).await;
    // rmcp's call_tool drives the input_required rounds through the client handler.
    let result = client
        .call_tool(sample("demo__sample", "hi"))
        .await
        .unwrap();
    assert_eq!(text(&result), "client said: pong to hi");
    assert_eq!(*seen.sampling_requests.lock().unwrap(), 1);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn per_session_connections_route_sampling_to_their_own_session() {
    let dir = temp_dir("per-session");
    let gw = TestGateway::start(
        "",
        &stdio_demo("demo", Some(&dir), "isolation = \"per-session\""),
    )
    .await;
    assert_eq!(processes_in(&dir).len(), 1, "the shared connection's child");
    let (a, seen_a) = connect(&gw.mcp_url(), Era::Legacy).await;
    let (b, seen_b) = connect(&gw.mcp_url(), Era::Legacy).await;
    assert!(
        eventually(Duration::from_secs(10), || processes_in(&dir).len() == 3).await,
        "each legacy session gets its own child: {:?}",
        processes_in(&dir)
    );
    let ra = a.call_tool(sample("demo__sample", "from a")).await.unwrap();
    let rb = b.call_tool(sample("demo__sample", "from b")).await.unwrap();
    assert_eq!(text(&ra), "client said: pong to from a");
    assert_eq!(text(&rb), "client said: pong to from b");
    assert_eq!(*seen_a.sampling_requests.lock().unwrap(), 1);
    assert_eq!(*seen_b.sampling_requests.lock().unwrap(), 1);

    // Ending a session stops its own child.
    a.cancel().await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || processes_in(&dir).len() == 2).await,
        "the closed session's child must stop: {:?}",
        processes_in(&dir)
    );
    b.cancel().await.unwrap();
    assert!(eventually(Duration::from_secs(10), || processes_in(&dir).len() == 1).await);
}

#[tokio::test]
async fn a_shared_legacy_connection_refuses_sampling_with_a_specific_error() {
    // B reaches A over legacy SSE (a legacy session on a shared connection); A's demo asks for
    // sampling, which A can only relay to B's shared connection, which cannot attribute it.
    let a = TestGateway::start("", &stdio_demo("demo", None, "")).await;
    let b = TestGateway::start(
        "",
        &http_upstream("a", "sse", &format!("{}/sse", a.base), ""),
    )
    .await;
    let (client, seen) = connect(&b.mcp_url(), Era::Legacy).await;
    let err = mcp_error(
        client
            .call_tool(sample("a__demo__sample", "x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code.0, -32012, "{err:?}");
    assert!(err.message.contains("per-session"), "{}", err.message);
    assert_eq!(*seen.sampling_requests.lock().unwrap(), 0);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn modern_client_answers_a_legacy_upstream_through_input_required_rounds() {
    // A legacy-only, per-session upstream: a 2026-07-28 call runs on a connection of its own;
    // the upstream's sampling request comes back to the client as an input_required round and
    // the answer goes back to the waiting upstream.
    let dir = temp_dir("bridge");
    let gw = TestGateway::start(
        "",
        &stdio_demo_with(
            "demo",
            Some(&dir),
            &["demo-upstream", "--legacy"],
            "isolation = \"per-session\"",
        ),
    )
    .await;
    let negotiated = gw.gateway().upstreams()[0]
        .status()
        .protocol_version
        .clone();
    assert_eq!(
        negotiated.as_deref(),
        Some("2025-11-25"),
        "the upstream must be legacy"
    );
    let (client, seen) = connect(&gw.mcp_url(), Era::Modern).await;
    for round in 0..2 {
        let prompt = format!("bridged {round}");
        let result = client
            .call_tool(sample("demo__sample", &prompt))
            .await
            .unwrap();
        assert_eq!(text(&result), format!("client said: pong to {prompt}"));
    }
    assert_eq!(*seen.sampling_requests.lock().unwrap(), 2);
    assert!(
        eventually(Duration::from_secs(10), || processes_in(&dir).len() == 1).await,
        "a bridged call's own connection closes with the call: {:?}",
        processes_in(&dir)
    );
    // A parked call belongs to its tool: its requestState on another tool is refused, and the
    // call still completes when resumed on its own tool.
    let first = client
        .peer()
        .call_tool_once(sample("demo__sample", "owned"))
        .await
        .unwrap();
    let rmcp::model::CallToolResponse::InputRequired(round) = first else {
        panic!("expected an input_required round, got {first:?}");
    };
    let state = round
        .request_state
        .clone()
        .unwrap_or_else(|| panic!("bridge state in {round:?}"));
    let key = round
        .input_requests
        .as_ref()
        .and_then(|r| r.keys().next().cloned())
        .expect("one input request");
    let mut stolen = call("demo__echo", json!({"text": "x"}));
    stolen.request_state = Some(state.clone());
    let err = mcp_error(client.peer().call_tool_once(stolen).await.unwrap_err());
    assert_eq!(err.code.0, -32602);
    assert!(err.message.contains("another tool"), "{}", err.message);
    let mut resumed = sample("demo__sample", "owned");
    resumed.request_state = Some(state);
    #[allow(deprecated)] // sampling is deprecated by SEP-2577 but still carried
    let answer = rmcp::model::CreateMessageResult::new(
        rmcp::model::SamplingMessage::assistant_text("by hand"),
        "test-model".into(),
    );
    resumed.input_responses = Some([(key, serde_json::to_value(answer).unwrap())].into());
    let done = client.peer().call_tool_once(resumed).await.unwrap();
    let rmcp::model::CallToolResponse::Complete(done) = done else {
        panic!("expected completion, got {done:?}");
    };
    assert_eq!(text(&done), "client said: by hand");

    // A forged or replayed requestState is refused with a clear error.
    let mut forged = sample("demo__sample", "x");
    forged.request_state = Some("switchboard-bridge:nope".into());
    let err = mcp_error(client.peer().call_tool_once(forged).await.unwrap_err());
    assert_eq!(err.code.0, -32602);
    assert!(err.message.contains("requestState"), "{}", err.message);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn session_owned_connections_are_bounded() {
    let dir = temp_dir("bounded");
    let gw = TestGateway::start(
        "max_session_connections = 1",
        &stdio_demo("demo", Some(&dir), "isolation = \"per-session\""),
    )
    .await;
    let (a, seen_a) = connect(&gw.mcp_url(), Era::Legacy).await;
    let (b, seen_b) = connect(&gw.mcp_url(), Era::Legacy).await;
    assert!(
        eventually(Duration::from_secs(10), || processes_in(&dir).len() == 2).await,
        "shared child + one session child, not more: {:?}",
        processes_in(&dir)
    );
    // The first session has its own connection; the second falls back to the shared one,
    // where the demo (2026-07-28) asks through input_required, which the gateway drives.
    assert_eq!(
        text(&a.call_tool(sample("demo__sample", "a")).await.unwrap()),
        "client said: pong to a"
    );
    assert_eq!(
        text(&b.call_tool(sample("demo__sample", "b")).await.unwrap()),
        "client said: pong to b"
    );
    assert_eq!(*seen_a.sampling_requests.lock().unwrap(), 1);
    assert_eq!(*seen_b.sampling_requests.lock().unwrap(), 1);
    a.cancel().await.unwrap();
    b.cancel().await.unwrap();
}
