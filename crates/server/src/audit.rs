//! The audit log at the edges: what the authenticator refuses and what the MCP handler
//! decides and forwards becomes an [`AuditEvent`] in the caller's tenant chain; a layer in
//! front of the MCP endpoints admits requests only while the audit backlog has room; and the
//! `switchboard audit` commands verify and export the chains.
//!
//! Recorded: every refused authentication (in the chain of the tenant the request named, or
//! the platform chain), every cross-tenant attempt, every denied call (with the policy's
//! reason), and every allowed tool call, prompt get and resource read once answered (who,
//! which credential, server and item, the arguments' digest — never the arguments — the
//! outcome, latency, client address and user agent). Allowed decisions are part of the call's
//! record (its `reason`), so a call costs one record.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use axum::response::Response;
use futures::future::{BoxFuture, Either};
use serde::Serialize;
use switchboard_auth::{AuthEventSink, LogAuthEvents, Refusal};
use switchboard_domain::audit::{AuditEvent, AuditKind, PLATFORM_CHAIN};
use switchboard_domain::names::{recorded_message, recorded_name};
use switchboard_domain::tenancy::Principal;
use switchboard_domain::usage::hour_start;
use switchboard_governance::{AuditLog, CallCell, Meter};
use switchboard_mcp::error::codes;
use switchboard_mcp::{CallRecord, DecisionRecord, DecisionSink, LogDecisions};
use switchboard_store::Store;
use tower::{Layer, Service};

use crate::metrics::Metrics;
use crate::reply;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The `detail` of a record: written straight to JSON text (no intermediate map).
#[derive(Serialize, Default)]
struct Detail<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments_sha256: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDetail<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: i32,
    message: &'a str,
}

impl Detail<'_> {
    fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

fn actor(principal: &Principal) -> String {
    principal.identity.to_string()
}

/// Hands refusals, decisions and completed calls to the audit log and the metrics, when
/// enabled (and to the log, as before).
pub struct Observer {
    pub audit: Option<Arc<AuditLog>>,
    pub metrics: Option<Arc<Metrics>>,
    pub meter: Option<Arc<Meter>>,
    pub traces: Option<Arc<crate::traces::SpanExporter>>,
}

impl AuthEventSink for Observer {
    fn refused(&self, refusal: &Refusal<'_>) {
        LogAuthEvents.refused(refusal);
        let cross_tenant = refusal.error.is_cross_tenant();
        if let Some(metrics) = &self.metrics {
            let kind = if cross_tenant {
                "cross_tenant"
            } else {
                "refused"
            };
            metrics.refused(refusal.tenant.as_ref().map(|t| t.as_str()), kind);
        }
        let Some(log) = &self.audit else {
            return;
        };
        let detail = Detail {
            ip: refusal.client_ip,
            ..Default::default()
        };
        let kind = if cross_tenant {
            AuditKind::CrossTenant
        } else {
            AuditKind::AuthRefused
        };
        log.record(AuditEvent {
            tenant: refusal.tenant.clone(),
            at_ms: now_ms(),
            kind,
            actor: String::new(),
            credential: refusal.key_id.unwrap_or("").to_owned(),
            // The path is the client's: bounded like every recorded name, so a hostile 10 KB
            // path stays a short record.
            target: recorded_name(refusal.resource).to_owned(),
            outcome: "refused".into(),
            // Authentication errors never contain the credential (see `AuthError`).
            reason: refusal.error.to_string(),
            detail: detail.text(),
        });
    }
}

impl DecisionSink for Observer {
    fn record(&self, r: &DecisionRecord<'_>) {
        LogDecisions.record(r);
        if r.decision.allowed {
            return; // recorded with the call, once it is answered
        }
        if let Some(metrics) = &self.metrics {
            metrics.denied(r.principal.tenant.as_str());
        }
        let Some(log) = &self.audit else {
            return;
        };
        let detail = Detail {
            item: Some(r.kind.as_str()),
            ip: r.client.ip,
            user_agent: r.client.user_agent.as_deref(),
            ..Default::default()
        };
        log.record(AuditEvent {
            tenant: Some(r.principal.tenant.clone()),
            at_ms: now_ms(),
            kind: AuditKind::Decision,
            actor: actor(r.principal),
            credential: r.principal.credential.id.clone(),
            target: format!("{}/{}", r.server, r.name),
            outcome: "denied".into(),
            reason: r.decision.reason.to_string(),
            detail: detail.text(),
        });
    }

