//! Streamable HTTP for downstream clients (`/mcp`).
//!
//! rmcp's `StreamableHttpService` implements both eras on one endpoint: stateless 2026-07-28
//! requests (with `Mcp-Method`/`Mcp-Name` header validation) and legacy sessions
//! (`Mcp-Session-Id`, GET stream, DELETE, 404 for unknown sessions). Switchboard supplies the
//! handler factory and its own limits.

use std::sync::Arc;
use std::time::Duration;

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
        }
    }
}

/// The tower service for `/mcp`.
pub type McpService = StreamableHttpService<GatewayHandler, LocalSessionManager>;

/// Builds the Streamable HTTP service; `ct` ends all its sessions on shutdown.
pub fn service(gateway: Arc<Gateway>, options: &HttpOptions, ct: CancellationToken) -> McpService {
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(options.allowed_hosts.clone())
        .with_allowed_origins(options.allowed_origins.clone())
        .enforce_origin_validation()
        .with_max_request_body_bytes(options.max_body_bytes)
        .with_sse_keep_alive(Some(options.keep_alive))
        .with_cancellation_token(ct);
    if options.allowed_hosts.is_empty() {
        config = config.disable_allowed_hosts();
    }
    let mut session_config = SessionConfig::default();
    session_config.keep_alive = Some(options.session_idle);
    let mut sessions = LocalSessionManager::default();
    sessions.session_config = session_config;
    StreamableHttpService::new(move || Ok(gateway.handler()), Arc::new(sessions), config)
}
