//! Streamable HTTP for downstream clients (`/mcp`).
//!
//! rmcp's `StreamableHttpService` implements both eras on one endpoint: stateless 2026-07-28
//! requests (with `Mcp-Method`/`Mcp-Name` header validation) and legacy sessions
//! (`Mcp-Session-Id`, GET stream, DELETE, 404 for unknown sessions). Switchboard supplies the
//! handler factory and its own limits. Plain stateless requests take Switchboard's direct
//! path instead (see [`super::direct`]).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::{BoxFuture, Either};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;
use tower::{Layer, Service};

use switchboard_domain::tenancy::{SessionOwner, TenantId};

use super::SessionInfo;
use super::owners::{Caps, Owners};
use super::sessions::Sessions;

use crate::caller::Caller;
use crate::error::codes;
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
    /// A quiet legacy session without open streams or state of its own is parked after this
    /// long (`None`: never).
    pub session_park_after: Option<Duration>,
    /// Whether plain 2026-07-28 stateless requests take the direct path (see
    /// [`super::direct`]) rather than rmcp's per-request service loop.
    pub stateless_direct: bool,
    /// Most concurrent legacy HTTP+SSE sessions.
    pub max_sse_sessions: usize,
    /// Most concurrent legacy Streamable HTTP sessions.
    pub max_sessions: usize,
    /// Most concurrent legacy sessions (each transport) of one user, unless the tenant sets
    /// `maxSessionsPerUser`.
    pub max_sessions_per_user: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: Vec::new(),
            max_body_bytes: 4 * 1024 * 1024,
            keep_alive: Duration::from_secs(15),
            session_idle: Duration::from_secs(300),
            session_park_after: Some(Duration::from_secs(10)),
            stateless_direct: true,
            max_sse_sessions: 10_000,
            max_sessions: 10_000,
            max_sessions_per_user: 100,
        }
    }
}

/// The service behind `/mcp`: the direct path for plain stateless requests, rmcp's
/// Streamable HTTP service for everything else.
pub struct McpService {
    /// `None`: `server.stateless_direct = false`.
    direct: Option<super::direct::DirectPath>,
    rmcp: StreamableHttpService<GatewayHandler, Sessions>,
}

impl McpService {
    /// Serves one request on `/mcp`.
    pub async fn handle(&self, request: Request) -> Response {
        let request = match &self.direct {
            Some(direct) => match direct.serve(request).await {
                Ok(response) => return response,
                Err(request) => request,
            },
            None => request,
        };
        self.rmcp.handle(request).await.into_response()
    }

    /// Requests served by the direct path, without rmcp's per-request service loop.
    pub fn direct_requests(&self) -> u64 {
        self.direct
            .as_ref()
            .map_or(0, super::direct::DirectPath::served)
    }
}

/// Admits new legacy sessions up to the gateway's, the tenant's and the user's limits, and
/// binds each session to the caller that opened it.
#[derive(Clone)]
pub struct SessionLimit {
    sessions: Sessions,
    max: usize,
    max_per_user: usize,
    /// Who opened each session, and when, with counts per user and tenant; the session
    /// manager tells it when a session ends, however it ends.
    owners: Arc<Mutex<Owners>>,
}

impl SessionLimit {
    fn owners(&self) -> std::sync::MutexGuard<'_, Owners> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parked sessions.
    pub fn parked(&self) -> usize {
        self.sessions.parked()
    }

    /// The open sessions of `tenant`.
    pub fn sessions_of(&self, tenant: &TenantId) -> Vec<SessionInfo> {
        self.owners()
            .iter()
            .filter(|(_, (owner, _))| &owner.tenant == tenant)
            .map(|(id, (owner, opened_at))| SessionInfo {
                id: id.clone(),
                transport: "streamable-http",
                owner: owner.clone(),
                opened_at: *opened_at,
            })
            .collect()
    }

