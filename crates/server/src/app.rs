//! Wiring and lifecycle: the HTTP router, the listener, and graceful shutdown.
//!
//! Request path: TCP (TCP_NODELAY) → axum router → [`origin_guard`] (legacy SSE) →
//! [`limits`](crate::limits) (per client address) → [`authn`](crate::authn) (credential →
//! tenant → `Caller`) → [`limits`](crate::limits) (tenant, user, credential) → session binding
//! and caps (`/mcp`) → rmcp (Host/Origin, headers, sessions) → [`switchboard_mcp::GatewayHandler`]
//! (policy per item) → upstream.
//!
//! Shutdown: stop accepting → wait (bounded) until no upstream request is in flight → end
//! every session and SSE stream → stop upstreams (stdio children get SIGTERM, then SIGKILL).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde_json::json;
use switchboard_governance::{AuditLog, Limiter, Meter, OnRedisError};
use switchboard_mcp::Gateway;
use switchboard_mcp::downstream::{sse, streamable};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::audit::{self, Observer};
use crate::authn::{self, AuthState};
use crate::config::Config;
use crate::forwarded::{self, TrustedProxies};
use crate::limits;
use crate::metrics::{self, Metrics, MetricsState};
use crate::oauth::{self, OAuthState};
use crate::origin_guard::{self, OriginPolicy};
use crate::reply;
use crate::tenancy::Tenancy;

/// Shared by the routes that need it; behind an `Arc` because every request clones the
/// state of the route it takes.
struct AppState {
    gateway: Arc<Gateway>,
    tenancy: Arc<Tenancy>,
    limiter: Arc<Limiter>,
    audit: Option<Arc<AuditLog>>,
    meter: Option<Arc<Meter>>,
    stopping: Arc<AtomicBool>,
}

/// A running gateway.
pub struct Running {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    /// The store and authenticator (tests and the CLI write through it, then reload).
    pub tenancy: Arc<Tenancy>,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Triggers graceful shutdown and waits for it to finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await.context("server task panicked")?
    }

    /// Waits until the server stops by itself (after [`Running::stop_token`] is cancelled).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task panicked")?
    }

    /// Cancelling this token starts graceful shutdown.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }
}

/// What the router serves from.
struct Services {
    gateway: Arc<Gateway>,
    tenancy: Arc<Tenancy>,
    limiter: Arc<Limiter>,
    audit: Option<Arc<AuditLog>>,
    meter: Option<Arc<Meter>>,
    metrics: Option<Arc<Metrics>>,
    traces: Option<Arc<crate::traces::SpanExporter>>,
    admin: Option<switchboard_admin::AdminState>,
    sessions: Sessions,
}

/// The downstream session holders: the Streamable HTTP service with its session limit, and
/// the legacy SSE endpoint's state. Built before the router so the admin API can list and
/// end sessions.
#[derive(Clone)]
pub struct Sessions {
    pub mcp: Arc<streamable::McpService>,
    pub limit: streamable::SessionLimit,
    pub sse: Arc<sse::SseState>,
}

impl Sessions {
    fn new(gateway: &Arc<Gateway>, config: &Config, ct: &CancellationToken) -> Self {
        let options = config.http_options();
        let (mcp, limit) = streamable::service(gateway.clone(), &options, ct.clone());
        let sse = sse::SseState::new(gateway.clone(), options, ct.clone());
        Self { mcp, limit, sse }
    }
}

