//! The direct path of a `tools/call` on a shared Streamable HTTP connection.
//!
//! rmcp's client hands a request from the calling task to its service loop, on to the
//! transport worker and to a task per POST, and brings the reply back the same way: about
//! four task hops each way, which on a small machine cost more than the gateway's own work
//! (see `docs/benchmarks.md`). Here the calling task sends the POST itself, with the session
//! and headers rmcp's worker negotiated (noted by [`Recorder`] from rmcp's own POSTs), and
//! reads the reply: JSON, or an SSE stream, resumed with `Last-Event-ID` when the upstream
//! closes it before answering. The HTTP exchange itself — headers, body limits, SSE parsing,
//! JSON-RPC errors in error statuses — is rmcp's client code (`UpstreamHttp`), so both paths
//! speak alike. What a stream carries besides the reply is handled as on rmcp's path:
//! notifications by [`Upstream::on_shared_notification`], requests answered by
//! [`Upstream::answer_shared`] in a POST of their own.
//!
//! Everything else stays on rmcp: other methods, a connection before rmcp's first POST after
//! the handshake, tools whose schemas promote arguments to `Mcp-Param-*` headers (any on the
//! upstream), names `Mcp-Name` would carry in Base64, and a session the upstream forgot
//! (HTTP 404): that request is handed back to rmcp, which re-initializes and sends it.
//!
//! `SWITCHBOARD_DIRECT_CALLS=off` in the environment turns the path off (every call goes
//! through rmcp), for troubleshooting an upstream and for measuring the difference.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use futures::StreamExt;
use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::{
    CancelledNotificationParam, ClientConfig, ClientJsonRpcMessage, ClientRequest, GetMeta,
    NumberOrString, ProgressToken, ProtocolVersion, RequestId, RequestMetaObject,
    ServerJsonRpcMessage, ServerNotification, ServerResult,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use serde_json::Value;
use sse_stream::Sse;
use tokio::sync::Semaphore;

use super::headers::UpstreamHttp;
use super::{Live, Upstream};
use crate::error::GatewayError;

/// Request ids and progress tokens of the direct path start here: rmcp numbers its own from
/// zero as `u32`s on the same connection, so the two never meet.
const FIRST_ID: i64 = 1 << 40;
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// How often a reply stream closed early is resumed before the call fails.
const MAX_RESUMES: u32 = 3;
/// The longest wait before resuming, whatever `retry` the upstream asked for.
const MAX_RESUME_DELAY: Duration = Duration::from_secs(1);
/// POSTs in flight on one connection's direct path (rmcp's worker has its own 256 for
/// everything else).
const MAX_IN_FLIGHT: usize = 256;

/// What rmcp's worker sent with its last POST after the handshake. Not `Debug`: the
/// headers can hold the upstream's credentials.
#[derive(PartialEq)]
pub(crate) struct Negotiated {
    session_id: Option<Arc<str>>,
    auth_header: Option<String>,
    /// The connection's headers (configured ones and `MCP-Protocol-Version`), without the
    /// per-message ones (`Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`).
    headers: HashMap<HeaderName, HeaderValue>,
}

/// Notes what rmcp's worker sends, for the direct path to send alike.
#[derive(Default)]
pub(crate) struct Recorder(ArcSwapOption<Negotiated>);

impl Recorder {
    /// What a POST of rmcp's worker is sent with, to keep (with [`Recorder::keep`]) once
    /// the upstream accepted it; `None` for the handshake.
    pub(crate) fn note(
        &self,
        message: &ClientJsonRpcMessage,
        session_id: Option<&Arc<str>>,
        auth_header: Option<&String>,
        headers: &HashMap<HeaderName, HeaderValue>,
    ) -> Option<Negotiated> {
        // The handshake goes out before there is a session or a version to send with.
        if let ClientJsonRpcMessage::Request(r) = message
            && matches!(
                r.request,
                ClientRequest::InitializeRequest(_) | ClientRequest::DiscoverRequest(_)
            )
        {
            return None;
        }
        Some(Negotiated {
            session_id: session_id.cloned(),
            auth_header: auth_header.cloned(),
            headers: headers
                .iter()
                .filter(|(name, _)| !per_message(name))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        })
    }

    /// Keeps what a POST the upstream accepted was sent with: a session rmcp tried and the
    /// upstream refused (a failed re-initialization) is never used.
    pub(crate) fn keep(&self, next: Negotiated) {
        if self.0.load().as_deref() != Some(&next) {
            self.0.store(Some(Arc::new(next)));
        }
    }

    fn current(&self) -> Option<Arc<Negotiated>> {
        self.0.load_full()
    }
}

/// SEP-2243 headers rmcp derives from each message.
fn per_message(name: &HeaderName) -> bool {
    let name = name.as_str();
    name == "mcp-method" || name == "mcp-name" || name.starts_with("mcp-param-")
}

/// True when a schema promotes an argument to a header (`x-mcp-header`), anywhere in it.
pub(crate) fn promotes_headers(schema: &serde_json::Map<String, Value>) -> bool {
    fn walk(value: &Value) -> bool {
        match value {
            Value::Object(map) => map
                .iter()
                .any(|(key, value)| key == "x-mcp-header" || walk(value)),
            Value::Array(items) => items.iter().any(walk),
            _ => false,
        }
    }
    schema
        .iter()
        .any(|(key, value)| key == "x-mcp-header" || walk(value))
}

/// `Mcp-Name` for `name` when it travels as it is (rmcp would Base64-wrap anything outside
/// visible ASCII, or a value shaped like its Base64 sentinel).
fn plain_name_header(name: &str) -> Option<HeaderValue> {
    let plain = !name.is_empty()
        && name.bytes().all(|b| (0x21..=0x7e).contains(&b))
        && !name.starts_with("=?base64?");
    plain.then(|| HeaderValue::from_str(name).ok()).flatten()
}

/// The client side of one shared Streamable HTTP connection's direct path.
pub(crate) struct Direct {
    http: UpstreamHttp,
    uri: Arc<str>,
    recorder: Arc<Recorder>,
    permits: Semaphore,
}

/// How a call goes out directly: decided before anything is sent.
pub(crate) struct Plan {
    negotiated: Arc<Negotiated>,
    /// `Mcp-Name` on a connection that sends SEP-2243 headers.
    name_header: Option<HeaderValue>,
    /// The connection has no `initialize`: each request carries the client's metadata.
    per_request_meta: Option<ProtocolVersion>,
}

/// Why the direct path gave a request back: rmcp sends it instead.
pub(crate) struct HandBack(pub ClientRequest);

impl Direct {
    /// The direct path of a connection whose rmcp transport posts through an `UpstreamHttp`
    /// carrying `recorder`.
    pub(crate) fn new(http: &UpstreamHttp, uri: Arc<str>, recorder: Arc<Recorder>) -> Self {
        Self {
            http: UpstreamHttp {
                inner: http.inner.clone(),
                identity_key: http.identity_key.clone(),
                recorder: None,
            },
            uri,
            recorder,
            permits: Semaphore::new(MAX_IN_FLIGHT),
        }
    }

    /// How `request` would go out directly, or `None` when it must go through rmcp.
    pub(crate) fn plan(
        &self,
        request: &ClientRequest,
        live: &Live,
        promoted_headers: bool,
    ) -> Option<Plan> {
        let ClientRequest::CallToolRequest(call) = request else {
            return None;
        };
        if !enabled() {
            return None;
        }
        let negotiated = self.recorder.current()?;
        let version = live.peer.peer_info()?.protocol_version.clone();
        let name_header = if version >= ProtocolVersion::STANDARD_HEADERS {
            if promoted_headers {
                return None;
            }
            Some(plain_name_header(&call.params.name)?)
        } else {
            None
        };
        Some(Plan {
            negotiated,
            name_header,
            per_request_meta: (!version.has_initialize()).then_some(version),
        })
    }
}

/// False when `SWITCHBOARD_DIRECT_CALLS` is `off` (read once).
fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        let off = std::env::var("SWITCHBOARD_DIRECT_CALLS").is_ok_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "off" | "0" | "false"
            )
        });
        if off {
            tracing::info!("direct upstream calls are off (SWITCHBOARD_DIRECT_CALLS)");
        }
        !off
    })
}

