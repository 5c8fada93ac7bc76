//! Upstream supervision and gateway lifecycle: stdio children are never leaked, restarted
//! after a crash, stopped when idle and on shutdown; in-flight requests drain on shutdown;
//! clients learn about list changes.

mod support;

use std::time::Duration;

use rmcp::model::CallToolRequestParams;
use serde_json::json;
use support::*;

fn echo(name: &str, said: &str) -> CallToolRequestParams {
    call(name, json!({"text": said}))
}

#[tokio::test]
async fn stdio_children_are_gone_after_shutdown() {
    let dir = temp_dir("leak");
    let upstreams = format!(
        "{}{}",
        stdio_demo("one", Some(&dir), ""),
        stdio_demo("two", Some(&dir), "")
    );
    let before = processes_in(&dir).len();
    assert_eq!(before, 0);
    let mut gw = TestGateway::start("", &upstreams).await;
    assert_eq!(processes_in(&dir).len(), 2, "one child per stdio upstream");
    gw.stop().await;
    assert!(
        eventually(Duration::from_secs(5), || processes_in(&dir).is_empty()).await,
        "children left behind: {:?}",
        processes_in(&dir)
    );
}

#[tokio::test]
async fn a_crashed_stdio_child_is_restarted() {
    let dir = temp_dir("crash");
    let gw = TestGateway::start("", &stdio_demo("demo", Some(&dir), "")).await;
    let (client, _) = connect(&gw.mcp_url(), Era::Legacy).await;
    client
        .call_tool(echo("demo__echo", "before"))
        .await
        .unwrap();
    let pids = processes_in(&dir);
    assert_eq!(pids.len(), 1);
    // SAFETY: sending SIGKILL to our own test child.
    unsafe { libc::kill(pids[0] as i32, libc::SIGKILL) };
    assert!(
        eventually(Duration::from_secs(10), || {
            let now = processes_in(&dir);
            now.len() == 1 && now[0] != pids[0]
        })
        .await,
        "a new child must be started"
    );
    assert!(
        eventually(Duration::from_secs(10), || {
            gw.gateway().upstreams()[0].status().health == switchboard_mcp::upstream::Health::Ready
        })
        .await
    );
    let after = client.call_tool(echo("demo__echo", "after")).await.unwrap();
    assert_eq!(after.content[0].as_text().unwrap().text, "after");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn idle_stdio_children_stop_and_come_back_on_demand() {
    let dir = temp_dir("idle");
    let gw = TestGateway::start("", &stdio_demo("demo", Some(&dir), "idle_timeout_ms = 300")).await;
    assert_eq!(processes_in(&dir).len(), 1);
    assert!(
        eventually(Duration::from_secs(5), || processes_in(&dir).is_empty()).await,
        "idle child must be stopped"
    );
    let (client, _) = connect(&gw.mcp_url(), Era::Modern).await;
    // Lists are served from the cache while the child is stopped.
    assert_eq!(
        client.list_all_tools().await.unwrap().len(),
        DEMO_TOOLS.len()
    );
    assert!(
        processes_in(&dir).is_empty(),
        "listing must not wake the child"
    );
    let result = client.call_tool(echo("demo__echo", "woken")).await.unwrap();
    assert_eq!(result.content[0].as_text().unwrap().text, "woken");
    assert_eq!(processes_in(&dir).len(), 1);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn stdio_children_run_under_their_limits_and_are_recycled_at_their_lifetime() {
    let dir = temp_dir("limits");
    let limits = "max_open_files = 64\nmax_memory_mb = 4096\nmax_lifetime_ms = 400";
    let gw = TestGateway::start("", &stdio_demo("demo", Some(&dir), limits)).await;
    let first = processes_in(&dir);
    assert_eq!(first.len(), 1);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", first[0])).unwrap();
    let line = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert!(line("Max open files").contains("64 64"), "{limits}");
    let bytes = (4096u64 << 20).to_string();
    assert!(
        line("Max address space").contains(&format!("{bytes} {bytes}")),
        "{limits}"
    );

    // A call longer than the lifetime is never cut short; the child is replaced after it.
    let (client, _) = connect(&gw.mcp_url(), Era::Modern).await;
    let slow = call("demo__slow_count", json!({"steps": 8, "delay_ms": 100}));
    let result = client
        .call_tool(slow)
        .await
        .expect("the long call completes");
    assert!(format!("{result:?}").contains("counted to 8"));
    assert!(
        eventually(Duration::from_secs(5), || processes_in(&dir).is_empty()).await,
        "the child must be stopped at its lifetime"
    );
    let result = client.call_tool(echo("demo__echo", "fresh")).await.unwrap();
    assert_eq!(result.content[0].as_text().unwrap().text, "fresh");
    let second = processes_in(&dir);
    assert_eq!(second.len(), 1);
    assert_ne!(first, second, "a fresh child serves the next call");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn progress_reaches_the_caller_with_its_own_token_in_both_eras() {
    let gw = TestGateway::start("", &stdio_demo("demo", None, "")).await;
    for era in [Era::Legacy, Era::Modern] {
        let (client, seen) = connect(&gw.mcp_url(), era).await;
        let slow = call("demo__slow_count", json!({"steps": 3, "delay_ms": 5}));
        let handle = start_call(&client, slow).await;
        let token = handle.progress_token.clone();
        let result = handle.await_response().await.unwrap();
        assert!(format!("{result:?}").contains("counted to 3"), "{era:?}");
        assert!(
            eventually(Duration::from_secs(2), || seen
                .progress
                .lock()
                .unwrap()
                .len()
                == 3)
            .await,
            "{era:?}: expected 3 progress notifications"
        );
        let progress = seen.progress.lock().unwrap().clone();
        assert!(
            progress.iter().all(|p| p.progress_token == token),
            "{era:?}: tokens mapped back"
        );
        assert_eq!(progress.last().unwrap().progress, 3.0);
        assert_eq!(progress.last().unwrap().total, Some(3.0));
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn cancelling_a_call_cancels_it_upstream() {
    for era in [Era::Legacy, Era::Modern] {
        cancel_in(era).await;
    }
}

async fn cancel_in(era: Era) {
    let gw = TestGateway::start("", &stdio_demo("demo", None, "")).await;
    let (client, _) = connect(&gw.mcp_url(), era).await;
    let slow = call("demo__slow_count", json!({"steps": 1000, "delay_ms": 50}));
    let handle = start_call(&client, slow).await;
    let id = handle.id.clone();
    assert!(eventually(Duration::from_secs(5), || gw.gateway().in_flight() == 1).await);
    client
        .notify_cancelled(rmcp::model::CancelledNotificationParam::new(
            Some(id),
            Some("test".into()),
        ))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || gw.gateway().in_flight() == 0).await,
        "{era:?}: the upstream request must end when the client cancels"
    );
    drop(handle);
    // The connection keeps working.
    let ok = client
        .call_tool(echo("demo__echo", "still here"))
        .await
        .unwrap();
    assert_eq!(ok.content[0].as_text().unwrap().text, "still here");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn shutdown_drains_in_flight_calls() {
    let mut gw = TestGateway::start("", &stdio_demo("demo", None, "")).await;
    let (client, _) = connect(&gw.mcp_url(), Era::Modern).await;
    let mut params = CallToolRequestParams::new("demo__slow_count");
    params.arguments = json!({"steps": 5, "delay_ms": 100}).as_object().cloned();
    let call = tokio::spawn(async move { client.call_tool(params).await });
    assert!(eventually(Duration::from_secs(5), || gw.gateway().in_flight() == 1).await);
    gw.stop().await;
    let result = call
        .await
        .unwrap()
        .expect("the in-flight call completes during shutdown");
    assert_eq!(result.content[0].as_text().unwrap().text, "counted to 5");
}

#[tokio::test]
async fn clients_are_told_when_an_upstream_appears() {
    // The HTTP upstream is down at start and comes up later on the same port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let gw = TestGateway::start(
        "startup_wait_ms = 500",
        &format!(
            "{}{}",
            stdio_demo("local", None, ""),
            http_upstream("late", "streamable-http", &url, "connect_timeout_ms = 500")
        ),
    )
    .await;
    let (client, seen) = connect(&gw.mcp_url(), Era::Legacy).await;
    assert_eq!(
        client.list_all_tools().await.unwrap().len(),
        DEMO_TOOLS.len()
    );

    // Bring the upstream up on that port.
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    let service = StreamableHttpService::new(
        {
            let demo = switchboard_server::demo::DemoServer::default();
            move || Ok(demo.clone())
        },
        std::sync::Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    assert!(
        eventually(Duration::from_secs(20), || *seen
            .tools_changed_count
            .lock()
            .unwrap()
            > 0)
        .await,
        "a tools/list_changed notification must arrive"
    );
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 2 * DEMO_TOOLS.len());
    assert!(tools.iter().any(|t| t.name == "late__echo"));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn list_changes_of_a_modern_upstream_reach_legacy_sessions_and_modern_listeners() {
    // The demo upstream speaks 2026-07-28 on stdio: it announces list changes only on a
    // subscriptions/listen stream, which the gateway keeps open.
    let gw = TestGateway::start("", &stdio_demo("demo", None, "")).await;
    let (legacy, seen) = connect(&gw.mcp_url(), Era::Legacy).await;
    let (modern, _) = connect(&gw.mcp_url(), Era::Modern).await;
    let mut filter = rmcp::model::SubscriptionFilter::new();
    filter.tools_list_changed = Some(true);
    let mut listener = modern
        .listen(filter)
        .await
        .expect("gateway accepts subscriptions/listen");

    let toggle = CallToolRequestParams::new("demo__toggle_extra");
    let result = legacy.call_tool(toggle).await.unwrap();
    assert_eq!(result.content[0].as_text().unwrap().text, "extra is listed");

    assert!(
        eventually(Duration::from_secs(10), || *seen
            .tools_changed_count
            .lock()
            .unwrap()
            > 0)
        .await,
        "the legacy session must get notifications/tools/list_changed"
    );
    let notification = tokio::time::timeout(Duration::from_secs(10), listener.next())
        .await
        .expect("a listen-stream notification in time")
        .unwrap()
        .expect("stream open");
    assert!(
        matches!(
            notification,
            rmcp::model::ServerNotification::ToolListChangedNotification(_)
        ),
        "{notification:?}"
    );
    let tools = modern.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "demo__extra"));
    let extra = legacy
        .call_tool(CallToolRequestParams::new("demo__extra"))
        .await
        .unwrap();
    assert_eq!(extra.content[0].as_text().unwrap().text, "extra tool");
    legacy.cancel().await.unwrap();
    modern.cancel().await.unwrap();
}