/// Builds the router for a gateway.
fn router(services: Services, config: &Config, stopping: Arc<AtomicBool>) -> Router {
    let Services {
        gateway,
        tenancy,
        limiter,
        audit,
        meter,
        metrics,
        traces,
        admin,
        sessions,
    } = services;
    let options = config.http_options();
    let policy = Arc::new(OriginPolicy {
        allowed_hosts: options.allowed_hosts.clone(),
        allowed_origins: options.allowed_origins.clone(),
    });
    let public_url: Arc<str> = config.public_url().into();
    let auth_state = AuthState {
        tenancy: tenancy.clone(),
        limiter: limiter.clone(),
        public_url: public_url.clone(),
        sse_query_token: config.auth.sse_query_token,
    };
    let authenticate =
        axum::middleware::from_fn_with_state(Arc::new(auth_state), authn::authenticate);
    let limit_address =
        axum::middleware::from_fn_with_state(limiter.clone(), limits::limit_address);
    let limit_address_or_defer =
        axum::middleware::from_fn_with_state(limiter.clone(), limits::limit_address_or_defer);
    let limit_request =
        axum::middleware::from_fn_with_state(limiter.clone(), limits::limit_request);
    let Sessions {
        mcp,
        limit: session_limit,
        sse: sse_state,
    } = sessions;
    // Layers run outside-in (the last added runs first): the address limit, authentication,
    // the caller's rate limits, then the session binding and session caps.
    let mut streamable = Router::new()
        .route("/mcp", streamable::route(mcp.clone()))
        .route("/t/{tenant}/mcp", streamable::route(mcp.clone()))
        .layer(session_limit.clone())
        .layer(limit_request.clone())
        .layer(authenticate.clone())
        .layer(limit_address_or_defer.clone());
    let mut legacy = Router::new()
        .route("/sse", get(sse::open_stream))
        .route("/messages", post(sse::post_message))
        .route("/t/{tenant}/sse", get(sse::open_stream))
        .route("/t/{tenant}/messages", post(sse::post_message))
        .with_state(sse_state)
        .layer(limit_request)
        .layer(authenticate)
        .layer(limit_address_or_defer)
        .layer(axum::middleware::from_fn_with_state(
            policy,
            origin_guard::check,
        ));
    let mut admin =
        admin.map(|state| switchboard_admin::router(state).layer(limit_address.clone()));
    // Outermost: nothing is served while the audit log cannot take its records.
    if let Some(log) = &audit {
        let admit = audit::AdmitLayer(log.clone());
        streamable = streamable.layer(admit.clone());
        legacy = legacy.layer(admit.clone());
        admin = admin.map(|router| router.layer(admit));
    }
    // Outermost of all on the admin API: its refusals use its own error shape.
    let admin = admin.map(|router| router.layer(axum::middleware::from_fn(reply::admin_shape)));
    let oauth_state = OAuthState {
        tenancy: tenancy.clone(),
        public_url,
        token_ttl_secs: config.auth.client_token_ttl_secs as i64,
    };
    let oauth = Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(oauth::protected_resource),
        )
        .route(
            "/.well-known/oauth-protected-resource/{*rest}",
            get(oauth::protected_resource),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::authorization_server),
        )
        .route("/oauth/jwks.json", get(oauth::jwks))
        .route(
            "/oauth/token",
            post(oauth::token).layer(limit_address.clone()),
        )
        .route(
            "/t/{tenant}/oauth/token",
            post(oauth::token).layer(limit_address),
        )
        .with_state(oauth_state);
    let mut app = Router::new();
    if let Some(metrics) = metrics {
        let state = MetricsState {
            metrics,
            gateway: gateway.clone(),
            audit: audit.clone(),
            limiter: limiter.clone(),
            meter: meter.clone(),
            traces,
            sessions: session_limit,
            mcp,
            token: config.metrics.token.clone().map(Arc::new),
        };
        app = app.route("/metrics", get(metrics::scrape).with_state(state));
    }
    let app = app
        .merge(streamable)
        .merge(legacy)
        .merge(oauth)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(Arc::new(AppState {
            gateway,
            tenancy,
            limiter,
            audit,
            meter,
            stopping,
        }));
    let app = match admin {
        Some(admin) => app.merge(admin),
        None => app,
    };
    // Outermost of all: behind trusted proxies, every layer sees the client's address.
    let proxies = TrustedProxies::parse(&config.server.trusted_proxies).unwrap_or_default();
    if proxies.is_empty() {
        app
    } else {
        app.layer(axum::middleware::from_fn_with_state(
            Arc::new(proxies),
            forwarded::client_address,
        ))
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let upstreams: Vec<_> = state
        .gateway
        .upstreams()
        .iter()
        .map(|u| {
            let status = u.status();
            json!({
                "name": u.name(),
                "transport": u.def().transport.kind(),
                "health": status.health,
                "tools": status.lists.tools.len(),
            })
        })
        .collect();
    let stopping = state.stopping.load(Ordering::Relaxed);
    let database = state.tenancy.store_healthy();
    let limiter = &state.limiter;
    let redis = match limiter.shared() {
        true => Some(limiter.health().await),
        false => None,
    };
    // Shared limits that fail closed refuse every request while Redis is down.
    let limits_down =
        matches!(&redis, Some(Err(_))) && limiter.on_redis_error() == OnRedisError::Deny;
    // Without the database, revocations and changes made elsewhere are not seen: not ready.
    let (status, word) = match (stopping, database, limits_down) {
        (true, _, _) => (StatusCode::SERVICE_UNAVAILABLE, "stopping"),
        (false, false, _) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable"),
        (false, true, true) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "rate-limit store unreachable",
        ),
        (false, true, false) => (StatusCode::OK, "ready"),
    };
    let stats = limiter.stats();
    let limits = json!({
        "backend": if limiter.shared() { "redis" } else { "in-process" },
        "redis": redis.map(|r| match r {
            Ok(()) => json!({"reachable": true}),
            Err(err) => json!({"reachable": false, "error": err.to_string()}),
        }),
        "on_redis_error": match limiter.on_redis_error() { OnRedisError::Deny => "deny", OnRedisError::Local => "local" },
        "refused": stats.refused,
        "redis_calls": stats.redis_calls,
        "redis_errors": stats.redis_errors,
        "local_fallbacks": stats.local_fallbacks,
    });
    let audit = state.audit.as_ref().map(|log| {
        let stats = log.stats();
        json!({"backlog": stats.backlog, "written": stats.written, "write_errors": stats.write_errors})
    });
    let usage = state.meter.as_ref().map(|meter| {
        let stats = meter.stats();
        json!({"pending_cells": stats.pending_cells, "written_cells": stats.written_cells, "write_errors": stats.write_errors})
    });
    let snapshot = state.tenancy.auth.snapshot();
    let body = json!({
        "status": word,
        "database": {"reachable": database, "backend": state.tenancy.store.backend().as_str(), "revision": snapshot.revision},
        "tenants": snapshot.tenants().count(),
        "limits": limits,
        "audit": audit,
        "usage": usage,
        "open_mode": snapshot.is_open(),
        "sessions": state.gateway.hub().session_count(),
        "in_flight": state.gateway.in_flight(),
        "upstreams": upstreams,
    });
    (status, Json(body)).into_response()
}