/// The gateway's client metadata, as rmcp puts it in each request without `initialize`.
fn client_config() -> &'static ClientConfig {
    static CONFIG: OnceLock<ClientConfig> = OnceLock::new();
    CONFIG.get_or_init(super::client_info)
}

type Exchange = Result<ServerResult, GatewayError>;

impl Upstream {
    /// Sends a planned `tools/call` on `live` without rmcp's client (see the module docs).
    /// `meta` is what the caller adds to the request's `_meta`; `routed` the downstream
    /// progress token, if the client asked for progress.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn forward_direct(
        &self,
        live: &Live,
        direct: &Direct,
        plan: Plan,
        mut request: ClientRequest,
        meta: RequestMetaObject,
        ctx: &RequestContext<RoleServer>,
        timeout: Duration,
    ) -> Result<Exchange, HandBack> {
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed) as i64;
        let id = RequestId::Number(FIRST_ID + n);
        {
            let request_meta = request.get_meta_mut();
            if let Some(version) = &plan.per_request_meta {
                let config = client_config();
                request_meta.set_protocol_version(version.clone());
                request_meta.set_client_info(config.client_info.clone());
                request_meta.set_client_capabilities(config.capabilities.clone());
            }
            request_meta.extend(meta);
        }
        let routed = ctx.meta.get_progress_token();
        let upstream_token = ProgressToken(NumberOrString::Number(FIRST_ID + n));
        if routed.is_some() {
            request
                .get_meta_mut()
                .set_progress_token(upstream_token.clone());
        }
        // Kept only while a session could be forgotten, to hand back to rmcp.
        let retry = plan
            .negotiated
            .session_id
            .is_some()
            .then(|| request.clone());
        let message = ClientJsonRpcMessage::request(request, id.clone());
        if let Some(token) = &routed {
            self.route_progress_to(live, &upstream_token, ctx, token)
                .await;
        }
        // The exchange outlives the select: a legacy upstream is told of a cancellation while
        // the call's stream is still open (as rmcp does), and only then is the stream closed.
        let exchange =
            tokio::time::timeout(timeout, self.exchange(live, direct, &plan, message, &id));
        let outcome = {
            tokio::pin!(exchange);
            tokio::select! {
                outcome = &mut exchange => match outcome {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        self.cancel_upstream(live, id.clone(), "request timeout").await;
                        Ok(Err(GatewayError::Timeout { server: self.name().to_owned(), timeout }))
                    }
                },
                _ = ctx.ct.cancelled() => {
                    self.cancel_upstream(live, id.clone(), "cancelled by the downstream client").await;
                    Ok(Err(GatewayError::Cancelled))
                }
            }
        };
        if routed.is_some() {
            self.hub
                .settle_progress(live.connection, &upstream_token)
                .await;
            self.hub.unroute_progress(live.connection, &upstream_token);
        }
        match outcome {
            Ok(result) => Ok(result),
            Err(Forgotten) => match retry {
                Some(request) => Err(HandBack(request)),
                None => Ok(Err(self.unavailable("the upstream answered HTTP 404"))),
            },
        }
    }

    async fn cancel_upstream(&self, live: &Live, id: RequestId, reason: &str) {
        let cancel = CancelledNotificationParam::new(Some(id), Some(reason.to_owned()));
        if let Err(err) = live.peer.notify_cancelled(cancel).await {
            let err = self.redact(err.to_string());
            tracing::debug!(server = self.name(), %err, "could not relay cancellation");
        }
    }

    /// One POST and its reply. `Err(Forgotten)`: the upstream no longer knows the session.
    async fn exchange(
        &self,
        live: &Live,
        direct: &Direct,
        plan: &Plan,
        message: ClientJsonRpcMessage,
        id: &RequestId,
    ) -> Result<Exchange, Forgotten> {
        let Ok(_permit) = direct.permits.acquire().await else {
            return Ok(Err(self.unavailable("the connection is closing")));
        };
        let negotiated = &plan.negotiated;
        let mut headers = negotiated.headers.clone();
        if let Some(name) = &plan.name_header {
            headers.insert(
                HeaderName::from_static("mcp-method"),
                HeaderValue::from_static("tools/call"),
            );
            headers.insert(HeaderName::from_static("mcp-name"), name.clone());
        }
        let response = direct
            .http
            .post_message_with_response_limits(
                direct.uri.clone(),
                message,
                negotiated.session_id.clone(),
                negotiated.auth_header.clone(),
                headers,
                StreamableHttpResponseLimits::default(),
            )
            .await;
        let stream = match response {
            Err(StreamableHttpError::SessionExpired) => return Err(Forgotten),
            Err(e) => return Ok(Err(self.unavailable(e.to_string()))),
            Ok(StreamableHttpPostResponse::Accepted) => {
                return Ok(Err(self.unavailable(
                    "the upstream accepted the call without answering it",
                )));
            }
            Ok(StreamableHttpPostResponse::Json(message, _)) => {
                return Ok(
                    match self.take_reply(live, direct, plan, message, id).await {
                        Some(result) => result,
                        None => {
                            Err(self.unavailable("the upstream's reply answered another request"))
                        }
                    },
                );
            }
            Ok(StreamableHttpPostResponse::Sse(stream, _)) => stream,
            Ok(_) => return Ok(Err(self.unavailable("an answer of an unknown kind"))),
        };
        Ok(self.read_stream(live, direct, plan, stream, id).await)
    }

    /// Reads a reply stream until the reply, resuming it when the upstream closes it early.
    async fn read_stream(
        &self,
        live: &Live,
        direct: &Direct,
        plan: &Plan,
        mut stream: BoxStream<'static, Result<Sse, SseError>>,
        id: &RequestId,
    ) -> Exchange {
        let mut last_event: Option<String> = None;
        let mut delay = Duration::ZERO;
        let mut resumes = 0;
        loop {
            while let Some(event) = stream.next().await {
                let event = event.map_err(|e| self.unavailable(format!("reply stream: {e}")))?;
                if let Some(event_id) = event.id {
                    last_event = Some(event_id);
                }
                if let Some(retry) = event.retry {
                    delay = Duration::from_millis(retry).min(MAX_RESUME_DELAY);
                }
                let data = match event.data {
                    Some(data) if !data.trim().is_empty() => data,
                    _ => continue,
                };
                let message = match serde_json::from_str::<ServerJsonRpcMessage>(&data) {
                    Ok(message) => message,
                    Err(err) => {
                        tracing::warn!(server = self.name(), %err, "upstream sent a message that is not JSON-RPC; ignored");
                        continue;
                    }
                };
                if let Some(result) = self.take_reply(live, direct, plan, message, id).await {
                    drain(stream);
                    return result;
                }
            }
            let Some(last) = last_event.clone() else {
                return Err(self.unavailable("the upstream closed the stream before answering"));
            };
            if resumes == MAX_RESUMES {
                return Err(self.unavailable(format!(
                    "the upstream closed the stream {} times before answering",
                    MAX_RESUMES + 1
                )));
            }
            resumes += 1;
            tokio::time::sleep(delay).await;
            let negotiated = &plan.negotiated;
            stream = direct
                .http
                .get_stream_with_max_sse_event_size(
                    direct.uri.clone(),
                    negotiated.session_id.clone(),
                    Some(last),
                    negotiated.auth_header.clone(),
                    negotiated.headers.clone(),
                    StreamableHttpResponseLimits::default().max_sse_event_size,
                )
                .await
                .map_err(|e| self.unavailable(format!("resuming the reply stream: {e}")))?;
        }
    }

    /// The call's outcome when `message` is its reply; anything else the upstream sends is
    /// handled as rmcp's path handles it on a shared connection.
    async fn take_reply(
        &self,
        live: &Live,
        direct: &Direct,
        plan: &Plan,
        message: ServerJsonRpcMessage,
        id: &RequestId,
    ) -> Option<Exchange> {
        match message {
            ServerJsonRpcMessage::Response(r) if same_id(&r.id, id) => Some(Ok(r.result)),
            // No id: the upstream could not read the request, which was ours.
            ServerJsonRpcMessage::Error(e) if e.id.as_ref().is_none_or(|e| same_id(e, id)) => {
                Some(Err(GatewayError::Upstream(e.error)))
            }
            ServerJsonRpcMessage::Response(_) | ServerJsonRpcMessage::Error(_) => {
                tracing::debug!(
                    server = self.name(),
                    "a reply to another request on a call's stream; ignored"
                );
                None
            }
            ServerJsonRpcMessage::Notification(n) => {
                // rmcp's client caches lists; a change seen here must not leave the re-listing
                // that follows reading the cache (rmcp's own path invalidates it too).
                if matches!(
                    n.notification,
                    ServerNotification::ToolListChangedNotification(_)
                        | ServerNotification::PromptListChangedNotification(_)
                        | ServerNotification::ResourceListChangedNotification(_)
                        | ServerNotification::ResourceUpdatedNotification(_)
                ) {
                    live.peer.clear_response_cache().await;
                }
                self.on_shared_notification(live.connection, n.notification)
                    .await;
                None
            }
            ServerJsonRpcMessage::Request(r) => {
                let reply = match self.answer_shared(&r.request) {
                    Ok(result) => ClientJsonRpcMessage::response(result, r.id),
                    Err(error) => ClientJsonRpcMessage::error(error, Some(r.id)),
                };
                let negotiated = &plan.negotiated;
                let sent = direct
                    .http
                    .post_message_with_response_limits(
                        direct.uri.clone(),
                        reply,
                        negotiated.session_id.clone(),
                        negotiated.auth_header.clone(),
                        negotiated.headers.clone(),
                        StreamableHttpResponseLimits::default(),
                    )
                    .await;
                if let Err(err) = sent {
                    let err = self.redact(err.to_string());
                    tracing::debug!(server = self.name(), %err, "could not answer the upstream's request");
                }
                None
            }
        }
    }
}

