//! Connections to upstream MCP servers.
//!
//! Each configured upstream gets one [`Upstream`]: a supervisor task that connects (stdio
//! child, Streamable HTTP or legacy SSE), keeps the upstream's tool/prompt/resource lists
//! cached, reconnects with back-off when the connection drops, stops idle stdio children and
//! publishes its state as an immutable [`UpstreamStatus`] snapshot. Requests never wait on
//! the supervisor: they read the current live peer and go.

mod client;
pub(crate) mod connect;
pub(crate) mod direct;
pub(crate) mod headers;
pub(crate) mod lists;
mod network;
mod sse_client;
pub(crate) mod supervisor;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use rmcp::model::{
    CancelledNotificationParam, ClientRequest, GetExtensions, Implementation, ProgressToken,
    ProtocolVersion, RequestMetaObject, ServerCapabilities, ServerResult,
};
use rmcp::service::{Peer, PeerRequestOptions, RequestContext, RoleClient, RoleServer};
use serde::Serialize;
use switchboard_domain::UpstreamDef;
use switchboard_domain::tenancy::TenantId;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::error::{GatewayError, from_service_error};
use crate::hub::Hub;

pub use client::client_info;
pub use lists::Lists;
pub use supervisor::{Probe, probe};

/// Health of one upstream, as shown in logs, `/readyz` and the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Health {
    /// First connection attempt in progress.
    Starting,
    /// Connected; lists are fresh.
    Ready,
    /// Stopped after being idle; reconnects on the next request. Lists are kept.
    Idle,
    /// Not reachable; the supervisor retries with back-off.
    Down { reason: String },
    /// Shut down with the gateway.
    Stopped,
    /// A definition with placeholders: no connection of its own; each tenant gets one
    /// (see [`crate::per_tenant`]).
    PerTenant,
}

/// An immutable snapshot of an upstream's state, replaced as a whole on every change.
#[derive(Debug, Clone)]
pub struct UpstreamStatus {
    pub health: Health,
    pub lists: Lists,
    pub capabilities: Option<ServerCapabilities>,
    pub server_info: Option<Implementation>,
    pub protocol_version: Option<String>,
}

/// A live connection: the rmcp peer plus an id that is unique for the process lifetime.
pub struct Live {
    pub peer: Peer<RoleClient>,
    pub connection: u64,
    /// The direct path of a shared Streamable HTTP connection (see [`direct`]).
    pub(crate) direct: Option<Arc<direct::Direct>>,
}

impl Live {
    /// True when the connection negotiated the stateless 2026-07-28 protocol (or newer).
    pub fn speaks_2026(&self) -> bool {
        self.peer.peer_info().is_some_and(|info| {
            info.protocol_version.as_str() >= ProtocolVersion::V_2026_07_28.as_str()
        })
    }
}

pub(crate) static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Counts one request in flight on an upstream while alive.
struct Busy<'a>(&'a AtomicUsize);

impl<'a> Busy<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Busy(count)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One configured upstream and its supervised connection.
pub struct Upstream {
    index: usize,
    def: Arc<UpstreamDef>,
    status: ArcSwap<UpstreamStatus>,
    live: ArcSwapOption<Live>,
    /// A request wants a connection (wakes an idle supervisor).
    wake: Notify,
    /// The upstream said one of its lists changed.
    refresh: Notify,
    /// Which lists to re-fetch (bits: tools, prompts, resources).
    pending_refresh: AtomicU8,
    /// Which list changes the upstream announced since the catalog last looked (same bits).
    announce: AtomicU8,
    /// Bumped on every successful connection, so waiters can await one.
    connected: watch::Sender<u64>,
    epoch: Instant,
    last_used_ms: AtomicU64,
    /// Requests on this upstream's connections right now (idle and lifetime closing wait
    /// for zero, so they never cut a call short).
    in_flight: AtomicUsize,
    /// A listed tool promotes arguments to `Mcp-Param-*` headers: calls stay on rmcp's
    /// path, which builds them (see [`direct`]).
    promoted_headers: AtomicBool,
    /// Shared with the gateway: rebuild the catalog.
    catalog_dirty: Arc<Notify>,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    /// Set on one tenant's connection to a per-tenant definition: its resource updates go to
    /// that tenant's clients only.
    tenant: Option<TenantId>,
    /// Secret values this connection carries, cut out of every error message it produces
    /// (an HTTP client's error can quote the URL).
    redactions: Vec<String>,
}

