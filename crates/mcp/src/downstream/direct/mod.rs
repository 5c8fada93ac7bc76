//! A direct path for plain 2026-07-28 stateless requests on `/mcp`.
//!
//! rmcp serves every stateless request by starting a whole service loop for it: a peer with
//! its channels, a sink channel, a one-shot transport and three spawned tasks, all to carry
//! one request in and one answer out. Against a fast upstream that is most of the gateway's
//! own cost per call. A *plain* request — one JSON-RPC request for a list, a tool call, a
//! prompt or a resource read — needs none of that: this path checks it exactly as rmcp
//! would (`mirror.rs`), runs the same [`GatewayHandler`](crate::handler::GatewayHandler) in
//! the request's own task (`answer.rs`), and writes the answer as rmcp would have written
//! it: a JSON body, or an SSE stream when progress the client asked for comes first (the
//! upstream's progress reaches the reply through [`ProgressSink::Reply`]).
//!
//! Anything else — a session, another protocol era, a batch, a notification, an `Origin`
//! header, headers that do not match the body, a body rmcp would refuse — is handed back
//! untouched (its body already read, as bytes) and rmcp serves it, so every refusal keeps
//! rmcp's exact answer. The checks here only ever *accept* a request that rmcp's checks
//! accept too.

mod answer;
mod mirror;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::Request;
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http::header::{CONTENT_LENGTH, HOST, ORIGIN};
use http::{HeaderMap, Method, StatusCode};
use rmcp::model::{
    ClientJsonRpcMessage, GetExtensions, GetMeta, Implementation, InitializeRequestParams,
    ProgressNotificationParam, ProtocolVersion, RequestId,
};
use rmcp::service::{Peer, RequestContext, RoleServer, Service};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::answer::{
    Answer, PROGRESS_BUFFER, Streaming, answer_message, json_response, progress_event,
};
use self::mirror::{
    Authority, VERSION, accepts_json_and_sse, is_json, plain_method, single, status_of,
};
use super::streamable::HttpOptions;
use crate::caller::Caller;
use crate::gateway::Gateway;
use crate::hub::ProgressSink;

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
        let tenant = parts
            .extensions
            .get::<Arc<Caller>>()
            .map(|caller| caller.tenant().clone());
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
            tenant,
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
        let state = Streaming::new(id, answer, progress);
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
