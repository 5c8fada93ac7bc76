//! The legacy HTTP+SSE transport for downstream clients (protocol 2024-11-05).
//!
//! `GET …/sse` opens an event stream; its first event, `endpoint`, names the URL to `POST`
//! JSON-RPC messages to (`…/messages?sessionId=…`); every server message arrives as a
//! `message` event. Each stream is one MCP session, served by its own [`GatewayHandler`]
//! over an in-memory channel transport. The session ends when the client closes the stream.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::channel::mpsc;
use futures::{SinkExt, Stream, StreamExt};
use rmcp::ServiceExt;
use rmcp::model::{ClientJsonRpcMessage, GetExtensions, ServerJsonRpcMessage};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use switchboard_domain::tenancy::{SessionOwner, TenantId};

use super::SessionInfo;
use super::owners::{Caps, Owners};
use super::streamable::HttpOptions;
use crate::caller::Caller;
use crate::error::codes;
use crate::gateway::Gateway;

/// How long a new session may take to send `initialize`.
const INIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Messages buffered per direction per session.
const CHANNEL_CAPACITY: usize = 64;
/// How long a POST waits for room in a full session queue before answering 503.
const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// Extra query parameters for the message endpoint a stream announces (set by the server's
/// authentication layer when the client authenticated by query, so its posts can too).
#[derive(Debug, Clone)]
pub struct EndpointQuery(pub String);

struct SessionEntry {
    to_server: mpsc::Sender<ClientJsonRpcMessage>,
    /// Who opened the stream: only they may post to it.
    owner: SessionOwner,
    /// Ends the session (its MCP service and its event stream).
    cancel: CancellationToken,
    opened_at: i64,
}

/// Shared state of the legacy SSE endpoint.
pub struct SseState {
    gateway: Arc<Gateway>,
    options: HttpOptions,
    sessions: Mutex<HashMap<String, SessionEntry>>,
    /// Open sessions counted per user and tenant (kept exactly: a session leaves with its
    /// stream), so a limit is checked without a scan.
    owners: Mutex<Owners>,
    shutdown: CancellationToken,
}

impl SseState {
    /// Creates the endpoint state; `shutdown` closes every stream.
    pub fn new(
        gateway: Arc<Gateway>,
        options: HttpOptions,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            gateway,
            options,
            sessions: Mutex::new(HashMap::new()),
            owners: Mutex::default(),
            shutdown,
        })
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, Owners> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionEntry>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of open legacy SSE sessions.
    pub fn session_count(&self) -> usize {
        self.sessions().len()
    }

    /// The open sessions of `tenant`.
    pub fn sessions_of(&self, tenant: &TenantId) -> Vec<SessionInfo> {
        self.sessions()
            .iter()
            .filter(|(_, s)| &s.owner.tenant == tenant)
            .map(|(id, s)| SessionInfo {
                id: id.clone(),
                transport: "sse",
                owner: s.owner.clone(),
                opened_at: s.opened_at,
            })
            .collect()
    }

    /// Ends a session of `tenant`; `false` when it has no such session.
    pub fn close(&self, tenant: &TenantId, id: &str) -> bool {
        let sessions = self.sessions();
        match sessions.get(id) {
            Some(entry) if &entry.owner.tenant == tenant => {
                entry.cancel.cancel();
                true
            }
            _ => false,
        }
    }
}

/// Removes the session and stops its MCP service when the event stream is dropped.
struct SessionGuard {
    state: Arc<SseState>,
    id: String,
    service_ct: CancellationToken,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.state.sessions().remove(&self.id);
        self.state.owners().remove(&self.id);
        self.service_ct.cancel();
        tracing::debug!(session = %self.id, "legacy SSE session closed");
    }
}

fn json_error(status: StatusCode, code: i64, message: impl Into<String>) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code, "message": message.into() },
    });
    (status, axum::Json(body)).into_response()
}

