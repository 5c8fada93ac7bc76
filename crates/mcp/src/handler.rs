//! The MCP server handler clients talk to.
//!
//! rmcp instantiates one [`GatewayHandler`] per downstream session (legacy) or per request
//! (2026-07-28 stateless). It resolves every name through the current catalog snapshot (or
//! the session's own view), forwards to the owning upstream, and carries what MCP can say in
//! the middle of a call: progress, cancellation, and `input_required` rounds in both
//! directions (see [`crate::mrtr`] and [`crate::bridge`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rmcp::ErrorData;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientRequest, CompleteRequest,
    CompleteRequestParams, CompleteResult, GetPromptRequest, GetPromptRequestParams,
    GetPromptResponse, Implementation, InputResponses, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProtocolVersion, ReadResourceRequest, ReadResourceRequestParams, ReadResourceResponse,
    Reference, RequestMetaObject, ResourceContents, ResultType, ServerConfig, ServerResult,
    SetLevelRequest, SetLevelRequestParams, SubscribeRequest, SubscribeRequestParams,
    SubscriptionFilter, UnsubscribeRequest, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, Peer, RequestContext, RoleServer, SubscriptionContext};
use switchboard_domain::{Isolation, ListKind, exposed_uri};
use tracing::Instrument;

use crate::bridge::{self, Outcome};
use crate::catalog::{Catalog, Listing, Route};
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
    /// The session's own upstream connections (legacy sessions, per-session upstreams).
    links: tokio::sync::OnceCell<Option<Arc<SessionLinks>>>,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.hub.remove_client(self.id);
    }
}

/// The MCP server handler for one downstream session or stateless request.
#[derive(Clone)]
pub struct GatewayHandler {
    gateway: Arc<Gateway>,
    client: Arc<ClientSlot>,
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

impl GatewayHandler {
    /// A handler for one new downstream session or stateless request.
    pub(crate) fn new(gateway: Arc<Gateway>) -> Self {
        let client = Arc::new(ClientSlot {
            id: gateway.hub.next_client_id(),
            hub: gateway.hub.clone(),
            links: tokio::sync::OnceCell::new(),
        });
        Self { gateway, client }
    }

    fn upstream(&self, route: &Route) -> &Arc<Upstream> {
        &self.gateway.upstreams[route.upstream]
    }

    /// The session's own upstream connections, opened on first use. Only legacy sessions
    /// get them: a 2026-07-28 request is stateless and has no session to own a connection.
    async fn links(&self, peer: &Peer<RoleServer>, legacy: bool) -> Option<Arc<SessionLinks>> {
        if !self.gateway.has_per_session || !legacy || peer.peer_info().is_none() {
            return None;
        }
        let http = self.gateway.http.as_ref()?;
        self.client
            .links
            .get_or_init(|| async {
                let links = SessionLinks::open(&self.gateway.upstreams, peer, http).await;
                (!links.is_empty()).then(|| Arc::new(links))
            })
            .await
            .clone()
    }

    async fn links_for(&self, ctx: &RequestContext<RoleServer>) -> Option<Arc<SessionLinks>> {
        self.links(&ctx.peer, is_legacy(ctx)).await
    }

