//! The direct path of `tools/call` on a shared Streamable HTTP connection: the gateway posts
//! the call itself instead of through rmcp's client (see `upstream/direct.rs`). Each test
//! checks, from what the upstream received, that the call went out that way (its id is
//! ≥ 2^40, a range rmcp never uses) and that it behaves as rmcp's path does.

mod support;

use std::time::Duration;

use rmcp::model::CancelledNotificationParam;
use serde_json::{Value, json};
use support::capture::{Seen as Received, capturing};
use support::*;
use switchboard_server::demo::DemoServer;

const FIRST_DIRECT_ID: i64 = 1 << 40;

/// The upstream eras: the demo answers 2026-07-28 unless it is legacy-only.
fn upstreams() -> [(&'static str, DemoServer); 2] {
    [
        ("2026-07-28", DemoServer::default()),
        ("legacy", DemoServer::legacy_only()),
    ]
}

struct Setup {
    gw: TestGateway,
    /// The upstream's `/mcp` URL.
    url: String,
    received: Received,
    stop: tokio_util::sync::CancellationToken,
}

/// A gateway in front of `demo` served over Streamable HTTP, recording what it receives.
async fn gateway_before(demo: DemoServer) -> Setup {
    let (url, received, stop) = capturing(demo).await;
    let gw = TestGateway::start("", &http_upstream("demo", "streamable-http", &url, "")).await;
    Setup {
        gw,
        url,
        received,
        stop,
    }
}

/// The JSON bodies the upstream received that satisfy `pick`.
fn bodies(received: &Received, pick: impl Fn(&Value) -> bool) -> Vec<(Value, http::HeaderMap)> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter_map(|r| {
            let body: Value = serde_json::from_str(&r.body).ok()?;
            pick(&body).then(|| (body, r.headers.clone()))
        })
        .collect()
}

