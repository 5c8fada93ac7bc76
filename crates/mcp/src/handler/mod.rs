//! The MCP server handler clients talk to.
//!
//! rmcp instantiates one [`GatewayHandler`] per downstream session (legacy) or per request
//! (2026-07-28 stateless). It resolves every name through the current catalog snapshot (or
//! the session's own view), forwards to the owning upstream, and carries what MCP can say in
//! the middle of a call: progress, cancellation, and `input_required` rounds in both
//! directions (see [`crate::mrtr`] and [`crate::bridge`]).
//!
//! This module holds the handler's state and routing helpers; `server.rs` implements the MCP
//! methods on top of them.

mod server;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rmcp::ErrorData;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientRequest, GetPromptRequest,
    GetPromptRequestParams, InputResponses, PaginatedRequestParams, ProtocolVersion,
    ReadResourceRequest, ReadResourceRequestParams, RequestMetaObject, ResultType, ServerResult,
};
use rmcp::service::{Peer, RequestContext, RoleServer};
use switchboard_domain::names::recorded_name;
use switchboard_domain::tenancy::{ItemKind, Reason, TenantId};
use switchboard_domain::{Isolation, ListKind};
use tracing::Instrument;

use crate::bridge::{self, Outcome};
use crate::caller::{CallRecord, Caller, ClientFacts, DecisionRecord, arguments_digest, json_size};
use crate::catalog::{Catalog, Listing, Route};
use crate::downstream::sessions::HoldsState;
use crate::error::GatewayError;
use crate::gateway::{Gateway, InFlight};
use crate::hub::{ClientId, Hub};
use crate::mrtr;
use crate::session::SessionLinks;
use crate::upstream::Upstream;

/// Deregisters the downstream client when rmcp drops its handler.
struct ClientSlot {
    id: ClientId,
    hub: Arc<Hub>,
    /// Whether the hub knows this client (a session or a resource subscriber). Stateless
    /// requests never register, so dropping their handler costs nothing.
    registered: AtomicBool,
    /// The session's own upstream connections (legacy sessions, per-session upstreams).
    links: tokio::sync::OnceCell<Option<Arc<SessionLinks>>>,
    /// Whether it subscribed to a resource through the hub (never reset: a session that did
    /// is simply never parked).
    subscribed: AtomicBool,
}

impl ClientSlot {
    fn register(&self) {
        self.registered.store(true, Ordering::Relaxed);
    }
}

/// A session whose handler owns upstream connections or subscriptions is never parked: a
/// replayed handshake would not bring them back.
impl HoldsState for ClientSlot {
    fn holds_state(&self) -> bool {
        matches!(self.links.get(), Some(Some(_))) || self.subscribed.load(Ordering::Relaxed)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if *self.registered.get_mut() {
            self.hub.remove_client(self.id);
        }
    }
}

/// The MCP server handler for one downstream session or stateless request.
#[derive(Clone)]
pub struct GatewayHandler {
    gateway: Arc<Gateway>,
    client: Arc<ClientSlot>,
    /// The caller of a transport without HTTP requests (the local stdio bridge); HTTP
    /// transports carry the caller in every request's extensions instead.
    fixed: Option<Arc<Caller>>,
}

/// The caller's `_meta` minus what belongs to the downstream hop (protocol metadata and the
/// progress token, which rmcp replaces with its own per upstream request).
fn forwarded_meta(meta: &RequestMetaObject) -> Option<RequestMetaObject> {
    let mut forwarded = meta.clone();
    forwarded
        .0
        .0
        .retain(|key, _| !key.starts_with("io.modelcontextprotocol/") && key != "progressToken");
    (!forwarded.0.0.is_empty()).then_some(forwarded)
}

/// True when the request comes from a legacy (session) client rather than a stateless
/// 2026-07-28 request, which carries its protocol version in `_meta`.
fn is_legacy(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.meta.protocol_version().is_none()
}

/// A legacy upstream's result has no `resultType`; 2026-07-28 clients require it (rmcp strips
/// it again for legacy clients). An absent value means "complete" by the spec.
fn mark_complete(result_type: &mut Option<ResultType>) {
    if result_type.is_none() {
        *result_type = Some(ResultType::COMPLETE);
    }
}

fn unexpected(server: &str, method: &'static str) -> ErrorData {
    GatewayError::UnexpectedResult {
        server: server.to_owned(),
        method,
    }
    .into()
}

/// An allowed call on its way upstream: what [`GatewayHandler::finish`] records.
pub(crate) struct Admitted {
    /// The gateway's span of the call (span export on, call sampled).
    span: Option<crate::span::CallSpan>,
    kind: ItemKind,
    reason: Reason,
    arguments_digest: Option<String>,
    arguments_size: u64,
    client: ClientFacts,
    started: Instant,
}

