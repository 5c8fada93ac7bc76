//! Test harness: start the real gateway on a loopback port with real upstreams, and talk to
//! it with real MCP clients (rmcp) and raw HTTP.
#![allow(dead_code, deprecated)]

pub mod admin;
pub mod capture;
pub mod peers;
pub mod tenancy;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::ErrorData;
use rmcp::handler::client::ClientHandler;
use rmcp::model::{
    ClientConfig, CreateMessageRequestParams, CreateMessageResult, ProgressNotificationParam,
    ProtocolVersion, SamplingContent, SamplingMessage, SamplingMessageContentBlock,
};
use rmcp::service::{
    ClientLifecycleMode, ClientServiceExt, NotificationContext, RoleClient, RunningService,
};
use rmcp::transport::StreamableHttpClientTransport;
use switchboard_server::{Config, Running};
use tokio::sync::Notify;

/// The secrets master key of test gateways without a data folder of their own (CLI runs
/// against their database pass it as `SWITCHBOARD_MASTER_KEY`).
pub const TEST_MASTER_KEY: &str =
    "7465737420676174657761792073656372657473206d6173746572206b657921";

/// The demo upstream's tools, sorted.
pub const DEMO_TOOLS: [&str; 5] = ["add", "echo", "sample", "slow_count", "toggle_extra"];

/// Path of the `switchboard` binary built for these tests.
pub fn switchboard_bin() -> String {
    env!("CARGO_BIN_EXE_switchboard").to_owned()
}

/// A fresh, empty folder under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "switchboard-test-{tag}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// TOML for a stdio demo upstream named `name`, optionally in `cwd`, with extra keys.
pub fn stdio_demo(name: &str, cwd: Option<&PathBuf>, extra: &str) -> String {
    stdio_demo_with(name, cwd, &["demo-upstream"], extra)
}

/// Like [`stdio_demo`] with the demo's own arguments (e.g. `--legacy`).
pub fn stdio_demo_with(name: &str, cwd: Option<&PathBuf>, args: &[&str], extra: &str) -> String {
    let cwd = cwd
        .map(|c| format!("cwd = {:?}\n", c.display().to_string()))
        .unwrap_or_default();
    format!(
        "[upstreams.{name}]\ntransport = \"stdio\"\ncommand = {:?}\nargs = {args:?}\n{cwd}{extra}\n",
        switchboard_bin()
    )
}

/// TOML for an HTTP upstream.
pub fn http_upstream(name: &str, transport: &str, url: &str, extra: &str) -> String {
    format!("[upstreams.{name}]\ntransport = \"{transport}\"\nurl = {url:?}\n{extra}\n")
}

/// A running gateway under test.
pub struct TestGateway {
    pub running: Option<Running>,
    pub base: String,
}

impl TestGateway {
    /// Starts a gateway on 127.0.0.1:0 with `server_extra` in `[server]` and `upstreams` TOML.
    pub async fn start(server_extra: &str, upstreams: &str) -> TestGateway {
        let startup = if server_extra.contains("startup_wait_ms") {
            ""
        } else {
            "startup_wait_ms = 10000\n"
        };
        // Each gateway keeps its embedded database in a fresh folder.
        let data_dir = if server_extra.contains("data_dir") {
            String::new()
        } else {
            format!("data_dir = {:?}\n", temp_dir("data").display().to_string())
        };
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{startup}{data_dir}shutdown_grace_ms = 3000\n{server_extra}\n{upstreams}"
        );
        // Gateways (and CLI runs) sharing a test database share its master key, as replicas
        // must: the token signing keys in the database are sealed under it. A test with a
        // data folder of its own keeps the master key there.
        let env = if data_dir.is_empty() || toml.contains("master_key") {
            Vec::new()
        } else {
            vec![(
                "SWITCHBOARD_MASTER_KEY".to_owned(),
                TEST_MASTER_KEY.to_owned(),
            )]
        };
        let config = Config::from_toml(&toml, env).expect("test config is valid");
        let running = switchboard_server::start(config)
            .await
            .expect("gateway starts");
        let base = format!("http://{}", running.addr);
        TestGateway {
            running: Some(running),
            base,
        }
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    pub fn tenancy(&self) -> &Arc<switchboard_server::tenancy::Tenancy> {
        &self.running.as_ref().expect("running").tenancy
    }

