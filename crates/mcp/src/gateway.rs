//! The gateway: the long-lived parts of the data plane.
//!
//! [`Gateway`] owns the upstreams, the catalog and the hub, and hands out a
//! [`GatewayHandler`] (see [`crate::handler`]) per downstream session or stateless request.
//! The catalog is rebuilt off the request path whenever an upstream's status changes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use rmcp::model::{Implementation, ServerConfig};
use switchboard_domain::tenancy::TenantId;
use switchboard_domain::{Isolation, UpstreamDef};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bridge::Bridges;
use crate::caller::{CallGate, Caller, DecisionSink, LogDecisions};
use crate::catalog::Catalog;
use crate::handler::GatewayHandler;
use crate::hub::Hub;
use crate::per_tenant::{PerTenant, PerTenantLimits};
use crate::upstream::{Health, Lists, Upstream};

/// Data-plane settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Items per page of an aggregated list.
    pub page_size: usize,
    /// `instructions` sent to clients at initialize/discover.
    pub instructions: Option<String>,
    /// Most session-owned upstream connections (per-session isolation, bridged calls) open
    /// at once; beyond it sessions use the shared connection and bridged calls are refused.
    pub max_session_connections: usize,
    /// Bounds on per-tenant connections to upstreams with placeholders.
    pub per_tenant: PerTenantLimits,
    /// Where a tenant's stdio children run when their definition names no `cwd`: each in
    /// `{work_dir}/{tenant}/{server}` (created, private to the gateway's user).
    pub work_dir: Option<std::path::PathBuf>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            page_size: 500,
            instructions: None,
            max_session_connections: 256,
            per_tenant: PerTenantLimits::default(),
            work_dir: None,
        }
    }
}

/// The long-lived gateway state.
pub struct Gateway {
    pub(crate) upstreams: Vec<Arc<Upstream>>,
    pub(crate) catalog: ArcSwap<Catalog>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) config: GatewayConfig,
    shutdown: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) in_flight: AtomicUsize,
    /// HTTP client for session-owned upstream connections.
    pub(crate) http: Option<reqwest::Client>,
    /// Whether any upstream wants per-session connections.
    pub(crate) has_per_session: bool,
    /// 2026-07-28 calls waiting for their client's answers (see [`crate::bridge`]).
    pub(crate) bridges: Bridges,
    /// Permits for session-owned upstream connections.
    pub(crate) session_connections: Arc<Semaphore>,
    /// Where call decisions go (the audit log, once governance is wired in).
    decisions: std::sync::OnceLock<Arc<dyn DecisionSink>>,
    /// What admits each tool call (the rate limiter), when set.
    call_gate: std::sync::OnceLock<Arc<dyn CallGate>>,
    /// Tenants' own connections to upstreams whose definitions have placeholders.
    pub(crate) per_tenant: Arc<PerTenant>,
    /// The sampling ratio of calls without a client trace, when span export is on.
    span_ratio: std::sync::OnceLock<f64>,
}

