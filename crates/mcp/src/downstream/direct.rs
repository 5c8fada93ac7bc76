//! A direct path for plain 2026-07-28 stateless requests on `/mcp`.
//!
//! rmcp serves every stateless request by starting a whole service loop for it: a peer with
//! its channels, a sink channel, a one-shot transport and three spawned tasks, all to carry
//! one request in and one answer out. Against a fast upstream that is most of the gateway's
//! own cost per call. A *plain* request — one JSON-RPC request for a list, a tool call, a
//! prompt or a resource read — needs none of that: this path checks it exactly as rmcp
//! would, runs the same [`GatewayHandler`](crate::handler::GatewayHandler) in the request's
//! own task (see [`Answer`]), and writes the answer as rmcp would have written it: a JSON body, or an SSE
//! stream when progress the client asked for comes first (the upstream's progress reaches
//! the reply through [`ProgressSink::Reply`]).
//!
//! Anything else — a session, another protocol era, a batch, a notification, an `Origin`
//! header, headers that do not match the body, a body rmcp would refuse — is handed back
//! untouched (its body already read, as bytes) and rmcp serves it, so every refusal keeps
//! rmcp's exact answer. The checks here only ever *accept* a request that rmcp's checks
//! accept too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::Request;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN};
use http::{HeaderMap, Method, StatusCode};
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, ErrorCode, ErrorData, GetExtensions, GetMeta,
    Implementation, InitializeRequestParams, ProgressNotification, ProgressNotificationParam,
    ProtocolVersion, RequestId, ServerJsonRpcMessage, ServerNotification, ServerResult,
};
use rmcp::service::{Peer, RequestContext, RoleServer, Service};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::streamable::HttpOptions;
use crate::gateway::Gateway;
use crate::hub::ProgressSink;

/// The protocol version this path serves; every other one goes to rmcp.
const VERSION: &str = "2026-07-28";

/// Serves plain stateless requests without rmcp's per-request service loop.
pub struct DirectPath {
    gateway: Arc<Gateway>,
    /// `server.allowed_hosts`, parsed as rmcp parses them; `None`: any host (none
    /// configured).
    allowed_hosts: Option<Vec<Authority>>,
    max_body_bytes: usize,
    /// Interval of SSE keep-alive comments on a streamed reply.
    keep_alive: std::time::Duration,
    /// The gateway's shutdown: cancels every call in flight.
    shutdown: CancellationToken,
    /// A peer that cannot reach the client: see [`DirectPath::detached_peer`].
    peer: OnceLock<Peer<RoleServer>>,
    /// Requests served here.
    served: AtomicU64,
}

/// A `Host` value or an allowed host, normalised as rmcp normalises them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authority {
    host: String,
    port: Option<u16>,
}

impl Authority {
    /// An allowed-hosts entry: an authority, or else (`::1`) a bare host for any port.
    fn allowed(value: &str) -> Option<Self> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        Self::parse(value).or_else(|| {
            Some(Self {
                host: value.trim_matches(['[', ']']).to_ascii_lowercase(),
                port: None,
            })
        })
    }

    fn parse(value: &str) -> Option<Self> {
        let authority = http::uri::Authority::try_from(value.trim()).ok()?;
        Some(Self {
            host: authority
                .host()
                .trim_matches(['[', ']'])
                .to_ascii_lowercase(),
            port: authority.port_u16(),
        })
    }

    /// An allowed entry without a port allows every port (rmcp's rule).
    fn allows(&self, host: &Authority) -> bool {
        self.host == host.host && self.port.is_none_or(|port| host.port == Some(port))
    }
}