    pub fn gateway(&self) -> &Arc<switchboard_mcp::Gateway> {
        &self.running.as_ref().expect("running").gateway
    }

    /// Graceful stop; waits for children to be gone.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("clean shutdown");
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop_token().cancel();
        }
    }
}

/// What a test client saw from the server.
#[derive(Clone, Default)]
pub struct Seen {
    pub progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    pub tools_changed: Arc<Notify>,
    pub tools_changed_count: Arc<Mutex<u32>>,
    pub sampling_requests: Arc<Mutex<u32>>,
}

/// An rmcp client handler that records notifications.
#[derive(Clone, Default)]
pub struct TestClient {
    pub seen: Seen,
}

impl ClientHandler for TestClient {
    fn get_info(&self) -> ClientConfig {
        let mut info = ClientConfig::default();
        info.capabilities.sampling = Some(Default::default());
        info
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.seen.progress.lock().unwrap().push(params);
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        *self.seen.sampling_requests.lock().unwrap() += 1;
        let asked = match &params.messages[0].content {
            SamplingContent::Single(SamplingMessageContentBlock::Text(t)) => t.text.clone(),
            _ => String::new(),
        };
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text(format!("pong to {asked}")),
            "test-model".into(),
        ))
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        *self.seen.tools_changed_count.lock().unwrap() += 1;
        self.seen.tools_changed.notify_waiters();
    }
}

/// Protocol era a test client speaks.
#[derive(Debug, Clone, Copy)]
pub enum Era {
    Legacy,
    Modern,
}

pub type Client = RunningService<RoleClient, TestClient>;

/// Connects an rmcp client to `url` (Streamable HTTP) in `era`.
pub async fn connect(url: &str, era: Era) -> (Client, Seen) {
    try_connect(url, era, None)
        .await
        .expect("handshake succeeds")
}

/// Connects with a bearer credential (API key or token).
pub async fn connect_as(url: &str, era: Era, bearer: &str) -> (Client, Seen) {
    try_connect(url, era, Some(bearer))
        .await
        .expect("handshake succeeds")
}

/// Connects, returning the handshake's failure instead of panicking.
pub async fn try_connect(
    url: &str,
    era: Era,
    bearer: Option<&str>,
) -> Result<(Client, Seen), String> {
    let handler = TestClient::default();
    let seen = handler.seen.clone();
    let mut config =
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            url.to_owned(),
        );
    if let Some(bearer) = bearer {
        config = config.auth_header(bearer.to_owned());
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    let lifecycle = match era {
        Era::Legacy => ClientLifecycleMode::Initialize,
        Era::Modern => ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    };
    let client = tokio::time::timeout(
        Duration::from_secs(20),
        handler.serve_with_lifecycle(transport, lifecycle),
    )
    .await
    .expect("handshake in time")
    .map_err(|e| e.to_string())?;
    Ok((client, seen))
}

/// The names of every tool `client` lists (all pages), sorted.
pub async fn tool_names(client: &Client) -> Vec<String> {
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .expect("tools/list succeeds")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    names
}

/// The JSON-RPC error of a failed rmcp call.
pub fn mcp_error(err: rmcp::ServiceError) -> ErrorData {
    match err {
        rmcp::ServiceError::McpError(e) => e,
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

/// Processes whose working directory is `dir` (how tests count stdio children).
pub fn processes_in(dir: &PathBuf) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == canonical)
                && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| !s.contains(") Z "))
                    .unwrap_or(false)
        })
        .collect()
}