/// What the call record needs from an answer.
pub(crate) trait Answered {
    /// The result's size, serialized as JSON.
    fn size(&self) -> u64;
    /// Whether a tool reported a failure (`isError`).
    fn tool_error(&self) -> bool {
        false
    }
}

impl Answered for rmcp::model::CallToolResponse {
    fn size(&self) -> u64 {
        use rmcp::model::CallToolResponse as R;
        match self {
            R::Complete(r) => json_size(r),
            R::InputRequired(r) => json_size(r),
            R::Task(r) => json_size(r),
            _ => 0,
        }
    }

    fn tool_error(&self) -> bool {
        matches!(self, rmcp::model::CallToolResponse::Complete(r) if r.is_error == Some(true))
    }
}

impl Answered for rmcp::model::GetPromptResponse {
    fn size(&self) -> u64 {
        use rmcp::model::GetPromptResponse as R;
        match self {
            R::Complete(r) => json_size(r),
            R::InputRequired(r) => json_size(r),
            _ => 0,
        }
    }
}

impl Answered for rmcp::model::ReadResourceResponse {
    fn size(&self) -> u64 {
        use rmcp::model::ReadResourceResponse as R;
        match self {
            R::Complete(r) => json_size(r),
            R::InputRequired(r) => json_size(r),
            _ => 0,
        }
    }
}

impl GatewayHandler {
    /// A handler for one new downstream session or stateless request.
    pub(crate) fn new(gateway: Arc<Gateway>, fixed: Option<Arc<Caller>>) -> Self {
        let client = Arc::new(ClientSlot {
            id: gateway.hub.next_client_id(),
            hub: gateway.hub.clone(),
            registered: AtomicBool::new(false),
            links: tokio::sync::OnceCell::new(),
            subscribed: AtomicBool::new(false),
        });
        Self {
            gateway,
            client,
            fixed,
        }
    }

