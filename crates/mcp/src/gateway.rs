//! The gateway: upstreams + catalog + hub, and the MCP server handler clients talk to.
//!
//! [`Gateway`] owns the long-lived parts. [`GatewayHandler`] is what rmcp instantiates per
//! downstream session (legacy) or per request (2026-07-28 stateless); it resolves every name
//! through the current [`Catalog`] snapshot and forwards to the owning upstream. The catalog is
//! rebuilt off the request path whenever an upstream's status changes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use rmcp::ErrorData;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientRequest, CompleteRequest,
    CompleteRequestParams, CompleteResult, GetPromptRequest, GetPromptRequestParams,
    GetPromptResponse, Implementation, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
    ReadResourceRequest, ReadResourceRequestParams, ReadResourceResponse, Reference,
    RequestMetaObject, ResourceContents, ResultType, ServerConfig, ServerResult, SetLevelRequest,
    SetLevelRequestParams, SubscribeRequest, SubscribeRequestParams, SubscriptionFilter,
    UnsubscribeRequest, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, Peer, RequestContext, RoleServer, SubscriptionContext};
use switchboard_domain::{Isolation, ListKind, UpstreamDef, exposed_uri};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::bridge::{self, Bridges, Outcome};
use crate::catalog::{Catalog, Route};
use crate::error::GatewayError;
use crate::hub::{ClientId, Hub};
use crate::mrtr;
use crate::session::SessionLinks;
use crate::upstream::{Health, Upstream};

/// Data-plane settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Items per page of an aggregated list.
    pub page_size: usize,
    /// `instructions` sent to clients at initialize/discover.
    pub instructions: Option<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            page_size: 500,
            instructions: None,
        }
    }
}

/// The long-lived gateway state.
pub struct Gateway {
    upstreams: Vec<Arc<Upstream>>,
    catalog: ArcSwap<Catalog>,
    hub: Arc<Hub>,
    config: GatewayConfig,
    shutdown: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    in_flight: AtomicUsize,
    /// HTTP client for session-owned upstream connections.
    http: Option<reqwest::Client>,
    /// Whether any upstream wants per-session connections.
    has_per_session: bool,
    /// 2026-07-28 calls waiting for their client's answers (see [`crate::bridge`]).
    bridges: Bridges,
}

/// Counts one upstream request in flight while alive.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Gateway {
    /// Upstream requests currently in flight (graceful shutdown waits for zero).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Starts a supervisor per upstream and the catalog builder.
    pub fn start(defs: Vec<UpstreamDef>, config: GatewayConfig) -> Arc<Gateway> {
        crate::install_crypto_provider();
        let hub = Arc::new(Hub::default());
        let dirty = Arc::new(Notify::new());
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let mut upstreams = Vec::new();
        for (index, def) in defs.into_iter().enumerate() {
            let (upstream, task) =
                Upstream::spawn(index, def, hub.clone(), dirty.clone(), shutdown.clone());
            upstreams.push(upstream);
            tasks.push(task);
        }
        let has_per_session = upstreams
            .iter()
            .any(|u| u.def().isolation == Isolation::PerSession);
        let http = match reqwest::Client::builder().build() {
            Ok(http) => Some(http),
            Err(err) => {
                tracing::error!(%err, "cannot create an HTTP client; per-session upstream connections are off");
                None
            }
        };
        let gateway = Arc::new(Gateway {
            catalog: ArcSwap::from_pointee(Catalog::build(&upstreams)),
            http,
            has_per_session,
            bridges: Bridges::default(),
            upstreams,
            hub,
            config,
            shutdown,
            tasks: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
        });
        tasks.push(tokio::spawn(rebuild_catalog(gateway.clone(), dirty)));
        *gateway.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        gateway
    }

    /// Waits until every upstream finished its first connection attempt (or `timeout`).
    pub async fn wait_started(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, async {
            while self
                .upstreams
                .iter()
                .any(|u| u.status().health == Health::Starting)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Let the catalog builder pick up the final states.
            tokio::time::sleep(Duration::from_millis(30)).await;
        })
        .await;
    }

    /// Stops every upstream (children are terminated) and waits for the supervisors.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
    }

    /// The upstreams, in configuration order.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// The current catalog snapshot.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.load_full()
    }

    /// The downstream client registry.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// A handler for one downstream session or stateless request.
    pub fn handler(self: &Arc<Self>) -> GatewayHandler {
        GatewayHandler {
            gateway: self.clone(),
            client: Arc::new(ClientSlot {
                id: self.hub.next_client_id(),
                hub: self.hub.clone(),
                links: tokio::sync::OnceCell::new(),
            }),
        }
    }
}