/// What a plain request names: its method and, for the methods that carry one, the value
/// its `Mcp-Name` header must repeat.
fn plain_method(request: &ClientRequest) -> Option<(&'static str, Option<&str>)> {
    Some(match request {
        ClientRequest::CallToolRequest(r) => ("tools/call", Some(r.params.name.as_ref())),
        ClientRequest::ListToolsRequest(_) => ("tools/list", None),
        ClientRequest::GetPromptRequest(r) => ("prompts/get", Some(r.params.name.as_str())),
        ClientRequest::ListPromptsRequest(_) => ("prompts/list", None),
        ClientRequest::ReadResourceRequest(r) => ("resources/read", Some(r.params.uri.as_str())),
        ClientRequest::ListResourcesRequest(_) => ("resources/list", None),
        ClientRequest::ListResourceTemplatesRequest(_) => ("resources/templates/list", None),
        _ => return None,
    })
}

/// The one value of a singleton header, as text; `None` when absent, repeated or not text.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()
}

/// Whether `Accept` plainly lists both media types rmcp requires (any quality parameter:
/// let rmcp weigh it).
fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for value in headers.get_all(ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for item in value.split(',') {
            let (essence, params) = item.split_once(';').unwrap_or((item, ""));
            if !params.trim().is_empty() {
                return false;
            }
            let essence = essence.trim();
            json |= essence.eq_ignore_ascii_case("application/json");
            sse |= essence.eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && sse
}

fn is_json(headers: &HeaderMap) -> bool {
    single(headers, CONTENT_TYPE.as_str()).is_some_and(|value| {
        let essence = value.split_once(';').map_or(value, |(essence, _)| essence);
        essence.trim().eq_ignore_ascii_case("application/json")
    })
}

/// rmcp's HTTP status for a stateless answer (`jsonrpc_http_status` in its tower service,
/// which is private): protocol refusals are 400, an unknown method 404, the rest 200.
fn status_of(message: &ServerJsonRpcMessage) -> StatusCode {
    let ServerJsonRpcMessage::Error(error) = message else {
        return StatusCode::OK;
    };
    match error.error.code {
        ErrorCode::UNSUPPORTED_PROTOCOL_VERSION
        | ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
        | ErrorCode::HEADER_MISMATCH => StatusCode::BAD_REQUEST,
        ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

/// What a handler's future gives: its result, or the panic that ended it.
type Outcome = Result<Result<ServerResult, ErrorData>, Box<dyn std::any::Any + Send>>;

/// The handler's answer to a request on this path, polled by the request's own task (no
/// task of its own, no wake-up of another). Dropped before it is ready — the client went
/// away — it cancels the call and lets it finish on a task of its own, so the call still
/// ends the way a cancelled one does (recorded, the upstream told).
struct Answer {
    future: Option<futures::future::BoxFuture<'static, Outcome>>,
    cancel: CancellationToken,
}

impl Answer {
    fn new(
        future: impl Future<Output = Result<ServerResult, ErrorData>> + Send + 'static,
        cancel: CancellationToken,
    ) -> Self {
        // A panic in the handler answers this request with an internal error, as it does
        // on rmcp's path (where the handler runs on a task of its own).
        let future = std::panic::AssertUnwindSafe(future).catch_unwind().boxed();
        Self {
            future: Some(future),
            cancel,
        }
    }
}

impl Future for Answer {
    type Output = Outcome;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Outcome> {
        let Some(future) = self.future.as_mut() else {
            return std::task::Poll::Pending;
        };
        let outcome = std::task::ready!(future.as_mut().poll(cx));
        self.future = None;
        std::task::Poll::Ready(outcome)
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        let Some(future) = self.future.take() else {
            return;
        };
        self.cancel.cancel();
        // Outside a runtime (the process is ending) there is nothing left to finish it on.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(future);
        }
    }
}

/// Progress notifications a reply holds before the handler waits for the client to read.
const PROGRESS_BUFFER: usize = 64;

fn answer_message(id: RequestId, answer: Outcome) -> ServerJsonRpcMessage {
    match answer {
        Ok(Ok(result)) => ServerJsonRpcMessage::response(result, id),
        Ok(Err(error)) => ServerJsonRpcMessage::error(error, Some(id)),
        Err(_) => {
            tracing::error!("a stateless request's handler panicked");
            ServerJsonRpcMessage::error(
                ErrorData::internal_error("the gateway failed to answer this request", None),
                Some(id),
            )
        }
    }
}

fn event(message: &ServerJsonRpcMessage) -> Result<Event, serde_json::Error> {
    Ok(Event::default().data(serde_json::to_string(message)?))
}

fn progress_event(params: ProgressNotificationParam) -> Result<Event, serde_json::Error> {
    event(&ServerJsonRpcMessage::notification(
        ServerNotification::ProgressNotification(ProgressNotification::new(params)),
    ))
}

/// A streamed reply between its events: progress until the answer, then the answer.
struct Streaming {
    id: RequestId,
    /// `None` once answered.
    answer: Option<Answer>,
    progress: mpsc::Receiver<ProgressNotificationParam>,
}

type Events = Vec<Result<Event, serde_json::Error>>;

impl Streaming {
    async fn next(mut self) -> Option<(Events, Self)> {
        let mut answer = self.answer.take()?;
        tokio::select! {
            biased;
            Some(params) = self.progress.recv() => {
                self.answer = Some(answer);
                Some((vec![progress_event(params)], self))
            }
            result = &mut answer => {
                let mut events = Events::new();
                while let Ok(params) = self.progress.try_recv() {
                    events.push(progress_event(params));
                }
                events.push(event(&answer_message(self.id.clone(), result)));
                Some((events, self))
            }
        }
    }
}

fn json_response(status: StatusCode, message: &ServerJsonRpcMessage) -> Response {
    match serde_json::to_vec(message) {
        Ok(body) => (
            status,
            [(CONTENT_TYPE, "application/json")],
            Bytes::from(body),
        )
            .into_response(),
        Err(err) => {
            tracing::error!(%err, "could not serialise an answer");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

impl DirectPath {
    /// The direct path for `gateway`, with the transport's host allowlist, body limit and
    /// keep-alive; `shutdown` ends the calls in flight.
    pub fn new(gateway: Arc<Gateway>, options: &HttpOptions, shutdown: CancellationToken) -> Self {
        let allowed_hosts = &options.allowed_hosts;
        Self {
            gateway,
            // rmcp checks no host when none is configured (`disable_allowed_hosts`).
            allowed_hosts: (!allowed_hosts.is_empty()).then(|| {
                allowed_hosts
                    .iter()
                    .filter_map(|host| Authority::allowed(host))
                    .collect()
            }),
            max_body_bytes: options.max_body_bytes,
            keep_alive: options.keep_alive,
            shutdown,
            peer: OnceLock::new(),
            served: AtomicU64::new(0),
        }
    }

    /// How many requests this path has served (the rest of `/mcp` went to rmcp).
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Whether the request's headers let this path take it (before its body is read).
    fn takes(&self, request: &Request) -> bool {
        let headers = request.headers();
        request.method() == Method::POST
            && !headers.contains_key("mcp-session-id")
            && single(headers, "mcp-protocol-version") == Some(VERSION)
            && !headers.contains_key(ORIGIN)
            && single(headers, "mcp-method").is_some()
            && self.host_allowed(headers)
            && accepts_json_and_sse(headers)
            && is_json(headers)
            && single(headers, CONTENT_LENGTH.as_str())
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n <= self.max_body_bytes)
    }

    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(host) = single(headers, HOST.as_str()).and_then(Authority::parse) else {
            return false;
        };
        self.allowed_hosts
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|a| a.allows(&host)))
    }

    /// Serves `request` if it is a plain stateless request; otherwise gives it back (with
    /// its body, if read) for rmcp to serve.
    pub async fn serve(&self, request: Request) -> Result<Response, Request> {
        if !self.takes(&request) {
            return Err(request);
        }
        let (parts, body) = request.into_parts();
        let bytes = match axum::body::to_bytes(body, self.max_body_bytes).await {
            Ok(bytes) => bytes,
            // The body announced its length and did not keep to it, or the client went.
            Err(err) => {
                return Ok((
                    StatusCode::BAD_REQUEST,
                    format!("Bad Request: could not read the request body: {err}"),
                )
                    .into_response());
            }
        };
        let give_back = |parts: http::request::Parts, bytes: Bytes| {
            Request::from_parts(parts, Body::from(bytes))
        };
        let Ok(ClientJsonRpcMessage::Request(message)) =
            serde_json::from_slice::<ClientJsonRpcMessage>(&bytes)
        else {
            return Err(give_back(parts, bytes));
        };
        let headers = &parts.headers;
        let meta = message.request.get_meta();
        let plain = plain_method(&message.request).filter(|(method, name)| {
            single(headers, "mcp-method") == Some(*method)
                && match name {
                    // A Base64-wrapped name (`=?base64?…?=`) is rmcp's to decode.
                    Some(name) => {
                        !name.starts_with("=?") && single(headers, "mcp-name") == Some(*name)
                    }
                    None => true,
                }
        });
        let eligible = plain.is_some()
            && meta
                .protocol_version()
                .as_ref()
                .map(ProtocolVersion::as_str)
                == Some(VERSION)
            && meta
                .missing_required_keys(&ProtocolVersion::V_2026_07_28)
                .is_empty();
        if !eligible {
            return Err(give_back(parts, bytes));
        }
        drop(bytes);
        self.served.fetch_add(1, Ordering::Relaxed);
        let id = message.id;
        let mut request = message.request;
        let mut context = RequestContext::new(id.clone(), self.detached_peer());
        context.meta = std::mem::take(request.get_meta_mut());
        context.extensions = std::mem::take(request.extensions_mut());
        // The handler reads the caller (and the client's headers) from the request's parts,
        // where rmcp puts them too.
        context.extensions.insert(parts);
        // Progress the client asked for comes back through the reply (see `reply`).
        let progress = context.meta.get_progress_token().is_some().then(|| {
            let (sink, progress) = mpsc::channel(PROGRESS_BUFFER);
            context.extensions.insert(ProgressSink::Reply(sink));
            progress
        });
        let ct = self.shutdown.child_token();
        context.ct = ct.clone();
        let handler = self.gateway.handler();
        let answer = Answer::new(
            async move { handler.handle_request(request, context).await },
            ct,
        );
        Ok(self.reply(id, answer, progress).await)
    }

    /// The reply to a request on this path: its answer as a JSON body, as rmcp writes a
    /// stateless answer that comes first — or, once progress comes first, an SSE stream of
    /// the progress and then the answer, as rmcp streams one. The handler's progress is
    /// sent before it answers, so whatever is queued when the answer arrives goes out first.
    async fn reply(
        &self,
        id: RequestId,
        mut answer: Answer,
        progress: Option<mpsc::Receiver<ProgressNotificationParam>>,
    ) -> Response {
        let Some(mut progress) = progress else {
            let message = answer_message(id, answer.await);
            return json_response(status_of(&message), &message);
        };
        let first = tokio::select! {
            biased;
            Some(first) = progress.recv() => first,
            result = &mut answer => {
                let message = answer_message(id, result);
                return json_response(status_of(&message), &message);
            }
        };
        let state = Streaming {
            id,
            answer: Some(answer),
            progress,
        };
        let rest = futures::stream::unfold(state, Streaming::next).flat_map(futures::stream::iter);
        let events = futures::stream::once(async move { progress_event(first) }).chain(rest);
        Sse::new(events)
            .keep_alive(KeepAlive::new().interval(self.keep_alive))
            .into_response()
    }

    /// A peer for handlers of plain requests, shared by all of them. A plain request has no
    /// channel back to its client (its answer is the whole reply), so the peer is one whose
    /// service loop has ended: anything sent on it fails at once instead of waiting —
    /// what rmcp itself hands the handler of a `server/discover` probe. Its peer info is
    /// what rmcp builds for a stateless request (the version; capabilities come from `_meta`).
    fn detached_peer(&self) -> Peer<RoleServer> {
        self.peer
            .get_or_init(|| {
                let (ours, theirs) = tokio::io::duplex(64);
                drop(theirs);
                let info =
                    InitializeRequestParams::new(Default::default(), Implementation::default())
                        .with_protocol_version(ProtocolVersion::V_2026_07_28);
                let running = rmcp::service::serve_directly::<RoleServer, _, _, _, _>(
                    self.gateway.handler(),
                    ours,
                    Some(info),
                );
                running.peer().clone()
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::NumberOrString;

    #[test]
    fn the_version_is_rmcps() {
        assert_eq!(VERSION, ProtocolVersion::V_2026_07_28.as_str());
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn hosts_match_as_rmcp_matches_them() {
        let allowed = Authority::parse("localhost").unwrap();
        assert!(allowed.allows(&Authority::parse("LOCALHOST:8080").unwrap()));
        let pinned = Authority::parse("127.0.0.1:9000").unwrap();
        assert!(pinned.allows(&Authority::parse("127.0.0.1:9000").unwrap()));
        assert!(!pinned.allows(&Authority::parse("127.0.0.1:9001").unwrap()));
        assert!(!pinned.allows(&Authority::parse("127.0.0.1").unwrap()));
        let v6 = Authority::allowed("::1").unwrap();
        assert!(v6.allows(&Authority::parse("[::1]:80").unwrap()));
        assert!(Authority::allowed(" ").is_none());
        assert!(Authority::parse("not a host").is_none());
    }

    #[test]
    fn accept_must_plainly_list_both_types() {
        let both = headers(&[("accept", "application/json, text/event-stream")]);
        assert!(accepts_json_and_sse(&both));
        let split = headers(&[
            ("accept", "application/json"),
            ("accept", "text/event-stream"),
        ]);
        assert!(accepts_json_and_sse(&split));
        assert!(!accepts_json_and_sse(&headers(&[(
            "accept",
            "application/json"
        )])));
        // A weight is rmcp's to judge (q=0 excludes a type).
        let weighted = headers(&[("accept", "application/json;q=0, text/event-stream")]);
        assert!(!accepts_json_and_sse(&weighted));
        assert!(!accepts_json_and_sse(&HeaderMap::new()));
    }

    #[test]
    fn singleton_headers_refuse_repeats() {
        let twice = headers(&[("mcp-method", "tools/call"), ("mcp-method", "tools/call")]);
        assert_eq!(single(&twice, "mcp-method"), None);
        let once = headers(&[("mcp-method", "tools/call")]);
        assert_eq!(single(&once, "mcp-method"), Some("tools/call"));
    }

    #[test]
    fn content_type_parameters_are_ignored() {
        assert!(is_json(&headers(&[(
            "content-type",
            "application/json; charset=utf-8"
        )])));
        assert!(!is_json(&headers(&[("content-type", "text/plain")])));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn statuses_follow_rmcp() {
        let error = |code| {
            ServerJsonRpcMessage::error(
                ErrorData::new(code, "x", None),
                Some(NumberOrString::Number(1)),
            )
        };
        assert_eq!(
            status_of(&error(ErrorCode::METHOD_NOT_FOUND)),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status_of(&error(ErrorCode::HEADER_MISMATCH)),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(status_of(&error(ErrorCode::INVALID_PARAMS)), StatusCode::OK);
        let ok = ServerJsonRpcMessage::response(
            rmcp::model::ServerResult::empty(()),
            NumberOrString::Number(1),
        );
        assert_eq!(status_of(&ok), StatusCode::OK);
    }
}
