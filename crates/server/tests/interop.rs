//! Interop with real third-party MCP software: the official Python and TypeScript clients
//! (both eras, Streamable HTTP and legacy SSE) through the gateway to real upstreams
//! (server-everything over stdio, SSE and Streamable HTTP; mcp-server-time and mcp-server-git
//! over stdio; a dual-era Python fixture over Streamable HTTP; the built-in demo).
//!
//! Needs the peers from `scripts/install-peers.sh`; skips with a message otherwise.

mod support;

use futures::StreamExt;
use support::peers::*;
use support::*;

struct Target {
    tool: &'static str,
    args: String,
    expect: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_both_eras_reach_every_upstream_transport() {
    let Some(peers) = peers("clients_of_both_eras_reach_every_upstream_transport") else {
        return;
    };
    let root = repo_root();
    let (_sse, sse_port) = everything_http(&peers, "sse").await;
    let (_http, http_port) = everything_http(&peers, "streamableHttp").await;
    let (_fixture, fixture_port) = fixture_http(&peers).await;
    let venv_bin = peers.venv.join("bin");
    let upstreams = format!(
        "{demo}\
         [upstreams.time]\ntransport = \"stdio\"\ncommand = {time:?}\nargs = [\"--local-timezone\", \"UTC\"]\n\
         [upstreams.git]\ntransport = \"stdio\"\ncommand = {git:?}\nargs = [\"--repository\", {root:?}]\n\
         [upstreams.everything]\ntransport = \"stdio\"\ncommand = \"node\"\nargs = [{everything:?}, \"stdio\"]\n\
         {evsse}{evhttp}{fixture}",
        demo = stdio_demo("demo", None, ""),
        time = venv_bin.join("mcp-server-time").display().to_string(),
        git = venv_bin.join("mcp-server-git").display().to_string(),
        root = root.display().to_string(),
        everything = peers.everything,
        evsse = http_upstream(
            "evsse",
            "sse",
            &format!("http://127.0.0.1:{sse_port}/sse"),
            ""
        ),
        evhttp = http_upstream(
            "evhttp",
            "streamable-http",
            &format!("http://127.0.0.1:{http_port}/mcp"),
            ""
        ),
        fixture = http_upstream(
            "fixture",
            "streamable-http",
            &format!("http://127.0.0.1:{fixture_port}/mcp"),
            ""
        ),
    );
    let gw = TestGateway::start("startup_wait_ms = 30000", &upstreams).await;
    let ready: serde_json::Value = reqwest::get(format!("{}/readyz", gw.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for upstream in ready["upstreams"].as_array().unwrap() {
        assert_eq!(upstream["health"]["state"], "ready", "{upstream}");
    }

    let targets = [
        Target {
            tool: "demo__echo",
            args: r#"{"text":"interop"}"#.into(),
            expect: "interop",
        },
        Target {
            tool: "time__get_current_time",
            args: r#"{"timezone":"UTC"}"#.into(),
            expect: "UTC",
        },
        Target {
            tool: "git__git_status",
            args: format!(r#"{{"repo_path":{:?}}}"#, root.display().to_string()),
            expect: "branch",
        },
        Target {
            tool: "everything__echo",
            args: r#"{"message":"stdio"}"#.into(),
            expect: "Echo: stdio",
        },
        Target {
            tool: "evsse__echo",
            args: r#"{"message":"sse"}"#.into(),
            expect: "Echo: sse",
        },
        Target {
            tool: "evhttp__get-sum",
            args: r#"{"a":2,"b":3}"#.into(),
            expect: "5",
        },
        Target {
            tool: "fixture__echo",
            args: r#"{"text":"dual-era"}"#.into(),
            expect: "dual-era",
        },
    ];
    let clients = client_kinds(&peers);
    let mut runs = Vec::new();
    for client in &clients {
        for target in &targets {
            let mut args = client.args.clone();
            args.extend(["--url".into(), format!("{}{}", gw.base, client.path)]);
            for t in &targets {
                args.extend(["--expect-tool".into(), t.tool.into()]);
            }
            args.extend([
                "--call".into(),
                target.tool.into(),
                "--args".into(),
                target.args.clone(),
                "--expect-text".into(),
                target.expect.into(),
            ]);
            runs.push((
                format!("{} → {}", client.label, target.tool),
                client.program.clone(),
                args,
            ));
        }
    }
    let results: Vec<(String, Result<String, String>)> = futures::stream::iter(runs)
        .map(
            |(label, program, args)| async move { (label, run_client(&program, &args, &[]).await) },
        )
        .buffer_unordered(4)
        .collect()
        .await;
    let mut failures = Vec::new();
    for (label, result) in &results {
        match result {
            Ok(_) => eprintln!("PASS {label}"),
            Err(e) => failures.push(format!("FAIL {label}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} interop runs failed:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_elicitation_roots_and_progress_round_trip_through_the_gateway() {
    let Some(peers) =
        peers("sampling_elicitation_roots_and_progress_round_trip_through_the_gateway")
    else {
        return;
    };
    let (_sse, sse_port) = everything_http(&peers, "sse").await;
    let (_http, http_port) = everything_http(&peers, "streamableHttp").await;
    // One gateway per upstream transport, each with server-everything behind it, per-session.
    let gateways = [
        (
            "stdio",
            TestGateway::start(
                "startup_wait_ms = 30000",
                &format!(
                    "[upstreams.everything]\ntransport = \"stdio\"\ncommand = \"node\"\nargs = [{:?}, \"stdio\"]\nisolation = \"per-session\"\n",
                    peers.everything
                ),
            )
            .await,
        ),
        (
            "sse",
            TestGateway::start(
                "startup_wait_ms = 30000",
                &http_upstream("everything", "sse", &format!("http://127.0.0.1:{sse_port}/sse"), "isolation = \"per-session\""),
            )
            .await,
        ),
        (
            "streamable-http",
            TestGateway::start(
                "startup_wait_ms = 30000",
                &http_upstream("everything", "streamable-http", &format!("http://127.0.0.1:{http_port}/mcp"), "isolation = \"per-session\""),
            )
            .await,
        ),
    ];
    // Server-to-client requests need a session: the legacy-era clients.
    let clients: Vec<ClientKind> = client_kinds(&peers)
        .into_iter()
        .filter(|c| c.label.contains(" legacy "))
        .collect();
    let mut runs = Vec::new();
    for (upstream_transport, gw) in &gateways {
        for client in &clients {
            let mut args = client.args.clone();
            args.extend([
                "--url".into(),
                format!("{}{}", gw.base, client.path),
                "--everything-fidelity".into(),
            ]);
            runs.push((
                format!(
                    "{} → server-everything over {upstream_transport}",
                    client.label
                ),
                client.program.clone(),
                args,
            ));
        }
    }
    let results: Vec<(String, Result<String, String>)> = futures::stream::iter(runs)
        .map(
            |(label, program, args)| async move { (label, run_client(&program, &args, &[]).await) },
        )
        .buffer_unordered(3)
        .collect()
        .await;
    let mut failures = Vec::new();
    for (label, result) in &results {
        match result {
            Ok(out) => eprintln!("PASS {label}: {}", out.trim()),
            Err(e) => failures.push(format!("FAIL {label}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fidelity runs failed:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_http_upstream_is_reconnected_transparently() {
    let Some(peers) = peers("a_restarted_http_upstream_is_reconnected_transparently") else {
        return;
    };
    // server-everything speaks only the legacy era: its sessions die with the process.
    let (first, port) = everything_http(&peers, "streamableHttp").await;
    let gw = TestGateway::start(
        "startup_wait_ms = 30000",
        &http_upstream(
            "ev",
            "streamable-http",
            &format!("http://127.0.0.1:{port}/mcp"),
            "ping_interval_ms = 500\nrequest_timeout_ms = 10000",
        ),
    )
    .await;
    let (client, _) = connect(&gw.mcp_url(), Era::Legacy).await;
    let mut echo = rmcp::model::CallToolRequestParams::new("ev__echo");
    echo.arguments = serde_json::json!({"message": "before"})
        .as_object()
        .cloned();
    assert!(
        client.call_tool(echo.clone()).await.unwrap().content[0]
            .as_text()
            .unwrap()
            .text
            .contains("before")
    );

    drop(first);
    let preload = repo_root().join("tests/peers/loopback.cjs");
    let _second = spawn_listening(
        "node",
        &[&peers.everything, "streamableHttp"],
        &[
            ("PORT", port.to_string()),
            ("NODE_OPTIONS", format!("--require {}", preload.display())),
        ],
        port,
    )
    .await;
    // The upstream session is gone. server-everything then answers with an id-less 400 instead
    // of 404, so requests would hang; the gateway's health check replaces the connection.
    let last = std::sync::Mutex::new(String::new());
    let ok = eventually_async(std::time::Duration::from_secs(30), || async {
        match client.call_tool(echo.clone()).await {
            Ok(r) => r.content[0]
                .as_text()
                .is_some_and(|t| t.text.contains("before")),
            Err(e) => {
                *last.lock().unwrap() = e.to_string();
                false
            }
        }
    })
    .await;
    let last = last.into_inner().unwrap();
    assert!(
        ok,
        "calls must work again after the upstream restarted; last error: {last}"
    );
    client.cancel().await.unwrap();
}