/// Who a connection belongs to: every tenant (the shared connection), or one tenant with the
/// secret values its definition was rendered with.
#[derive(Default)]
pub struct Owner {
    pub tenant: Option<TenantId>,
    pub redactions: Vec<String>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("index", &self.index)
            .field("name", &self.name())
            .finish()
    }
}

impl Upstream {
    /// Creates the upstream and starts its supervisor task. A definition with placeholders
    /// gets no supervisor: it only names what each tenant's connection is made from.
    pub fn spawn(
        index: usize,
        def: UpstreamDef,
        hub: Arc<Hub>,
        catalog_dirty: Arc<Notify>,
        shutdown: CancellationToken,
    ) -> (Arc<Upstream>, tokio::task::JoinHandle<()>) {
        Self::spawn_for(index, def, hub, catalog_dirty, shutdown, Owner::default())
    }

    /// Like [`Upstream::spawn`], for a connection owned by `owner`.
    pub fn spawn_for(
        index: usize,
        def: UpstreamDef,
        hub: Arc<Hub>,
        catalog_dirty: Arc<Notify>,
        shutdown: CancellationToken,
        owner: Owner,
    ) -> (Arc<Upstream>, tokio::task::JoinHandle<()>) {
        let per_tenant = def.per_tenant;
        let upstream = Self::create(index, def, hub, catalog_dirty, shutdown, owner);
        let task = if per_tenant {
            tokio::spawn(async {})
        } else {
            tokio::spawn(supervisor::run(upstream.clone()))
        };
        (upstream, task)
    }

    /// A definition with placeholders (a tenant's own server, say) that only names what
    /// each tenant's connection is made from: no supervisor, never connected itself.
    pub fn template(
        index: usize,
        def: UpstreamDef,
        hub: Arc<Hub>,
        catalog_dirty: Arc<Notify>,
        shutdown: CancellationToken,
    ) -> Arc<Upstream> {
        debug_assert!(def.per_tenant, "a template has placeholders");
        Self::create(index, def, hub, catalog_dirty, shutdown, Owner::default())
    }

    fn create(
        index: usize,
        def: UpstreamDef,
        hub: Arc<Hub>,
        catalog_dirty: Arc<Notify>,
        shutdown: CancellationToken,
        owner: Owner,
    ) -> Arc<Upstream> {
        let per_tenant = def.per_tenant;
        Arc::new(Upstream {
            index,
            def: Arc::new(def),
            status: ArcSwap::from_pointee(UpstreamStatus {
                health: if per_tenant {
                    Health::PerTenant
                } else {
                    Health::Starting
                },
                lists: Lists::default(),
                capabilities: None,
                server_info: None,
                protocol_version: None,
            }),
            live: ArcSwapOption::empty(),
            wake: Notify::new(),
            refresh: Notify::new(),
            pending_refresh: AtomicU8::new(0),
            announce: AtomicU8::new(0),
            connected: watch::channel(0).0,
            epoch: Instant::now(),
            last_used_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            promoted_headers: AtomicBool::new(false),
            catalog_dirty,
            hub,
            shutdown,
            tenant: owner.tenant,
            redactions: owner
                .redactions
                .into_iter()
                .filter(|v| v.len() >= 4)
                .collect(),
        })
    }

    /// Whether it was stopped (gateway shutdown, or a tenant's definition retired): a
    /// retired template opens no more connections.
    pub(crate) fn is_stopped(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Stops it (a template whose definition was changed or removed).
    pub(crate) fn stop(&self) {
        self.shutdown.cancel();
    }

    /// The tenant this connection belongs to, if it is one tenant's.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.tenant.as_ref()
    }

    /// `text` with every secret value this connection carries replaced by `[redacted]`.
    pub(crate) fn redact(&self, text: String) -> String {
        if self.redactions.iter().any(|v| text.contains(v.as_str())) {
            let mut text = text;
            for value in &self.redactions {
                text = text.replace(value.as_str(), "[redacted]");
            }
            text
        } else {
            text
        }
    }