    /// Ends a session of `tenant`; `false` when it has no such session.
    pub fn close(&self, tenant: &TenantId, id: &str) -> bool {
        let belongs = self
            .owners()
            .get(id)
            .is_some_and(|(owner, _)| &owner.tenant == tenant);
        // The session manager tells the owner map.
        belongs && self.sessions.close(id)
    }

    /// The answer when the gateway holds `server.max_sessions` sessions.
    fn full(&self) -> Response {
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            -32000,
            format!(
                "this gateway already holds {} sessions (server.max_sessions); retry later or use the stateless 2026-07-28 protocol",
                self.max
            ),
        )
    }

    /// Holds a place for a new session of `owner` if the gateway's, the user's and the
    /// tenant's limits allow one, all under one lock so that concurrent `initialize`s cannot
    /// pass a limit together.
    fn reserve(&self, owner: &SessionOwner, caps: Caps) -> Result<Reservation, Box<Response>> {
        let mut owners = self.owners();
        if self.sessions.len() + owners.pending() >= self.max {
            return Err(Box::new(self.full()));
        }
        if let Some(why) = caps.refusal(owner, owners.held_by(owner), "sessions") {
            return Err(Box::new(refuse(
                StatusCode::TOO_MANY_REQUESTS,
                codes::TOO_MANY_SESSIONS,
                format!("{why}; close one (HTTP DELETE) or use the stateless 2026-07-28 protocol"),
            )));
        }
        owners.reserve(owner);
        Ok(Reservation {
            owners: self.owners.clone(),
            sessions: self.sessions.clone(),
            owner: owner.clone(),
        })
    }
}

/// A place held for a session being opened; given back when dropped, after the session (if
/// one was opened) has been recorded.
struct Reservation {
    owners: Arc<Mutex<Owners>>,
    sessions: Sessions,
    owner: SessionOwner,
}

impl Reservation {
    /// Records the session — unless it has already ended (a failed handshake): the session
    /// manager, which removes a session before telling the owner map, has then told it.
    fn opened(self, id: String) {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        if self.sessions.contains(&id) {
            owners.insert(id, self.owner.clone(), super::now_secs());
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        owners.release(&self.owner);
    }
}

fn refuse(status: StatusCode, code: i32, message: String) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": code, "message": message},
    });
    (status, axum::Json(body)).into_response()
}

/// What the session gate decides about a request before it goes on.
enum Gate {
    /// Goes on as it is.
    Pass,
    /// Answered here.
    Refused(Response),
    /// Opens a legacy session: its place is held until the answer names the session.
    Opens(Reservation),
}

impl SessionLimit {
    /// A request naming a session must come from the session's owner (any other caller gets
    /// the same 404 as an unknown session, so session ids cannot be probed or replayed across
    /// tenants); a request that would open a legacy session (a POST without `Mcp-Session-Id`
    /// that is not a 2026-07-28 stateless request) is refused at the limits.
    fn gate(&self, request: &Request) -> Gate {
        let caller = request.extensions().get::<Arc<Caller>>();
        let headers = request.headers();
        if let Some(session) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            let bound = self.owners().get(session).map(|(owner, _)| owner.clone());
            if let Some(bound) = bound
                && caller.is_none_or(|c| c.principal.session_owner() != bound)
            {
                tracing::info!(bound_to = %bound, "session id presented by another caller; answered as unknown");
                return Gate::Refused(refuse(
                    StatusCode::NOT_FOUND,
                    -32600,
                    "unknown or expired session; start a new one with initialize".into(),
                ));
            }
            return Gate::Pass;
        }
        let opens_session = request.method() == Method::POST
            && headers
                .get("mcp-protocol-version")
                .and_then(|v| v.to_str().ok())
                .is_none_or(|v| v < "2026-07-28");
        if !opens_session {
            return Gate::Pass;
        }
        let Some(caller) = caller else {
            // No caller (a gateway without authentication in front): the gateway's limit only.
            if self.sessions.len() >= self.max {
                return Gate::Refused(self.full());
            }
            return Gate::Pass;
        };
        let owner = caller.principal.session_owner();
        let caps = Caps::of(caller, &owner, self.max_per_user);
        match self.reserve(&owner, caps) {
            Ok(reservation) => Gate::Opens(reservation),
            Err(refused) => Gate::Refused(*refused),
        }
    }
}