async fn not_found() -> Response {
    let body = json!({"error": {"code": "not_found", "message": "no such endpoint; MCP is served at /mcp and /t/{tenant}/mcp (Streamable HTTP), /sse and /t/{tenant}/sse (legacy SSE)"}});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// Binds the listener and starts serving; returns once the gateway accepts connections.
pub async fn start(mut config: Config) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (server.listen)", config.listen))?;
    let addr = listener.local_addr()?;
    if config.auth.public_url.is_none() {
        // The address actually bound (port 0 becomes the real port).
        config.auth.public_url = Some(format!("http://{addr}"));
    }
    let tenancy = Tenancy::open(&config).await?;
    if tenancy.auth.snapshot().is_open() {
        tracing::warn!(
            "no tenants configured: every request is served as tenant `default` without credentials; create a tenant to require them"
        );
    }
    let limiter = Arc::new(
        Limiter::new(config.limits_options()).context("cannot set up rate limits ([limits])")?,
    );
    let gateway = Gateway::start(config.upstreams.clone(), config.gateway_config());
    let meter = config
        .usage
        .enabled
        .then(|| Meter::start(tenancy.store.clone(), config.usage_options()));
    gateway.set_call_gate(Arc::new(limits::ToolGate {
        limiter: limiter.clone(),
        meter: meter.clone(),
    }));
    let audit_log = config
        .audit
        .enabled
        .then(|| AuditLog::start(tenancy.store.clone(), config.audit_options()));
    let metrics = config
        .metrics
        .enabled
        .then(|| Metrics::new(config.metrics.max_series));
    let vault = crate::secrets::vault(&config, &tenancy.store)?;
    gateway
        .per_tenant()
        .set_source(Arc::new(crate::secrets::VaultSource(vault.clone())));
    crate::tenant_servers::follow(&tenancy, &gateway, &config.tenant_servers);
    let sessions_ct = CancellationToken::new();
    let sessions = Sessions::new(&gateway, &config, &sessions_ct);
    let admin = crate::admin::state(
        &config,
        &tenancy,
        audit_log.clone(),
        meter.clone(),
        vault,
        gateway.clone(),
        sessions.clone(),
    )
    .await?;
    let traces = crate::traces::SpanExporter::start(&config.traces)
        .context("cannot set up span export ([traces])")?;
    if traces.is_some() {
        gateway.set_span_export(config.traces.sample_ratio);
    }
    if audit_log.is_some() || metrics.is_some() || meter.is_some() || traces.is_some() {
        let observer = Arc::new(Observer {
            audit: audit_log.clone(),
            metrics: metrics.clone(),
            meter: meter.clone(),
            traces: traces.clone(),
        });
        gateway.set_decision_sink(observer.clone());
        tenancy.auth.set_event_sink(observer);
    }
    gateway
        .wait_started(Duration::from_millis(config.server.startup_wait_ms))
        .await;
    let stop = CancellationToken::new();
    let stopping = Arc::new(AtomicBool::new(false));
    tenancy.spawn_reloader(
        Duration::from_millis(config.auth.reload_interval_ms),
        stop.clone(),
    );
    if let Some(log) = &audit_log {
        crate::retention::spawn(
            tenancy.clone(),
            log.clone(),
            config.audit.retention_days,
            stop.clone(),
        );
    }
    let services = Services {
        gateway: gateway.clone(),
        tenancy: tenancy.clone(),
        limiter,
        audit: audit_log.clone(),
        meter: meter.clone(),
        metrics,
        traces: traces.clone(),
        admin,
        sessions,
    };
    let app = router(services, &config, stopping.clone());
    let grace = Duration::from_millis(config.server.shutdown_grace_ms);

    let listener = listener.tap_io(|tcp| {
        // Without TCP_NODELAY every keep-alive response stalls ~40 ms (PEERS.md).
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "could not set TCP_NODELAY");
        }
    });
    let drain_gateway = gateway.clone();
    let stop_signal = stop.clone();
    let shutdown = async move {
        stop_signal.cancelled().await;
        stopping.store(true, Ordering::Relaxed);
        tracing::info!("shutting down: draining in-flight requests");
        let deadline = tokio::time::Instant::now() + grace;
        while drain_gateway.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // End sessions and SSE streams so their connections can close.
        sessions_ct.cancel();
    };
    let task_gateway = gateway.clone();
    let hard_stop = stop.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown);
        // Connections that ignore the shutdown get a bounded extra moment, then are dropped.
        let result = tokio::select! {
            result = served => result,
            _ = async {
                hard_stop.cancelled().await;
                tokio::time::sleep(grace + Duration::from_secs(3)).await;
            } => Ok(()),
        };
        task_gateway.shutdown().await;
        // Every request has ended: write what they recorded before stopping.
        if let Some(meter) = meter {
            meter.flush().await;
        }
        if let Some(log) = audit_log {
            log.flush().await;
            tracing::info!(written = log.stats().written, "audit log flushed");
        }
        if let Some(traces) = traces {
            traces.flush().await;
        }
        tracing::info!("stopped");
        result.context("server error")
    });
    tracing::info!(%addr, "listening");
    Ok(Running {
        addr,
        gateway,
        tenancy,
        stop,
        task,
    })
}