    fn completed(&self, r: &CallRecord<'_>) {
        LogDecisions.completed(r);
        if let Some(meter) = &self.meter
            && r.reached
        {
            meter.record(
                CallCell {
                    tenant: &r.principal.tenant,
                    hour: hour_start(now_ms() / 1000),
                    principal: &r.principal.identity,
                    credential: &r.principal.credential.id,
                    server: r.server,
                    kind: r.kind,
                    item: r.name,
                },
                r.error.is_some() || r.tool_error,
                r.latency,
                r.bytes_in,
                r.bytes_out,
            );
        }
        if let Some(metrics) = &self.metrics {
            metrics.call(
                r.principal.tenant.as_str(),
                r.server,
                r.kind.as_str(),
                r.name,
                r.error.is_none(),
                r.latency.as_secs_f64(),
            );
        }
        if let Some(traces) = &self.traces {
            traces.record(r);
        }
        let Some(log) = &self.audit else {
            return;
        };
        let detail = Detail {
            item: Some(r.kind.as_str()),
            latency_ms: Some((r.latency.as_secs_f64() * 1_000_000.0).round() / 1000.0),
            arguments_sha256: r.arguments_digest.as_deref(),
            error: r.error.map(|e| ErrorDetail {
                code: e.code.0,
                message: recorded_message(&e.message),
            }),
            ip: r.client.ip,
            user_agent: r.client.user_agent.as_deref(),
        };
        log.record(AuditEvent {
            tenant: Some(r.principal.tenant.clone()),
            at_ms: now_ms(),
            kind: AuditKind::Call,
            actor: actor(r.principal),
            credential: r.principal.credential.id.clone(),
            target: format!("{}/{}", r.server, r.name),
            outcome: if r.error.is_none() { "ok" } else { "error" }.into(),
            reason: r.reason.to_string(),
            detail: detail.text(),
        });
    }
}

/// Admits a request only while the audit backlog has room (waiting up to
/// `audit.max_wait_ms`); otherwise 503 with `-32028`.
///
/// A tower layer rather than `axum::middleware::from_fn`: it runs on every request, and
/// `from_fn` boxes the inner service and the future each time (~1 µs of the audit log's cost
/// per request in a `perf` A/B); here a request finding room — all of them, normally — goes
/// straight to the inner service, and only one that must wait is boxed.
#[derive(Clone)]
pub struct AdmitLayer(pub Arc<AuditLog>);

impl<S> Layer<S> for AdmitLayer {
    type Service = Admit<S>;

    fn layer(&self, inner: S) -> Admit<S> {
        Admit {
            log: self.0.clone(),
            inner,
        }
    }
}

/// The service of [`AdmitLayer`].
#[derive(Clone)]
pub struct Admit<S> {
    log: Arc<AuditLog>,
    inner: S,
}

impl<S> Service<Request> for Admit<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if self.log.has_room() {
            return Either::Left(self.inner.call(request));
        }
        let log = self.log.clone();
        // The service polled ready is the one to call; a clone stays for the next request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Either::Right(Box::pin(async move {
            match log.admit().await {
                Ok(()) => inner.call(request).await,
                Err(busy) => Ok(reply::unavailable(
                    reply::Shape::of(&request),
                    codes::AUDIT_BUSY,
                    &busy.to_string(),
                )),
            }
        }))
    }
}

/// `switchboard audit verify`: checks every chain (or `tenant`'s); returns whether all are
/// intact, having printed one line per chain.
pub async fn verify(store: &Store, tenant: Option<&str>) -> anyhow::Result<bool> {
    let chains = match tenant {
        Some(t) => vec![t.to_owned()],
        None => store.audit_chains().await?,
    };
    if chains.is_empty() {
        println!("no audit records yet");
    }
    let mut intact = true;
    for chain in chains {
        let name = if chain == PLATFORM_CHAIN {
            "(platform)"
        } else {
            &chain
        };
        match store.verify_audit(&chain).await? {
            Ok(0) => println!("{name}: no records"),
            Ok(records) => println!("{name}: {records} records, chain intact"),
            Err(broken) => {
                intact = false;
                println!("{name}: BROKEN: {broken}");
            }
        }
    }
    Ok(intact)
}

/// `switchboard audit export`: one JSON object per line, oldest first, for SIEMs.
pub async fn export(
    store: &Store,
    tenant: &str,
    out: &mut impl std::io::Write,
) -> anyhow::Result<u64> {
    let mut after = 0;
    let mut count = 0;
    loop {
        let page = store.audit_page(tenant, after, 1000).await?;
        let Some(last) = page.last() else {
            return Ok(count);
        };
        after = last.seq;
        for record in &page {
            let line = record.to_json();
            writeln!(out, "{line}")?;
            count += 1;
        }
    }
}