    /// The authenticated caller of a message: put into the HTTP request's extensions by the
    /// server's authentication layer (rmcp passes them on), or the handler's fixed caller.
    /// Neither means the message did not pass authentication: refused (fail closed).
    fn caller(&self, extensions: &rmcp::model::Extensions) -> Result<Arc<Caller>, ErrorData> {
        extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Arc<Caller>>())
            .or(self.fixed.as_ref())
            .cloned()
            .ok_or_else(|| GatewayError::Unauthenticated.into())
    }

    /// Whether the caller may see the item behind `route` in a listing.
    fn visible(&self, caller: &Caller, route: &Route, kind: ItemKind) -> bool {
        caller
            .decide(self.upstream(route).def(), kind, &route.name, None)
            .allowed
    }

    /// Decides a call and records the decision; a denial is answered with `unknown`, exactly
    /// like a name that does not exist. An allowed call gets the [`Admitted`] that
    /// [`GatewayHandler::finish`] records once its answer is known.
    fn authorize(
        &self,
        caller: &Caller,
        route: &Route,
        kind: ItemKind,
        arguments: Option<&serde_json::Map<String, serde_json::Value>>,
        context: &RequestContext<RoleServer>,
        unknown: impl FnOnce() -> GatewayError,
    ) -> Result<Admitted, ErrorData> {
        let upstream = self.upstream(route);
        let decision = caller.decide(upstream.def(), kind, &route.name, arguments);
        let client = ClientFacts::of(&context.extensions);
        self.gateway.decisions().record(&DecisionRecord {
            principal: &caller.principal,
            kind,
            server: upstream.name(),
            name: recorded_name(&route.name),
            decision: &decision,
            client: &client,
        });
        if decision.allowed {
            let (arguments_digest, arguments_size) = arguments
                .map(arguments_digest)
                .map_or((None, 0), |(digest, size)| (Some(digest), size));
            let span = self.gateway.span_ratio().and_then(|ratio| {
                let headers = context
                    .extensions
                    .get::<http::request::Parts>()
                    .map(|p| &p.headers);
                crate::span::CallSpan::start(headers, ratio)
            });
            Ok(Admitted {
                span,
                kind,
                reason: decision.reason,
                arguments_digest,
                arguments_size,
                client,
                started: Instant::now(),
            })
        } else {
            Err(unknown().into())
        }
    }

    /// Records an allowed call's outcome and passes its result on. `reached` says whether
    /// the call went upstream (a gate's refusal did not).
    fn finish<T: Answered>(
        &self,
        caller: &Caller,
        route: &Route,
        admitted: Admitted,
        result: Result<T, ErrorData>,
        reached: bool,
    ) -> Result<T, ErrorData> {
        let answer = result.as_ref().ok();
        self.gateway.decisions().completed(&CallRecord {
            principal: &caller.principal,
            kind: admitted.kind,
            server: self.upstream(route).name(),
            name: recorded_name(&route.name),
            reason: &admitted.reason,
            arguments_digest: admitted.arguments_digest,
            error: result.as_ref().err(),
            tool_error: answer.is_some_and(Answered::tool_error),
            latency: admitted.started.elapsed(),
            client: &admitted.client,
            reached,
            bytes_in: admitted.arguments_size,
            bytes_out: answer.map_or(0, Answered::size),
            span: admitted.span.as_ref(),
        });
        result
    }

    /// The request's context with the gateway's span of the call as the upstream's trace
    /// parent, when it has one.
    fn traced(
        mut context: RequestContext<RoleServer>,
        admitted: &Admitted,
    ) -> RequestContext<RoleServer> {
        if let Some(span) = &admitted.span {
            context
                .extensions
                .insert(Arc::new(crate::upstream::headers::TraceContext::for_span(
                    span,
                )));
        }
        context
    }

    fn upstream<'r>(&self, route: &'r Route) -> &'r Arc<Upstream> {
        &route.server
    }

    /// The connection a request for `route` goes to: the shared upstream, or for a
    /// definition with placeholders the caller's own connection to it.
    async fn target(&self, caller: &Caller, route: &Route) -> Result<Arc<Upstream>, ErrorData> {
        let upstream = self.upstream(route);
        if !upstream.def().own_connection_for(caller.tenant()) {
            return Ok(upstream.clone());
        }
        self.gateway
            .per_tenant
            .connection(upstream, caller)
            .await
            .map_err(ErrorData::from)
    }

    /// Explains an unknown tool name that would belong to a per-tenant upstream the caller
    /// may use once its secret is set; otherwise the plain "unknown" error.
    async fn unknown_tool(&self, caller: &Caller, name: &str) -> ErrorData {
        if self.gateway.per_tenant.serves(caller.tenant())
            && let Some(err) = self
                .gateway
                .per_tenant
                .explain_unknown(&self.gateway.upstreams, caller, name, |upstream, tool| {
                    caller
                        .decide(upstream.def(), ItemKind::Tool, tool, None)
                        .allowed
                })
                .await
        {
            return err.into();
        }
        GatewayError::UnknownTool(name.to_owned()).into()
    }

    /// The session's own upstream connections, opened on first use, to the per-session
    /// upstreams its tenant may use. Only legacy sessions get them: a 2026-07-28 request is
    /// stateless and has no session to own a connection.
    async fn links(
        &self,
        peer: &Peer<RoleServer>,
        legacy: bool,
        tenant: &TenantId,
    ) -> Option<Arc<SessionLinks>> {
        if !self.gateway.has_per_session || !legacy || peer.peer_info().is_none() {
            return None;
        }
        let http = self.gateway.http.as_ref()?;
        self.client
            .links
            .get_or_init(|| async {
                let links = SessionLinks::open(
                    &self.gateway.upstreams,
                    tenant,
                    peer,
                    http,
                    &self.gateway.session_connections,
                )
                .await;
                (!links.is_empty()).then(|| Arc::new(links))
            })
            .await
            .clone()
    }

    async fn links_for(&self, ctx: &RequestContext<RoleServer>) -> Option<Arc<SessionLinks>> {
        let caller = self.caller(&ctx.extensions).ok()?;
        self.links(&ctx.peer, is_legacy(ctx), caller.tenant()).await
    }

    /// Runs a 2026-07-28 `tools/call` through the bridge when it must (a retry carrying one of
    /// the bridge's `requestState`s, or a per-session upstream and a client that can answer
    /// server-to-client requests); `None` means forward it normally.
    async fn bridge_call(
        &self,
        caller: &Caller,
        route: &Route,
        request: &mut CallToolRequestParams,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<Option<Outcome>, ErrorData> {
        let owner = bridge::CallOwner {
            route: route.clone(),
            caller: caller.principal.session_owner(),
        };
        if let Some(state) = request
            .request_state
            .as_deref()
            .filter(|s| s.starts_with(bridge::STATE_PREFIX))
        {
            let responses = request.input_responses.take().unwrap_or_default();
            return self
                .gateway
                .bridges
                .resume(&owner, state, responses)
                .await
                .map(Some);
        }
        let upstream = self.upstream(route);
        let capabilities = ctx.client_capabilities();
        let Some(http) = self.gateway.http.clone() else {
            return Ok(None);
        };
        // A 2026-07-28 upstream asks through input_required itself (passed through); only a
        // legacy one needs the bridge.
        let upstream_is_legacy = upstream
            .status()
            .protocol_version
            .as_deref()
            .is_some_and(|v| v < ProtocolVersion::V_2026_07_28.as_str());
        if upstream.def().isolation != Isolation::PerSession
            || !upstream_is_legacy
            || !bridge::client_can_answer(capabilities.as_ref())
        {
            return Ok(None);
        }
        self.gateway.in_flight.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight(&self.gateway.in_flight);
        let upstream_request = ClientRequest::from(CallToolRequest::new(request.clone()));
        self.gateway
            .bridges
            .start(
                owner,
                upstream.clone(),
                upstream_request,
                capabilities.unwrap_or_default(),
                http,
                self.gateway.session_connections.clone(),
            )
            .await
            .map(Some)
    }

    /// The catalog this request sees: the shared one, or with the caller's own connections
    /// (a session's, a tenant's to upstreams with placeholders) in place of shared ones.
    async fn view(&self, ctx: &RequestContext<RoleServer>) -> Arc<Catalog> {
        let shared = self.gateway.catalog.load_full();
        let links = self.links_for(ctx).await;
        if let Ok(caller) = self.caller(&ctx.extensions)
            && self.gateway.per_tenant.serves(caller.tenant())
        {
            let config = &self.gateway.config;
            return self
                .gateway
                .per_tenant
                .view(
                    &self.gateway.upstreams,
                    &shared,
                    &caller,
                    links.as_deref(),
                    |catalog| catalog.with_info(config),
                )
                .await;
        }
        match links {
            Some(links) => links.catalog(&self.gateway.upstreams, &shared),
            None => shared,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn page<T: Clone + PartialEq>(
        &self,
        caller: &Caller,
        listing: &Listing<T>,
        kind: ListKind,
        item: ItemKind,
        request: Option<&PaginatedRequestParams>,
        key: impl Fn(&T) -> &str,
    ) -> Result<(Vec<T>, Option<String>), ErrorData> {
        let cursor = request.and_then(|r| r.cursor.as_deref());
        listing
            .page(kind, cursor, self.gateway.config.page_size, key, |route| {
                self.visible(caller, route, item)
            })
            .map_err(|e| GatewayError::from(e).into())
    }

    async fn forward(
        &self,
        route: &Route,
        request: ClientRequest,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        let upstream = self.upstream(route);
        self.gateway.in_flight.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight(&self.gateway.in_flight);
        let span = tracing::debug_span!("forward", server = upstream.name(), name = %route.name);
        if upstream.def().has_own_connections()
            && let caller = self.caller(&ctx.extensions)?
            && upstream.def().own_connection_for(caller.tenant())
        {
            let own = self.target(&caller, route).await?;
            return own
                .forward(request, ctx)
                .instrument(span)
                .await
                .map_err(ErrorData::from);
        }
        let links = self.links_for(ctx).await;
        let result = match links.as_ref().and_then(|l| l.link(route.upstream)) {
            Some(link) => {
                upstream
                    .forward_via(&link.live, request, ctx)
                    .instrument(span)
                    .await
            }
            None => upstream.forward(request, ctx).instrument(span).await,
        };
        result.map_err(ErrorData::from)
    }

    /// Forwards `params`, answering `input_required` rounds itself for a legacy client (which
    /// cannot read them); returns the upstream's last result, which for a 2026-07-28 client
    /// may be an `input_required` result to pass on.
    async fn forward_rounds<P: Retryable>(
        &self,
        route: &Route,
        mut params: P,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        let legacy = is_legacy(ctx);
        for _ in 0..mrtr::MAX_ROUNDS {
            match self
                .forward(route, params.clone().into_request(), ctx)
                .await?
            {
                ServerResult::InputRequiredResult(r) if legacy => {
                    let (responses, state) = mrtr::fulfil(&ctx.peer, r).await?;
                    params.answer(responses, state);
                }
                other => return Ok(other),
            }
        }
        Err(mrtr::too_many_rounds(self.upstream(route).name()))
    }
}

/// Request parameters that can be retried with `input_required` answers.
trait Retryable: Clone {
    fn into_request(self) -> ClientRequest;
    fn answer(&mut self, responses: Option<InputResponses>, state: Option<String>);
}

macro_rules! retryable {
    ($params:ty, $request:ident) => {
        impl Retryable for $params {
            fn into_request(self) -> ClientRequest {
                ClientRequest::from($request::new(self))
            }
            fn answer(&mut self, responses: Option<InputResponses>, state: Option<String>) {
                self.input_responses = responses;
                self.request_state = state;
            }
        }
    };
}

retryable!(CallToolRequestParams, CallToolRequest);
retryable!(GetPromptRequestParams, GetPromptRequest);
retryable!(ReadResourceRequestParams, ReadResourceRequest);