/// `GET …/sse`: opens a session and streams its messages.
pub async fn open_stream(State(state): State<Arc<SseState>>, request: Request) -> Response {
    let Some(caller) = request.extensions().get::<Arc<Caller>>().cloned() else {
        return json_error(
            StatusCode::UNAUTHORIZED,
            codes::UNAUTHENTICATED.into(),
            "the request carries no authenticated caller",
        );
    };
    if state.session_count() >= state.options.max_sse_sessions {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            -32000,
            "too many open SSE sessions on this gateway; retry later",
        );
    }
    let owner = caller.principal.session_owner();
    let caps = Caps::of(&caller, &owner, state.options.max_sessions_per_user);
    let id = uuid::Uuid::new_v4().simple().to_string();
    {
        // Checked and counted under one lock: concurrent opens cannot pass a limit together.
        let mut owners = state.owners();
        if let Some(why) = caps.refusal(&owner, owners.held_by(&owner), "SSE sessions") {
            return json_error(
                StatusCode::TOO_MANY_REQUESTS,
                codes::TOO_MANY_SESSIONS.into(),
                format!("{why}; close one first"),
            );
        }
        owners.insert(id.clone(), owner.clone(), super::now_secs());
    }
    let (to_server, from_client) = mpsc::channel::<ClientJsonRpcMessage>(CHANNEL_CAPACITY);
    let (to_client, from_server) = mpsc::channel::<ServerJsonRpcMessage>(CHANNEL_CAPACITY);
    let service_ct = state.shutdown.child_token();
    state.sessions().insert(
        id.clone(),
        SessionEntry {
            to_server,
            owner,
            cancel: service_ct.clone(),
            opened_at: super::now_secs(),
        },
    );

    let handler = state.gateway.handler();
    let ct = service_ct.clone();
    let session = id.clone();
    tokio::spawn(async move {
        let serving = tokio::time::timeout(INIT_TIMEOUT, handler.serve((to_client, from_client)));
        let running = tokio::select! {
            r = serving => r,
            _ = ct.cancelled() => return,
        };
        match running {
            Ok(Ok(running)) => {
                let service = running.cancellation_token();
                tokio::select! {
                    _ = running.waiting() => {}
                    _ = ct.cancelled() => service.cancel(),
                }
            }
            Ok(Err(err)) => {
                tracing::info!(%session, %err, "legacy SSE session failed to initialize")
            }
            Err(_) => tracing::info!(%session, "legacy SSE session sent no initialize in time"),
        }
    });

    // The message endpoint sits beside the SSE endpoint: /sse → /messages, /t/x/sse → /t/x/messages.
    let path = request.uri().path();
    let base = path
        .strip_suffix("/sse")
        .unwrap_or(path.trim_end_matches('/'));
    let endpoint = match request.extensions().get::<EndpointQuery>() {
        Some(EndpointQuery(extra)) => format!("{base}/messages?sessionId={id}&{extra}"),
        None => format!("{base}/messages?sessionId={id}"),
    };
    let guard = SessionGuard {
        state: state.clone(),
        id,
        service_ct: service_ct.clone(),
    };
    let events = event_stream(endpoint, from_server, guard, service_ct);
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(state.options.keep_alive))
        .into_response()
}

fn event_stream(
    endpoint: String,
    from_server: mpsc::Receiver<ServerJsonRpcMessage>,
    guard: SessionGuard,
    ct: CancellationToken,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let first =
        futures::stream::once(async move { Event::default().event("endpoint").data(endpoint) });
    let messages = from_server
        .take_until(async move { ct.cancelled().await })
        .filter_map(|message| async move {
            match serde_json::to_string(&message) {
                Ok(json) => Some(Event::default().event("message").data(json)),
                Err(err) => {
                    tracing::error!(%err, "could not serialise a server message");
                    None
                }
            }
        });
    first.chain(messages).map(move |event| {
        // The guard lives as long as the stream: dropping the stream ends the session.
        let _ = &guard;
        Ok(event)
    })
}

/// Query of the message endpoint.
#[derive(Debug, Deserialize)]
pub struct MessageQuery {
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
}

/// `POST …/messages?sessionId=…`: one JSON-RPC message (or a batch) for a session.
pub async fn post_message(
    State(state): State<Arc<SseState>>,
    Query(query): Query<MessageQuery>,
    request: Request<Body>,
) -> Response {
    let (parts, body) = request.into_parts();
    let caller = parts.extensions.get::<Arc<Caller>>().cloned();
    let Some(session_id) = query.session_id else {
        return json_error(
            StatusCode::BAD_REQUEST,
            -32600,
            "missing sessionId query parameter; use the URL from the `endpoint` event",
        );
    };
    // Another caller's session is answered exactly like one that does not exist.
    let Some(mut sender) = state
        .sessions()
        .get(&session_id)
        .filter(|s| {
            caller
                .as_ref()
                .is_some_and(|c| c.principal.session_owner() == s.owner)
        })
        .map(|s| s.to_server.clone())
    else {
        return json_error(
            StatusCode::NOT_FOUND,
            -32600,
            "unknown or closed session; open a new one with GET on the SSE endpoint",
        );
    };
    // Read at most the configured size: larger bodies are refused while streaming, not after.
    let Ok(body) = axum::body::to_bytes(body, state.options.max_body_bytes).await else {
        return json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            -32600,
            format!(
                "message is larger than {} bytes (server.max_body_bytes) or the body was cut off",
                state.options.max_body_bytes
            ),
        );
    };
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(err) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                -32700,
                format!("body is not JSON: {err}"),
            );
        }
    };
    let values = match value {
        serde_json::Value::Array(items) if !items.is_empty() => items,
        serde_json::Value::Array(_) => {
            return json_error(StatusCode::BAD_REQUEST, -32600, "empty batch");
        }
        single => vec![single],
    };
    let mut messages = Vec::with_capacity(values.len());
    for value in values {
        match serde_json::from_value::<ClientJsonRpcMessage>(value) {
            Ok(m) => messages.push(m),
            Err(err) => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    -32600,
                    format!("not a valid MCP JSON-RPC message: {err}"),
                );
            }
        }
    }
    for mut message in messages {
        // The handler decides every message with the caller of the POST that carried it,
        // as rmcp does for Streamable HTTP.
        match &mut message {
            ClientJsonRpcMessage::Request(r) => {
                r.request.extensions_mut().insert(parts.clone());
            }
            ClientJsonRpcMessage::Notification(n) => {
                n.notification.extensions_mut().insert(parts.clone());
            }
            _ => {}
        }
        match tokio::time::timeout(ENQUEUE_TIMEOUT, sender.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                return json_error(
                    StatusCode::NOT_FOUND,
                    -32600,
                    "session closed; open a new one",
                );
            }
            Err(_) => {
                return json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    -32000,
                    "session is not consuming messages; retry later",
                );
            }
        }
    }
    (StatusCode::ACCEPTED, "Accepted").into_response()
}