fn is_direct_call(body: &Value) -> bool {
    body["method"] == "tools/call" && body["id"].as_i64().is_some_and(|id| id >= FIRST_DIRECT_ID)
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn calls_go_out_directly_with_the_connections_session_and_headers() {
    for (era, demo) in upstreams() {
        let Setup {
            gw, received, stop, ..
        } = gateway_before(demo).await;
        for client_era in [Era::Legacy, Era::Modern] {
            let (client, _) = connect(&gw.mcp_url(), client_era).await;
            let marker = format!("direct-{era}-{client_era:?}");
            let result = client
                .call_tool(call("demo__echo", json!({"text": marker})))
                .await
                .unwrap();
            assert_eq!(text(&result), marker);
            let sent = bodies(&received, |b| {
                is_direct_call(b) && b.to_string().contains(&marker)
            });
            assert_eq!(sent.len(), 1, "{era}/{client_era:?}: one direct POST");
            let (body, headers) = &sent[0];
            assert_eq!(body["params"]["name"], "echo");
            if era == "legacy" {
                assert!(header(headers, "mcp-session-id").is_some(), "{headers:?}");
                assert!(header(headers, "mcp-method").is_none());
                assert!(header(headers, "mcp-protocol-version").is_some_and(|v| v < "2026"));
            } else {
                assert!(header(headers, "mcp-session-id").is_none());
                assert_eq!(header(headers, "mcp-method"), Some("tools/call"));
                assert_eq!(header(headers, "mcp-name"), Some("echo"));
                assert_eq!(header(headers, "mcp-protocol-version"), Some("2026-07-28"));
                let meta = &body["params"]["_meta"];
                assert_eq!(
                    meta["io.modelcontextprotocol/protocolVersion"], "2026-07-28",
                    "{meta}"
                );
                assert_eq!(
                    meta["io.modelcontextprotocol/clientInfo"]["name"],
                    "switchboard"
                );
            }
            client.cancel().await.unwrap();
        }
        stop.cancel();
    }
}

#[tokio::test]
async fn progress_and_upstream_errors_come_back_from_the_direct_path() {
    for (era, demo) in upstreams() {
        let Setup {
            gw, received, stop, ..
        } = gateway_before(demo).await;
        let (client, seen) = connect(&gw.mcp_url(), Era::Legacy).await;
        let handle = start_call(
            &client,
            call("demo__slow_count", json!({"steps": 3, "delay_ms": 5})),
        )
        .await;
        let token = handle.progress_token.clone();
        let result = handle.await_response().await.unwrap();
        assert!(format!("{result:?}").contains("counted to 3"), "{era}");
        assert!(
            eventually(Duration::from_secs(2), || seen
                .progress
                .lock()
                .unwrap()
                .len()
                == 3)
            .await,
            "{era}: three progress notifications"
        );
        assert!(
            seen.progress
                .lock()
                .unwrap()
                .iter()
                .all(|p| p.progress_token == token)
        );
        let sent = bodies(&received, |b| {
            is_direct_call(b) && b["params"]["name"] == "slow_count"
        });
        assert_eq!(sent.len(), 1, "{era}");
        let upstream_token = &sent[0].0["params"]["_meta"]["progressToken"];
        assert!(
            upstream_token
                .as_i64()
                .is_some_and(|t| t >= FIRST_DIRECT_ID),
            "{upstream_token}"
        );

        // The upstream's JSON-RPC error is the client's, unchanged.
        let err = mcp_error(
            client
                .call_tool(call("demo__add", json!({"a": "one", "b": 2})))
                .await
                .unwrap_err(),
        );
        assert_eq!(err.code.0, -32602, "{era}: {err:?}");
        assert_eq!(
            bodies(&received, |b| is_direct_call(b)
                && b["params"]["name"] == "add")
            .len(),
            1
        );
        client.cancel().await.unwrap();
        stop.cancel();
    }
}

#[tokio::test]
async fn a_cancelled_direct_call_is_cancelled_upstream() {
    for (era, demo) in upstreams() {
        let Setup {
            gw, received, stop, ..
        } = gateway_before(demo).await;
        let (client, _) = connect(&gw.mcp_url(), Era::Legacy).await;
        let slow = call("demo__slow_count", json!({"steps": 1000, "delay_ms": 50}));
        let handle = start_call(&client, slow).await;
        assert!(eventually(Duration::from_secs(5), || gw.gateway().in_flight() == 1).await);
        client
            .notify_cancelled(CancelledNotificationParam::new(
                Some(handle.id.clone()),
                Some("test".into()),
            ))
            .await
            .unwrap();
        assert!(
            eventually(Duration::from_secs(5), || gw.gateway().in_flight() == 0).await,
            "{era}: the call ends when its client cancels"
        );
        let sent = bodies(&received, |b| {
            is_direct_call(b) && b["params"]["name"] == "slow_count"
        });
        assert_eq!(sent.len(), 1, "{era}");
        // A legacy session is told which request to cancel; a 2026-07-28 request is
        // cancelled by closing its stream, as rmcp's client does.
        if era == "legacy" {
            let id = sent[0].0["id"].clone();
            assert!(
                eventually(Duration::from_secs(5), || !bodies(&received, |b| {
                    b["method"] == "notifications/cancelled" && b["params"]["requestId"] == id
                })
                .is_empty())
                .await,
                "the upstream is told which request to cancel"
            );
        }
        let ok = client
            .call_tool(call("demo__echo", json!({"text": "after"})))
            .await
            .unwrap();
        assert_eq!(text(&ok), "after");
        client.cancel().await.unwrap();
        stop.cancel();
    }
}

#[tokio::test]
async fn a_forgotten_session_is_renewed_and_the_call_still_answered() {
    let Setup {
        gw,
        url,
        received,
        stop,
    } = gateway_before(DemoServer::legacy_only()).await;
    let (client, _) = connect(&gw.mcp_url(), Era::Legacy).await;
    let first = client
        .call_tool(call("demo__echo", json!({"text": "one"})))
        .await
        .unwrap();
    assert_eq!(text(&first), "one");
    let sent = bodies(&received, |b| {
        is_direct_call(b) && b.to_string().contains("\"one\"")
    });
    let session = header(&sent[0].1, "mcp-session-id").unwrap().to_owned();

    // The upstream ends the session behind the gateway's back (as a restarted server would).
    let ended = reqwest::Client::new()
        .delete(&url)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert!(ended.status().is_success(), "{}", ended.status());

    let second = client
        .call_tool(call("demo__echo", json!({"text": "two"})))
        .await
        .unwrap();
    assert_eq!(text(&second), "two");
    let renewed = bodies(&received, |b| {
        b["method"] == "tools/call" && b.to_string().contains("\"two\"")
    });
    // Refused directly (404), then sent by rmcp on a new session; later calls go directly on it.
    assert!(renewed.len() >= 2, "{renewed:?}");
    let last_session = header(&renewed.last().unwrap().1, "mcp-session-id").unwrap();
    assert_ne!(last_session, session);
    let (tried, tried_headers) = &renewed[0];
    assert!(is_direct_call(tried), "first sent directly: {tried}");
    assert_eq!(
        header(tried_headers, "mcp-session-id"),
        Some(session.as_str())
    );
    assert!(
        renewed.iter().any(|(b, h)| {
            b["id"].as_i64().is_some_and(|id| id < FIRST_DIRECT_ID)
                && header(h, "mcp-session-id") == Some(last_session)
        }),
        "then sent by rmcp on the new session: {renewed:?}"
    );
    let third = client
        .call_tool(call("demo__echo", json!({"text": "three"})))
        .await
        .unwrap();
    assert_eq!(text(&third), "three");
    let direct = bodies(&received, |b| {
        is_direct_call(b) && b.to_string().contains("\"three\"")
    });
    assert_eq!(direct.len(), 1);
    assert_eq!(header(&direct[0].1, "mcp-session-id"), Some(last_session));
    client.cancel().await.unwrap();
    stop.cancel();
}

#[tokio::test]
async fn an_upstream_request_inside_a_direct_call_is_answered_for_the_shared_connection() {
    // The legacy demo asks for sampling on the call's stream; a shared connection cannot
    // say which client it is for, so the gateway refuses it and the tool reports the refusal.
    let Setup {
        gw, received, stop, ..
    } = gateway_before(DemoServer::legacy_only()).await;
    let (client, seen) = connect(&gw.mcp_url(), Era::Legacy).await;
    let outcome = client
        .call_tool(call("demo__sample", json!({"prompt": "x"})))
        .await;
    let err = mcp_error(outcome.unwrap_err());
    assert_eq!(err.code.0, -32012, "{err:?}");
    assert!(err.message.contains("per-session"), "{}", err.message);
    assert_eq!(*seen.sampling_requests.lock().unwrap(), 0);
    assert_eq!(
        bodies(&received, |b| is_direct_call(b)
            && b["params"]["name"] == "sample")
        .len(),
        1
    );
    // The refusal went back to the upstream as the answer to its request.
    assert!(!bodies(&received, |b| b["error"]["code"] == -32012).is_empty());
    client.cancel().await.unwrap();
    stop.cancel();
}