/// Polls `check` every 20 ms until it holds or `timeout` passes.
/// The value of an unlabelled series `name` that the gateway's `/metrics` reports.
pub async fn metric(gw: &TestGateway, name: &str) -> Option<f64> {
    let body = reqwest::get(format!("{}/metrics", gw.base))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts the demo upstream over Streamable HTTP in this process; returns its /mcp URL.
pub async fn http_demo_upstream() -> (String, tokio_util::sync::CancellationToken) {
    serve_demo_http(|app| app).await
}

/// Like [`http_demo_upstream`], with `wrap` applied to its router (e.g. a layer that records
/// requests).
pub async fn serve_demo_http(
    wrap: impl FnOnce(axum::Router) -> axum::Router,
) -> (String, tokio_util::sync::CancellationToken) {
    serve_http(switchboard_server::demo::DemoServer::default(), wrap).await
}

/// Serves `demo` over Streamable HTTP in this process, with `wrap` applied to its router.
pub async fn serve_http(
    demo: switchboard_server::demo::DemoServer,
    wrap: impl FnOnce(axum::Router) -> axum::Router,
) -> (String, tokio_util::sync::CancellationToken) {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    let ct = tokio_util::sync::CancellationToken::new();
    let service = StreamableHttpService::new(
        move || Ok(demo.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_cancellation_token(ct.clone()),
    );
    let app = wrap(axum::Router::new().nest_service("/mcp", service));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = ct.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    (format!("http://{addr}/mcp"), ct)
}

/// Like [`eventually`] for an async check, retried every 200 ms.
pub async fn eventually_async<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `tools/call` parameters for `name` with `args` (a JSON object).
pub fn call(name: &str, args: serde_json::Value) -> rmcp::model::CallToolRequestParams {
    let mut params = rmcp::model::CallToolRequestParams::new(name.to_owned());
    params.arguments = args.as_object().cloned();
    params
}

/// A new client sending `traceparent` (if any, with `tracestate: vendor=1`) calls `tool`
/// with `args`, then disconnects.
pub async fn call_with_trace(
    url: &str,
    traceparent: Option<&str>,
    tool: &str,
    args: serde_json::Value,
) -> Result<rmcp::model::CallToolResult, rmcp::ServiceError> {
    use rmcp::ServiceExt;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    if let Some(traceparent) = traceparent {
        config.custom_headers.insert(
            http::HeaderName::from_static("traceparent"),
            traceparent.parse().expect("a header value"),
        );
        config.custom_headers.insert(
            http::HeaderName::from_static("tracestate"),
            http::HeaderValue::from_static("vendor=1"),
        );
    }
    let client =
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .expect("handshake succeeds");
    let result = client.call_tool(call(tool, args)).await;
    let _ = client.cancel().await;
    result
}

/// Connects as `bearer`, calls `tool` with `{"text": marker}`, disconnects: the echoed text
/// or the JSON-RPC error.
pub async fn echo_as(
    url: &str,
    era: Era,
    bearer: &str,
    tool: &str,
    marker: &str,
) -> Result<String, ErrorData> {
    let (client, _) = connect_as(url, era, bearer).await;
    let result = client
        .call_tool(call(tool, serde_json::json!({"text": marker})))
        .await
        .map(|r| text(&r))
        .map_err(mcp_error);
    let _ = client.cancel().await;
    result
}

/// The first text content of a tool result.
pub fn text(result: &rmcp::model::CallToolResult) -> String {
    result.content[0]
        .as_text()
        .expect("text content")
        .text
        .clone()
}

/// Sends a `tools/call` without waiting for it: the handle gives its id and progress token.
pub async fn start_call(
    client: &Client,
    params: rmcp::model::CallToolRequestParams,
) -> rmcp::service::RequestHandle<RoleClient> {
    client
        .send_request_with_option(
            rmcp::model::ClientRequest::from(rmcp::model::CallToolRequest::new(params)),
            rmcp::service::PeerRequestOptions::no_options(),
        )
        .await
        .expect("request sent")
}
