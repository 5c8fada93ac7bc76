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

mod recorder;
mod reply;
mod sep2243;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::{
    CancelledNotificationParam, ClientConfig, ClientJsonRpcMessage, ClientRequest, GetMeta,
    NumberOrString, ProgressToken, ProtocolVersion, RequestId, RequestMetaObject, ServerResult,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use sse_stream::Sse;
use tokio::sync::Semaphore;

use super::headers::UpstreamHttp;
use super::{Live, Upstream};
use crate::error::GatewayError;

use recorder::Negotiated;
pub(crate) use recorder::Recorder;
pub(crate) use sep2243::any_promotes_headers;
use sep2243::plain_name_header;

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

    /// POSTs `message` on the connection's session with `headers`.
    async fn post(
        &self,
        negotiated: &Negotiated,
        message: ClientJsonRpcMessage,
        headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<reqwest::Error>> {
        self.http
            .post_message_with_response_limits(
                self.uri.clone(),
                message,
                negotiated.session_id.clone(),
                negotiated.auth_header.clone(),
                headers,
                StreamableHttpResponseLimits::default(),
            )
            .await
    }

    /// Reopens a reply stream after `last_event` (`Last-Event-ID`).
    async fn resume(
        &self,
        negotiated: &Negotiated,
        last_event: String,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<reqwest::Error>>
    {
        self.http
            .get_stream_with_max_sse_event_size(
                self.uri.clone(),
                negotiated.session_id.clone(),
                Some(last_event),
                negotiated.auth_header.clone(),
                negotiated.headers.clone(),
                StreamableHttpResponseLimits::default().max_sse_event_size,
            )
            .await
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
        let response = direct.post(negotiated, message, headers).await;
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
}

/// The upstream answered 404 to a POST carrying its session.
struct Forgotten;