    /// A service error of this upstream as a gateway error, secrets cut out.
    fn service_error(&self, timeout: Duration, e: rmcp::ServiceError) -> GatewayError {
        match from_service_error(self.name(), timeout, e) {
            GatewayError::Unavailable { server, reason } => GatewayError::Unavailable {
                server,
                reason: self.redact(reason),
            },
            other => other,
        }
    }

    /// The definition this upstream was created from.
    pub fn def(&self) -> &UpstreamDef {
        &self.def
    }

    /// Position of this upstream in the gateway's list.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The server name.
    pub fn name(&self) -> &str {
        self.def.name.as_str()
    }

    /// Takes the list changes this upstream announced (for the catalog builder).
    pub(crate) fn take_announced(&self) -> crate::hub::ListChanges {
        let bits = self.announce.swap(0, Ordering::AcqRel);
        crate::hub::ListChanges {
            tools: bits & 1 != 0,
            prompts: bits & 2 != 0,
            resources: bits & 4 != 0,
        }
    }

    /// The downstream client registry this upstream reports to.
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The current status snapshot.
    pub fn status(&self) -> Arc<UpstreamStatus> {
        self.status.load_full()
    }

    fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_used_ms.store(now, Ordering::Relaxed);
    }

    /// Requests in flight on this upstream's connections.
    pub(crate) fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    pub(crate) fn idle_for(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_used_ms.load(Ordering::Relaxed)))
    }

    fn unavailable(&self, reason: impl Into<String>) -> GatewayError {
        GatewayError::Unavailable {
            server: self.name().to_owned(),
            reason: self.redact(reason.into()),
        }
    }

    /// The live connection, connecting first when the upstream is idle or starting.
    pub async fn live(&self) -> Result<Arc<Live>, GatewayError> {
        self.touch();
        if let Some(live) = self.live.load_full()
            && !live.peer.is_transport_closed()
        {
            return Ok(live);
        }
        match &self.status.load().health {
            Health::Down { reason } => return Err(self.unavailable(reason.clone())),
            Health::Stopped => return Err(self.unavailable("the gateway is shutting down")),
            Health::PerTenant => {
                return Err(self.unavailable("connections to it are opened per tenant"));
            }
            Health::Starting | Health::Ready | Health::Idle => {}
        }
        let mut connected = self.connected.subscribe();
        self.wake.notify_one();
        let wait = async {
            loop {
                if let Some(live) = self.live.load_full()
                    && !live.peer.is_transport_closed()
                {
                    return Ok(live);
                }
                if let Health::Down { reason } = &self.status.load().health {
                    return Err(self.unavailable(reason.clone()));
                }
                if connected.changed().await.is_err() {
                    return Err(self.unavailable("the gateway is shutting down"));
                }
            }
        };
        match tokio::time::timeout(self.def.timeouts.connect, wait).await {
            Ok(result) => result,
            Err(_) => Err(self.unavailable(format!(
                "no connection within {:?}",
                self.def.timeouts.connect
            ))),
        }
    }

    /// Sends one request upstream on behalf of the downstream request `ctx`: forwards the
    /// caller's progress to it, relays its cancellation, and applies the request timeout.
    pub async fn forward(
        &self,
        request: ClientRequest,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, GatewayError> {
        let live = self.live().await?;
        self.forward_via(&live, request, ctx).await
    }

    /// Sends one request on a given connection of this upstream (the shared one, or a
    /// session's own; see [`crate::session`]).
    pub(crate) async fn forward_via(
        &self,
        live: &Live,
        mut request: ClientRequest,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, GatewayError> {
        let parts = ctx.extensions.get::<http::request::Parts>();
        if self.def.identity_key.is_some()
            && let Some(caller) =
                parts.and_then(|parts| parts.extensions.get::<Arc<crate::caller::Caller>>())
        {
            headers::attach(&mut request, caller);
        }
        let _busy = Busy::enter(&self.in_flight);
        let timeout = self.def.timeouts.request;
        let mut options = PeerRequestOptions::with_timeout(timeout);
        let mut meta = RequestMetaObject::default();
        // A 2026-07-28 upstream decides which input it may ask for from the request's declared
        // client capabilities: declare the calling client's, since its input requests go to
        // that client (passed through, or asked by the gateway for a legacy session).
        if live.speaks_2026()
            && let Some(capabilities) = ctx.client_capabilities()
        {
            meta.set_client_capabilities(capabilities);
        }
        // The client's W3C trace context goes on: in `_meta` (every transport) and, on HTTP,
        // as headers (see `headers::UpstreamHttp`).
        // The gateway's own span (span export on) replaces the client's as the parent.
        let trace = ctx
            .extensions
            .get::<Arc<headers::TraceContext>>()
            .cloned()
            .or_else(|| {
                parts
                    .and_then(|p| headers::TraceContext::from_headers(&p.headers))
                    .map(Arc::new)
            });
        if let Some(trace) = trace {
            trace.add_to_meta(&mut meta);
            request.extensions_mut().insert(trace);
        }
        if !meta.is_empty() {
            options = options.with_meta(meta);
        }
        if let Some(direct) = &live.direct
            && let Some(plan) = direct.plan(
                &request,
                live,
                self.promoted_headers.load(Ordering::Relaxed),
            )
        {
            let meta = options.meta.take().unwrap_or_default();
            match self
                .forward_direct(live, direct, plan, request, meta, ctx, timeout)
                .await
            {
                Ok(result) => {
                    self.touch();
                    return result;
                }
                // The upstream forgot the session: rmcp re-initializes and sends it.
                Err(direct::HandBack(back)) => request = back,
            }
        }
        let handle = live
            .peer
            .send_request_with_option(request, options)
            .await
            .map_err(|e| self.service_error(timeout, e))?;
        let upstream_token: ProgressToken = handle.progress_token.clone();
        let request_id = handle.id.clone();
        let routed = ctx.meta.get_progress_token();
        if let Some(token) = &routed {
            self.route_progress_to(live, &upstream_token, ctx, token)
                .await;
        }
        let result = tokio::select! {
            result = handle.await_response() => {
                result.map_err(|e| self.service_error(timeout, e))
            }
            _ = ctx.ct.cancelled() => {
                let cancel = CancelledNotificationParam::new(
                    Some(request_id),
                    Some("cancelled by the downstream client".into()),
                );
                if let Err(err) = live.peer.notify_cancelled(cancel).await {
                    tracing::debug!(server = self.name(), %err, "could not relay cancellation");
                }
                Err(GatewayError::Cancelled)
            }
        };
        if routed.is_some() {
            self.hub
                .settle_progress(live.connection, &upstream_token)
                .await;
            self.hub.unroute_progress(live.connection, &upstream_token);
        }
        self.touch();
        result
    }

    /// Routes the upstream's progress for `upstream_token` to the caller of `ctx` under the
    /// caller's own `token`, passing on what arrived before the route existed.
    async fn route_progress_to(
        &self,
        live: &Live,
        upstream_token: &ProgressToken,
        ctx: &RequestContext<RoleServer>,
        token: &ProgressToken,
    ) {
        let sink = crate::hub::ProgressSink::of(ctx);
        let early = self.hub.route_progress(
            live.connection,
            upstream_token.clone(),
            sink.clone(),
            token.clone(),
        );
        for mut progress in early {
            progress.progress_token = token.clone();
            sink.notify(progress).await;
        }
    }

    /// Sends a request that needs no progress or cancellation relay (subscribe/unsubscribe)
    /// on the shared connection.
    pub async fn request_simple(
        &self,
        request: ClientRequest,
    ) -> Result<ServerResult, GatewayError> {
        let live = self.live().await?;
        self.request_on(&live, request).await
    }

    /// Like [`Upstream::request_simple`] on a given connection.
    pub(crate) async fn request_on(
        &self,
        live: &Live,
        request: ClientRequest,
    ) -> Result<ServerResult, GatewayError> {
        let _busy = Busy::enter(&self.in_flight);
        let timeout = self.def.timeouts.request;
        live.peer
            .send_request_with_option(request, PeerRequestOptions::with_timeout(timeout))
            .await
            .map_err(|e| self.service_error(timeout, e))?
            .await_response()
            .await
            .map_err(|e| self.service_error(timeout, e))
    }
}
