//! Span export over OTLP/HTTP through the real server: an in-test collector receives the
//! gateway's span of each call — continuing the client's trace, or starting one — and the
//! upstream's `traceparent` names that span as its parent, so client, gateway and upstream
//! line up in one trace.

mod support;

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use support::capture::capturing_upstream;
use support::{TestGateway, call_with_trace};

type Received = Arc<Mutex<Vec<Value>>>;

/// An OTLP/HTTP collector on loopback: every span it receives.
async fn collector() -> (String, Received) {
    async fn traces(State(seen): State<Received>, Json(body): Json<Value>) -> Json<Value> {
        let mut seen = seen.lock().unwrap();
        for resource in body["resourceSpans"].as_array().into_iter().flatten() {
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    let mut span = span.clone();
                    span["resource"] = resource["resource"].clone();
                    seen.push(span);
                }
            }
        }
        Json(json!({}))
    }
    let seen: Received = Arc::default();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(traces))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

fn attribute<'a>(span: &'a Value, key: &str) -> &'a Value {
    span["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|kv| kv["key"] == key))
        .map_or(&Value::Null, |kv| &kv["value"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_spans_reach_an_otlp_collector_and_parent_the_upstreams() {
    let (upstream_url, seen, stop) = capturing_upstream().await;
    let (endpoint, spans) = collector().await;
    let config = format!(
        "[traces]\notlp_endpoint = {endpoint:?}\nbatch_ms = 50\nservice_name = \"sb-test\"\n{}",
        support::http_upstream("gh", "streamable-http", &upstream_url, "")
    );
    let mut gw = TestGateway::start("", &config).await;
    let client_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let url = gw.mcp_url();
    call_with_trace(
        &url,
        Some(client_parent),
        "gh__echo",
        json!({"text": "traced"}),
    )
    .await
    .unwrap();
    call_with_trace(&url, None, "gh__echo", json!({"text": "fresh"}))
        .await
        .unwrap();
    let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    call_with_trace(
        &url,
        Some(unsampled),
        "gh__echo",
        json!({"text": "unsampled"}),
    )
    .await
    .unwrap();
    let failed = call_with_trace(&url, None, "gh__add", json!({"a": "not a number"})).await;
    assert!(failed.is_err(), "a call the upstream refuses");
    // The exporter's counters are in `/metrics` once its batch is out.
    let metrics = format!("{}/metrics", gw.base);
    let mut text = String::new();
    for _ in 0..100 {
        text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
        if text
            .lines()
            .any(|l| l == "switchboard_spans_exported_total 3")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for line in [
        "switchboard_spans_exported_total 3",
        "switchboard_spans_dropped_total 0",
        "switchboard_span_exports_failed_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in {text}");
    }
    gw.stop().await; // flushes the exporter
    let spans = spans.lock().unwrap().clone();
    let upstream = seen.lock().unwrap();
    let sent_with = |marker: &str| {
        upstream
            .iter()
            .find(|r| r.body.contains(marker))
            .unwrap_or_else(|| panic!("{marker} reached the upstream"))
    };

    // The client's trace continues: the gateway's span is its child, and the upstream's
    // parent.
    let traced = spans
        .iter()
        .find(|s| s["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736")
        .unwrap_or_else(|| panic!("the traced call's span: {spans:#?}"));
    assert_eq!(traced["parentSpanId"], "00f067aa0ba902b7");
    assert_eq!(traced["name"], "tools/call echo");
    assert_eq!(traced["kind"], 2);
    assert_eq!(traced["status"]["code"], 1);
    assert_eq!(traced["traceState"], "vendor=1");
    assert_eq!(attribute(traced, "switchboard.server")["stringValue"], "gh");
    assert_eq!(
        attribute(traced, "switchboard.tenant")["stringValue"],
        "default"
    );
    assert_eq!(attribute(traced, "gen_ai.tool.name")["stringValue"], "echo");
    assert_eq!(
        traced["resource"]["attributes"][0]["value"]["stringValue"],
        "sb-test"
    );
    let start: u128 = traced["startTimeUnixNano"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let end: u128 = traced["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(end >= start && start > 1_700_000_000_000_000_000);
    let span_id = traced["spanId"].as_str().unwrap();
    let expected = format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{span_id}-01");
    let request = sent_with("\"traced\"");
    assert_eq!(request.headers["traceparent"], expected.as_str());
    assert_eq!(request.headers["tracestate"], "vendor=1");
    let body: Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(body["params"]["_meta"]["traceparent"], expected.as_str());

    // A call without a trace starts one (sample_ratio 1), still parenting the upstream's.
    let fresh = sent_with("\"fresh\"");
    let traceparent = fresh.headers["traceparent"].to_str().unwrap();
    let started = spans
        .iter()
        .find(|s| {
            traceparent
                == format!(
                    "00-{}-{}-01",
                    s["traceId"].as_str().unwrap(),
                    s["spanId"].as_str().unwrap()
                )
        })
        .unwrap_or_else(|| panic!("the fresh call's span ({traceparent}): {spans:#?}"));
    assert!(started.get("parentSpanId").is_none());

    // A client's unsampled trace is respected: no span, its context passed on unchanged.
    let unsampled = sent_with("\"unsampled\"");
    assert_eq!(
        unsampled.headers["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
    );
    assert_eq!(
        spans.len(),
        3,
        "traced, fresh and the failed call: {spans:#?}"
    );

    // A failed call's span says so, with the JSON-RPC error code.
    let failed = spans
        .iter()
        .find(|s| s["name"] == "tools/call add")
        .expect("the failed call's span");
    assert_eq!(failed["status"]["code"], 2);
    assert!(attribute(failed, "rpc.jsonrpc.error_code")["intValue"].is_string());
    drop(upstream);
    stop.cancel();
}