/// Counts one upstream request in flight while alive.
pub(crate) struct InFlight<'a>(pub(crate) &'a AtomicUsize);

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
        let (per_tenant, per_tenant_task) =
            PerTenant::start(&upstreams, hub.clone(), shutdown.clone(), &config);
        tasks.extend(per_tenant_task);
        let gateway = Arc::new(Gateway {
            per_tenant,
            catalog: ArcSwap::from_pointee(Catalog::build(&upstreams).with_info(&config)),
            http,
            has_per_session,
            bridges: Bridges::default(),
            session_connections: Arc::new(Semaphore::new(config.max_session_connections)),
            upstreams,
            hub,
            config,
            shutdown,
            tasks: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            decisions: std::sync::OnceLock::new(),
            call_gate: std::sync::OnceLock::new(),
            span_ratio: std::sync::OnceLock::new(),
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
        self.per_tenant.close_all().await;
    }

    /// Tenants' own connections to upstreams with placeholders.
    pub fn per_tenant(&self) -> &Arc<PerTenant> {
        &self.per_tenant
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

    /// A handler for one downstream session or stateless request over HTTP: every message
    /// must carry its authenticated [`Caller`] in the request extensions.
    pub fn handler(self: &Arc<Self>) -> GatewayHandler {
        GatewayHandler::new(self.clone(), None)
    }

    /// A handler whose caller is fixed (the local stdio bridge).
    pub fn handler_for(self: &Arc<Self>, caller: Arc<Caller>) -> GatewayHandler {
        GatewayHandler::new(self.clone(), Some(caller))
    }

    /// Sets where call decisions are recorded (once; later calls are ignored).
    pub fn set_decision_sink(&self, sink: Arc<dyn DecisionSink>) {
        let _ = self.decisions.set(sink);
    }

    /// Sets what admits each tool call (once; later calls are ignored).
    pub fn set_call_gate(&self, gate: Arc<dyn CallGate>) {
        let _ = self.call_gate.set(gate);
    }

    /// Turns on the gateway's own spans (see [`crate::span`]): calls carrying a sampled
    /// trace, and `sample_ratio` of the others, get one, handed to the decision sink with
    /// the call record (once; later calls are ignored).
    pub fn set_span_export(&self, sample_ratio: f64) {
        let _ = self.span_ratio.set(sample_ratio.clamp(0.0, 1.0));
    }

    pub(crate) fn span_ratio(&self) -> Option<f64> {
        self.span_ratio.get().copied()
    }

    pub(crate) fn call_gate(&self) -> Option<&dyn CallGate> {
        self.call_gate.get().map(|gate| gate.as_ref())
    }

    pub(crate) fn decisions(&self) -> &dyn DecisionSink {
        match self.decisions.get() {
            Some(sink) => sink.as_ref(),
            None => &LogDecisions,
        }
    }
}

impl Catalog {
    /// Fills in what this gateway answers to `initialize`/`server/discover`.
    pub(crate) fn with_info(mut self, config: &GatewayConfig) -> Catalog {
        let mut info = ServerConfig::new(self.capabilities.clone());
        let mut implementation = Implementation::default();
        implementation.name = "switchboard".into();
        implementation.title = Some("Switchboard MCP gateway".into());
        implementation.version = env!("CARGO_PKG_VERSION").into();
        info.server_info = implementation;
        info.instructions = config.instructions.clone();
        self.info = info;
        self
    }
}

async fn rebuild_catalog(gateway: Arc<Gateway>, dirty: Arc<Notify>) {
    // Each upstream's lists as of the last rebuild, to tell which upstreams changed.
    let mut seen: Vec<Lists> = gateway
        .upstreams
        .iter()
        .map(|u| u.status().lists.clone())
        .collect();
    loop {
        tokio::select! {
            _ = dirty.notified() => {}
            _ = gateway.shutdown.cancelled() => return,
        }
        // Coalesce bursts (several upstreams becoming ready together).
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut next = Catalog::build(&gateway.upstreams).with_info(&gateway.config);
        let previous = gateway.catalog.load_full();
        next.generation = previous.generation + 1;
        let mut changes = next.changes_from(&previous);
        let mut changed = Vec::new();
        for (upstream, seen) in gateway.upstreams.iter().zip(seen.iter_mut()) {
            let announced = upstream.take_announced();
            changes.add(announced);
            let lists = upstream.status().lists.clone();
            if announced.any() || lists != *seen {
                changed.push(upstream.def().clone());
            }
            *seen = lists;
        }
        gateway.catalog.store(Arc::new(next));
        if changes.any() && !changed.is_empty() {
            // Only tenants that can see a changed upstream hear about it.
            let audience = |tenant: &TenantId| changed.iter().any(|d| d.available_to(tenant));
            gateway.hub.broadcast_list_changes(changes, &audience).await;
        }
    }
}