    /// Runs a 2026-07-28 `tools/call` through the bridge when it must (a retry carrying one of
    /// the bridge's `requestState`s, or a per-session upstream and a client that can answer
    /// server-to-client requests); `None` means forward it normally.
    async fn bridge_call(
        &self,
        route: &Route,
        request: &mut CallToolRequestParams,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<Option<Outcome>, ErrorData> {
        if let Some(state) = request
            .request_state
            .as_deref()
            .filter(|s| s.starts_with(bridge::STATE_PREFIX))
        {
            let responses = request.input_responses.take().unwrap_or_default();
            return self
                .gateway
                .bridges
                .resume(state, responses)
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
                upstream.clone(),
                upstream_request,
                capabilities.unwrap_or_default(),
                http,
            )
            .await
            .map(Some)
    }

    /// The catalog this request sees: the shared one, or the session's own view.
    async fn view(&self, ctx: &RequestContext<RoleServer>) -> Arc<Catalog> {
        let shared = self.gateway.catalog.load_full();
        match self.links_for(ctx).await {
            Some(links) => links.catalog(&self.gateway.upstreams, &shared),
            None => shared,
        }
    }

    fn page<T: Clone + PartialEq>(
        &self,
        listing: &Listing<T>,
        kind: ListKind,
        request: Option<&PaginatedRequestParams>,
        key: impl Fn(&T) -> &str,
    ) -> Result<(Vec<T>, Option<String>), ErrorData> {
        let cursor = request.and_then(|r| r.cursor.as_deref());
        listing
            .page(kind, cursor, self.gateway.config.page_size, key)
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

impl ServerHandler for GatewayHandler {
    fn get_info(&self) -> ServerConfig {
        let catalog = self.gateway.catalog.load();
        let mut info = ServerConfig::new(catalog.capabilities.clone());
        let mut implementation = Implementation::default();
        implementation.name = "switchboard".into();
        implementation.title = Some("Switchboard MCP gateway".into());
        implementation.version = env!("CARGO_PKG_VERSION").into();
        info.server_info = implementation;
        info.instructions = self.gateway.config.instructions.clone();
        info
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        // Open the session's own upstream connections now, so its first list sees them.
        let _ = self.links(&context.peer, true).await;
        self.gateway.hub.add_session(self.client.id, context.peer);
    }

    async fn on_roots_list_changed(&self, _context: NotificationContext<RoleServer>) {
        if let Some(Some(links)) = self.client.links.get() {
            links.notify_roots_changed().await;
        }
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let catalog = self.view(&context).await;
        let (tools, next) = self.page(&catalog.tools, ListKind::Tools, request.as_ref(), |t| {
            &t.name
        })?;
        let mut result = ListToolsResult::with_all_items(tools);
        result.next_cursor = next;
        Ok(result)
    }

    async fn call_tool(
        &self,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let route = self
            .view(&context)
            .await
            .tools
            .route(&request.name)
            .cloned()
            .ok_or_else(|| GatewayError::UnknownTool(request.name.to_string()))?;
        request.name = route.name.to_string().into();
        request.meta = forwarded_meta(&context.meta);
        let legacy = is_legacy(&context);
        if !legacy && let Some(outcome) = self.bridge_call(&route, &mut request, &context).await? {
            return match outcome {
                Outcome::InputRequired(r) => Ok(CallToolResponse::InputRequired(r)),
                Outcome::Done(result) => match *result {
                    ServerResult::CallToolResult(mut r) => {
                        mark_complete(&mut r.result_type);
                        Ok(CallToolResponse::Complete(r))
                    }
                    _ => Err(unexpected(self.upstream(&route).name(), "tools/call")),
                },
            };
        }
        match self.forward_rounds(&route, request, &context).await? {
            ServerResult::CallToolResult(mut r) => {
                mark_complete(&mut r.result_type);
                Ok(CallToolResponse::Complete(r))
            }
            ServerResult::InputRequiredResult(r) => Ok(CallToolResponse::InputRequired(r)),
            ServerResult::CreateTaskResult(r) => Ok(CallToolResponse::Task(r)),
            _ => Err(unexpected(self.upstream(&route).name(), "tools/call")),
        }
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let catalog = self.view(&context).await;
        let (prompts, next) =
            self.page(&catalog.prompts, ListKind::Prompts, request.as_ref(), |p| {
                &p.name
            })?;
        let mut result = ListPromptsResult::with_all_items(prompts);
        result.next_cursor = next;
        Ok(result)
    }

    async fn get_prompt(
        &self,
        mut request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let route = self
            .view(&context)
            .await
            .prompts
            .route(&request.name)
            .cloned()
            .ok_or_else(|| GatewayError::UnknownPrompt(request.name.clone()))?;
        request.name = route.name.to_string();
        request.meta = forwarded_meta(&context.meta);
        match self.forward_rounds(&route, request, &context).await? {
            ServerResult::GetPromptResult(mut r) => {
                mark_complete(&mut r.result_type);
                Ok(GetPromptResponse::Complete(r))
            }
            ServerResult::InputRequiredResult(r) => Ok(GetPromptResponse::InputRequired(r)),
            _ => Err(unexpected(self.upstream(&route).name(), "prompts/get")),
        }
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let catalog = self.view(&context).await;
        let (resources, next) = self.page(
            &catalog.resources,
            ListKind::Resources,
            request.as_ref(),
            |r| &r.uri,
        )?;
        let mut result = ListResourcesResult::with_all_items(resources);
        result.next_cursor = next;
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let catalog = self.view(&context).await;
        let (templates, next) = self.page(
            &catalog.resource_templates,
            ListKind::ResourceTemplates,
            request.as_ref(),
            |t| &t.uri_template,
        )?;
        let mut result = ListResourceTemplatesResult::with_all_items(templates);
        result.next_cursor = next;
        Ok(result)
    }

    async fn read_resource(
        &self,
        mut request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let route = self
            .view(&context)
            .await
            .route_uri(&request.uri)
            .ok_or_else(|| GatewayError::UnknownResource(request.uri.clone()))?;
        request.uri = route.name.to_string();
        request.meta = forwarded_meta(&context.meta);
        let prefix = self.upstream(&route).def().prefix.clone();
        match self.forward_rounds(&route, request, &context).await? {
            ServerResult::ReadResourceResult(mut r) => {
                mark_complete(&mut r.result_type);
                for contents in r.contents.iter_mut() {
                    match contents {
                        ResourceContents::TextResourceContents { uri, .. }
                        | ResourceContents::BlobResourceContents { uri, .. } => {
                            *uri = exposed_uri(&prefix, uri);
                        }
                        _ => {}
                    }
                }
                Ok(ReadResourceResponse::Complete(r))
            }
            ServerResult::InputRequiredResult(r) => Ok(ReadResourceResponse::InputRequired(r)),
            _ => Err(unexpected(self.upstream(&route).name(), "resources/read")),
        }
    }

    async fn complete(
        &self,
        mut request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let catalog = self.view(&context).await;
        let route = match &mut request.r#ref {
            Reference::Prompt(prompt) => {
                let route = catalog
                    .prompts
                    .route(&prompt.name)
                    .cloned()
                    .ok_or_else(|| GatewayError::UnknownPrompt(prompt.name.clone()))?;
                prompt.name = route.name.to_string();
                route
            }
            Reference::Resource(resource) => {
                let route = catalog
                    .route_template(&resource.uri)
                    .ok_or_else(|| GatewayError::UnknownResource(resource.uri.clone()))?;
                resource.uri = route.name.to_string();
                route
            }
            _ => {
                return Err(ErrorData::invalid_params(
                    "unsupported completion reference type; use ref/prompt or ref/resource",
                    None,
                ));
            }
        };
        if self
            .upstream(&route)
            .status()
            .capabilities
            .as_ref()
            .is_none_or(|c| c.completions.is_none())
        {
            // The upstream offers no completions: an empty answer, as the spec allows.
            return Ok(CompleteResult::default());
        }
        request.meta = forwarded_meta(&context.meta);
        let upstream_request = ClientRequest::from(CompleteRequest::new(request));
        match self.forward(&route, upstream_request, &context).await? {
            ServerResult::CompleteResult(mut r) => {
                mark_complete(&mut r.result_type);
                Ok(r)
            }
            _ => Err(unexpected(
                self.upstream(&route).name(),
                "completion/complete",
            )),
        }
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // Shared connections: the hub filters what it forwards to this session.
        self.gateway
            .hub
            .set_log_level(self.client.id, request.level);
        // The session's own connections: the upstream itself filters.
        if let Some(links) = self.links_for(&context).await {
            for (index, link) in links.iter() {
                let upstream = &self.gateway.upstreams[index];
                let set = ClientRequest::from(SetLevelRequest::new(request.clone()));
                if let Err(err) = upstream.request_on(&link.live, set).await {
                    tracing::debug!(server = upstream.name(), %err, "upstream refused logging/setLevel");
                }
            }
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let route = self
            .view(&context)
            .await
            .route_uri(&request.uri)
            .ok_or_else(|| GatewayError::UnknownResource(request.uri.clone()))?;
        let mut params = request.clone();
        params.uri = route.name.to_string();
        let upstream = self.upstream(&route);
        let upstream_request = ClientRequest::from(SubscribeRequest::new(params));
        // A session-owned connection delivers its updates straight to this session.
        if let Some(links) = self.links_for(&context).await
            && let Some(link) = links.link(route.upstream)
        {
            return upstream
                .request_on(&link.live, upstream_request)
                .await
                .map(drop)
                .map_err(ErrorData::from);
        }
        // Shared connection: subscribe upstream once, fan updates out through the hub.
        if self
            .gateway
            .hub
            .subscribe_resource(self.client.id, &request.uri)
            && let Err(err) = upstream.request_simple(upstream_request).await
        {
            self.gateway
                .hub
                .unsubscribe_resource(self.client.id, &request.uri);
            return Err(err.into());
        }
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let Some(route) = self.view(&context).await.route_uri(&request.uri) else {
            return Ok(());
        };
        let mut params = request.clone();
        params.uri = route.name.to_string();
        let upstream = self.upstream(&route);
        let upstream_request = ClientRequest::from(UnsubscribeRequest::new(params));
        if let Some(links) = self.links_for(&context).await
            && let Some(link) = links.link(route.upstream)
        {
            return upstream
                .request_on(&link.live, upstream_request)
                .await
                .map(drop)
                .map_err(ErrorData::from);
        }
        if self
            .gateway
            .hub
            .unsubscribe_resource(self.client.id, &request.uri)
        {
            let _ = upstream.request_simple(upstream_request).await;
        }
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = requested.clone();
        // Resource update subscriptions of 2026-07-28 clients are not bridged to upstreams yet;
        // list-change notifications are.
        accepted.resource_subscriptions = None;
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let id = self.gateway.hub.next_client_id();
        self.gateway.hub.add_listener(id, context.sink().clone());
        context.cancelled().await;
        self.gateway.hub.remove_client(id);
        Ok(())
    }
}