async fn rebuild_catalog(gateway: Arc<Gateway>, dirty: Arc<Notify>) {
    loop {
        tokio::select! {
            _ = dirty.notified() => {}
            _ = gateway.shutdown.cancelled() => return,
        }
        // Coalesce bursts (several upstreams becoming ready together).
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut next = Catalog::build(&gateway.upstreams);
        let previous = gateway.catalog.load_full();
        next.generation = previous.generation + 1;
        let mut changes = next.changes_from(&previous);
        for upstream in &gateway.upstreams {
            let announced = upstream.take_announced();
            changes.tools |= announced.tools;
            changes.prompts |= announced.prompts;
            changes.resources |= announced.resources;
        }
        gateway.catalog.store(Arc::new(next));
        if changes.any() {
            gateway.hub.broadcast_list_changes(changes).await;
        }
    }
}

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
        listing: &crate::catalog::Listing<T>,
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
}

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
        for _ in 0..mrtr::MAX_ROUNDS {
            let upstream_request = ClientRequest::from(CallToolRequest::new(request.clone()));
            match self.forward(&route, upstream_request, &context).await? {
                ServerResult::CallToolResult(mut r) => {
                    mark_complete(&mut r.result_type);
                    return Ok(CallToolResponse::Complete(r));
                }
                ServerResult::InputRequiredResult(r) if legacy => {
                    (request.input_responses, request.request_state) =
                        mrtr::fulfil(&context.peer, r).await?;
                }
                ServerResult::InputRequiredResult(r) => {
                    return Ok(CallToolResponse::InputRequired(r));
                }
                ServerResult::CreateTaskResult(r) => return Ok(CallToolResponse::Task(r)),
                _ => return Err(unexpected(self.upstream(&route).name(), "tools/call")),
            }
        }
        Err(mrtr::too_many_rounds(self.upstream(&route).name()))
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
        let legacy = is_legacy(&context);
        for _ in 0..mrtr::MAX_ROUNDS {
            let upstream_request = ClientRequest::from(GetPromptRequest::new(request.clone()));
            match self.forward(&route, upstream_request, &context).await? {
                ServerResult::GetPromptResult(mut r) => {
                    mark_complete(&mut r.result_type);
                    return Ok(GetPromptResponse::Complete(r));
                }
                ServerResult::InputRequiredResult(r) if legacy => {
                    (request.input_responses, request.request_state) =
                        mrtr::fulfil(&context.peer, r).await?;
                }
                ServerResult::InputRequiredResult(r) => {
                    return Ok(GetPromptResponse::InputRequired(r));
                }
                _ => return Err(unexpected(self.upstream(&route).name(), "prompts/get")),
            }
        }
        Err(mrtr::too_many_rounds(self.upstream(&route).name()))
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
        let legacy = is_legacy(&context);
        for _ in 0..mrtr::MAX_ROUNDS {
            let upstream_request = ClientRequest::from(ReadResourceRequest::new(request.clone()));
            match self.forward(&route, upstream_request, &context).await? {
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
                    return Ok(ReadResourceResponse::Complete(r));
                }
                ServerResult::InputRequiredResult(r) if legacy => {
                    (request.input_responses, request.request_state) =
                        mrtr::fulfil(&context.peer, r).await?;
                }
                ServerResult::InputRequiredResult(r) => {
                    return Ok(ReadResourceResponse::InputRequired(r));
                }
                _ => return Err(unexpected(self.upstream(&route).name(), "resources/read")),
            }
        }
        Err(mrtr::too_many_rounds(self.upstream(&route).name()))
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

/// Used by tests and the catalog builder to look at routes without a request.
impl Gateway {
    /// The upstream serving exposed tool `name`, if any.
    pub fn tool_route(&self, name: &str) -> Option<(String, String)> {
        let catalog = self.catalog.load();
        let route = catalog.tools.route(name)?;
        Some((
            self.upstreams[route.upstream].name().to_owned(),
            route.name.to_string(),
        ))
    }
}
