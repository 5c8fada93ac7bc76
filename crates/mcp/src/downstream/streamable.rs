//! Streamable HTTP for downstream clients (`/mcp`).
//!
//! rmcp's `StreamableHttpService` implements both eras on one endpoint: stateless 2026-07-28
//! requests (with `Mcp-Method`/`Mcp-Name` header validation) and legacy sessions
//! (`Mcp-Session-Id`, GET stream, DELETE, 404 for unknown sessions). Switchboard supplies the
//! handler factory and its own limits.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::{LocalSessionManager, SessionConfig};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::gateway::Gateway;
use crate::handler::GatewayHandler;

/// Limits and policies of the downstream HTTP transports.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Accepted `Host` values (`host` or `host:port`); empty accepts any (not recommended).
    pub allowed_hosts: Vec<String>,
    /// Accepted browser `Origin`s; requests without `Origin` always pass.
    pub allowed_origins: Vec<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Interval of SSE keep-alive comments.
    pub keep_alive: Duration,
    /// A legacy session without traffic for this long is closed.
    pub session_idle: Duration,
    /// Most concurrent legacy HTTP+SSE sessions.
    pub max_sse_sessions: usize,
    /// Most concurrent legacy Streamable HTTP sessions.
    pub max_sessions: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: Vec::new(),
            max_body_bytes: 4 * 1024 * 1024,
            keep_alive: Duration::from_secs(15),
            session_idle: Duration::from_secs(300),
            max_sse_sessions: 10_000,
            max_sessions: 10_000,
        }
    }
}

/// The tower service for `/mcp`.
pub type McpService = StreamableHttpService<GatewayHandler, LocalSessionManager>;

/// Admits new legacy sessions up to a limit (rmcp's session manager has none).
#[derive(Clone)]
pub struct SessionLimit {
    sessions: Arc<LocalSessionManager>,
    max: usize,
}

impl SessionLimit {
    /// Open legacy Streamable HTTP sessions.
    pub async fn open(&self) -> usize {
        self.sessions.sessions.read().await.len()
    }
}

/// Middleware for `/mcp`: a request that would open a legacy session (a POST without
/// `Mcp-Session-Id` that is not a 2026-07-28 stateless request) gets 503 at the limit.
pub async fn limit_sessions(
    State(limit): State<SessionLimit>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let opens_session = request.method() == Method::POST
        && !headers.contains_key("mcp-session-id")
        && headers
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v < "2026-07-28");
    if opens_session && limit.open().await >= limit.max {
        let body = serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": -32000, "message": format!(
                "this gateway already holds {} sessions (server.max_sessions); retry later or use the stateless 2026-07-28 protocol",
                limit.max
            )},
        });
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    }
    next.run(request).await
}

/// Builds the Streamable HTTP service and its session limit; `ct` ends all its sessions on
/// shutdown.
pub fn service(
    gateway: Arc<Gateway>,
    options: &HttpOptions,
    ct: CancellationToken,
) -> (McpService, SessionLimit) {
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(options.allowed_hosts.clone())
        .with_allowed_origins(options.allowed_origins.clone())
        .enforce_origin_validation()
        .with_max_request_body_bytes(options.max_body_bytes)
        .with_sse_keep_alive(Some(options.keep_alive))
        // A stateless (2026-07-28) request whose first message is its answer gets a plain JSON
        // body; rmcp switches to SSE when progress or other messages come first.
        .with_json_response(true)
        .with_cancellation_token(ct);
    if options.allowed_hosts.is_empty() {
        config = config.disable_allowed_hosts();
    }
    let mut session_config = SessionConfig::default();
    session_config.keep_alive = Some(options.session_idle);
    let mut sessions = LocalSessionManager::default();
    sessions.session_config = session_config;
    let sessions = Arc::new(sessions);
    let limit = SessionLimit {
        sessions: sessions.clone(),
        max: options.max_sessions,
    };
    let service = StreamableHttpService::new(move || Ok(gateway.handler()), sessions, config);
    (service, limit)
}