/// The session limit as a layer for `/mcp` (see [`SessionLimit::gate`]), behind
/// authentication. A tower layer rather than `axum::middleware::from_fn`: most requests
/// (calls on a session, stateless requests) go straight to the inner service, where
/// `from_fn` would box a clone of the stack below and the future for every one.
impl<S> Layer<S> for SessionLimit {
    type Service = SessionGate<S>;

    fn layer(&self, inner: S) -> SessionGate<S> {
        SessionGate {
            limit: self.clone(),
            inner,
        }
    }
}

/// The service of the [`SessionLimit`] layer.
#[derive(Clone)]
pub struct SessionGate<S> {
    limit: SessionLimit,
    inner: S,
}

impl<S> Service<Request> for SessionGate<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.limit.gate(&request) {
            Gate::Pass => Either::Left(self.inner.call(request)),
            Gate::Refused(response) => Either::Right(Box::pin(std::future::ready(Ok(response)))),
            Gate::Opens(reservation) => {
                // The service polled ready is the one to call; a clone stays for the next.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Either::Right(Box::pin(async move {
                    let response = inner.call(request).await?;
                    if let Some(id) = response
                        .headers()
                        .get("mcp-session-id")
                        .and_then(|v| v.to_str().ok())
                    {
                        reservation.opened(id.to_owned());
                    }
                    Ok(response)
                }))
            }
        }
    }
}

/// `/mcp` as an axum route. Every layer a request passes clones the service below it, and
/// rmcp's service clones its whole configuration (host and origin lists) each time; behind
/// an `Arc` that is a pointer copy.
///
/// A session ended with `DELETE` is answered `204 No Content` instead of rmcp's
/// `202 Accepted` — the session is gone, nothing is pending — which the Python SDK otherwise
/// logs as a failed termination. Done here rather than in a layer of its own: a layer costs
/// every request a clone of the stack below it and two allocations.
pub fn route<S: Clone + Send + Sync + 'static>(
    service: Arc<McpService>,
) -> axum::routing::MethodRouter<S> {
    axum::routing::any(move |request: Request| {
        let service = service.clone();
        async move {
            let delete = request.method() == http::Method::DELETE;
            let mut response = service.handle(request).await;
            if delete && response.status() == http::StatusCode::ACCEPTED {
                *response.status_mut() = http::StatusCode::NO_CONTENT;
                *response.body_mut() = axum::body::Body::empty();
            }
            response
        }
    })
}

/// Builds the Streamable HTTP service and its session limit; `ct` ends all its sessions on
/// shutdown.
pub fn service(
    gateway: Arc<Gateway>,
    options: &HttpOptions,
    ct: CancellationToken,
) -> (Arc<McpService>, SessionLimit) {
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
    let owners: Arc<Mutex<Owners>> = Arc::default();
    let ended = Arc::downgrade(&owners);
    let sessions = Sessions::new(
        options.session_idle,
        options.session_park_after,
        move |id| {
            if let Some(owners) = ended.upgrade() {
                owners.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
            }
        },
    );
    if options.session_park_after.is_some() {
        // rmcp restores a parked session through its session store: ours keeps the parked
        // sessions' `initialize` (see `sessions.rs`).
        config.session_store = Some(Arc::new(sessions.clone()));
        gateway.hub.add_dormant(sessions.dormant());
    }
    let limit = SessionLimit {
        sessions: sessions.clone(),
        max: options.max_sessions,
        max_per_user: options.max_sessions_per_user,
        owners,
    };
    let direct = options.stateless_direct.then(|| {
        super::direct::DirectPath::new(gateway.clone(), options, config.cancellation_token.clone())
    });
    let rmcp =
        StreamableHttpService::new(move || Ok(gateway.handler()), Arc::new(sessions), config);
    (Arc::new(McpService { direct, rmcp }), limit)
}