/// Reads what is left of a reply stream so its HTTP/1.1 connection goes back to the pool:
/// at once when the end is already in (the usual case), else in a task for up to 50 ms.
fn drain(mut stream: BoxStream<'static, Result<Sse, SseError>>) {
    use futures::FutureExt;
    loop {
        match stream.next().now_or_never() {
            Some(Some(_)) => continue,
            Some(None) => return,
            None => break,
        }
    }
    tokio::spawn(async move {
        let rest = async { while stream.next().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_millis(50), rest).await;
    });
}

/// The upstream answered 404 to a POST carrying its session.
struct Forgotten;

/// Whether a reply's id names our request; like rmcp, a numeric id echoed back as a string
/// counts.
fn same_id(reply: &RequestId, ours: &RequestId) -> bool {
    match (reply, ours) {
        (NumberOrString::String(text), NumberOrString::Number(n)) => {
            text.parse::<i64>().ok() == Some(*n)
        }
        _ => reply == ours,
    }
}

/// Whether any of `tools` promotes arguments to headers.
pub(crate) fn any_promotes_headers(tools: &[rmcp::model::Tool]) -> bool {
    tools
        .iter()
        .any(|tool| promotes_headers(&tool.input_schema))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{CallToolRequest, CallToolRequestParams, PingRequest};
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HashMap<HeaderName, HeaderValue> {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    fn call(name: &str) -> ClientJsonRpcMessage {
        let request = ClientRequest::from(CallToolRequest::new(CallToolRequestParams::new(
            name.to_owned(),
        )));
        ClientJsonRpcMessage::request(request, RequestId::Number(1))
    }

    fn record(
        recorder: &Recorder,
        message: &ClientJsonRpcMessage,
        session_id: Option<&Arc<str>>,
        auth_header: Option<&String>,
        headers: &HashMap<HeaderName, HeaderValue>,
    ) {
        if let Some(noted) = recorder.note(message, session_id, auth_header, headers) {
            recorder.keep(noted);
        }
    }

    #[test]
    fn the_recorder_keeps_the_connection_headers_not_the_per_message_ones() {
        let recorder = Recorder::default();
        let session: Arc<str> = Arc::from("s-1");
        record(
            &recorder,
            &call("echo"),
            Some(&session),
            None,
            &headers(&[
                ("mcp-protocol-version", "2025-11-25"),
                ("x-api-key", "k"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
                ("mcp-param-region", "eu"),
            ]),
        );
        let seen = recorder.current().expect("recorded");
        assert_eq!(seen.session_id.as_deref(), Some("s-1"));
        assert_eq!(
            seen.headers,
            headers(&[("mcp-protocol-version", "2025-11-25"), ("x-api-key", "k")])
        );
        // The same again keeps the same record; a new session replaces it.
        record(
            &recorder,
            &call("echo"),
            Some(&session),
            None,
            &seen.headers.clone(),
        );
        assert!(Arc::ptr_eq(&seen, &recorder.current().unwrap()));
        let renewed: Arc<str> = Arc::from("s-2");
        let ping = ClientJsonRpcMessage::request(
            ClientRequest::from(PingRequest::default()),
            RequestId::Number(2),
        );
        record(
            &recorder,
            &ping,
            Some(&renewed),
            None,
            &seen.headers.clone(),
        );
        assert_eq!(
            recorder.current().unwrap().session_id.as_deref(),
            Some("s-2")
        );
    }

    #[test]
    fn a_numeric_id_echoed_as_a_string_is_ours() {
        let ours = RequestId::Number(FIRST_ID + 7);
        assert!(same_id(&ours, &ours));
        let echoed = NumberOrString::String(format!("{}", FIRST_ID + 7).into());
        assert!(same_id(&echoed, &ours));
        assert!(!same_id(&NumberOrString::String("7".into()), &ours));
        assert!(!same_id(&RequestId::Number(7), &ours));
    }

    #[test]
    fn the_handshake_is_not_recorded() {
        let recorder = Recorder::default();
        let init = ClientJsonRpcMessage::request(
            ClientRequest::from(rmcp::model::InitializeRequest::new(
                super::super::client_info(),
            )),
            RequestId::Number(0),
        );
        record(&recorder, &init, None, None, &HashMap::new());
        assert!(recorder.current().is_none());
    }

    #[test]
    fn header_annotations_are_found_at_any_depth() {
        let plain = json!({"type": "object", "properties": {"text": {"type": "string"}}});
        let nested = json!({"type": "object", "properties": {"where": {"type": "object",
            "properties": {"region": {"type": "string", "x-mcp-header": "Region"}}}}});
        let in_list = json!({"anyOf": [{"x-mcp-header": "A"}]});
        assert!(!promotes_headers(plain.as_object().unwrap()));
        assert!(promotes_headers(nested.as_object().unwrap()));
        assert!(promotes_headers(in_list.as_object().unwrap()));
    }

    #[test]
    fn names_needing_base64_stay_on_rmcp() {
        assert!(plain_name_header("echo").is_some());
        assert!(plain_name_header("a.b-c_d").is_some());
        for name in [
            "",
            "two words",
            " lead",
            "trail ",
            "naïve",
            "=?base64?eA==?=",
        ] {
            assert!(plain_name_header(name).is_none(), "{name:?}");
        }
    }
}
