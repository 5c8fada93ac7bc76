//! Prometheus metrics at `/metrics`: calls, their latency and errors by tenant, server, item
//! and outcome; denials and authentication refusals by tenant; sessions, calls in flight and
//! the audit backlog as gauges, and the counters of the pipelines behind the requests (audit
//! writer, usage meter, rate limiter, span exporter), all read at scrape time.
//!
//! Each gateway owns its recorder (not the process-global one), so several gateways in one
//! process — the tests — never mix their figures. The number of label sets is capped
//! (`metrics.max_series`): beyond it, new items are counted under `name="_other"`, so a
//! tenant creating many tools cannot blow up the scrape. `/metrics` shows every tenant's
//! names: it is an operator endpoint, protected by `metrics.token` when set.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics::Label;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use switchboard_governance::{AuditLog, Limiter, Meter};
use switchboard_mcp::Gateway;

/// Latency buckets of call durations (seconds).
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The gateway's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    series: Mutex<HashSet<u64>>,
    hasher: RandomState,
    max_series: usize,
}

impl Metrics {
    /// Metrics with at most `max_series` (tenant, server, item) label sets.
    pub fn new(max_series: usize) -> Arc<Self> {
        let builder = PrometheusBuilder::new();
        let recorder = builder
            .set_buckets(&BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        Arc::new(Self {
            recorder,
            series: Mutex::new(HashSet::new()),
            hasher: RandomState::new(),
            max_series,
        })
    }

    /// `name`, or `_other` once the series cap is reached and this label set is new.
    fn bounded_name<'a>(&self, tenant: &str, server: &str, name: &'a str) -> &'a str {
        // A hash of the label set, not the strings: nothing is allocated per call. A
        // collision can only let one extra series through the cap.
        let key = self.hasher.hash_one((tenant, server, name));
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        if series.contains(&key) {
            return name;
        }
        if series.len() >= self.max_series {
            return "_other";
        }
        series.insert(key);
        name
    }

    /// One answered call.
    pub fn call(
        &self,
        tenant: &str,
        server: &str,
        item: &'static str,
        name: &str,
        ok: bool,
        seconds: f64,
    ) {
        let name = self.bounded_name(tenant, server, name);
        let labels = [
            Label::new("tenant", tenant.to_owned()),
            Label::new("server", server.to_owned()),
            Label::new("item", item),
            Label::new("name", name.to_owned()),
        ];
        metrics::with_local_recorder(&self.recorder, || {
            let mut with_outcome = labels.to_vec();
            with_outcome.push(Label::new("outcome", if ok { "ok" } else { "error" }));
            metrics::counter!("switchboard_calls_total", with_outcome).increment(1);
            metrics::histogram!("switchboard_call_duration_seconds", labels.to_vec())
                .record(seconds);
        });
    }

    /// One denied call.
    pub fn denied(&self, tenant: &str) {
        let labels = [Label::new("tenant", tenant.to_owned())];
        metrics::with_local_recorder(&self.recorder, || {
            metrics::counter!("switchboard_denials_total", labels.to_vec()).increment(1);
        });
    }

    /// One refused authentication (`kind`: `refused` or `cross_tenant`); `tenant` is the
    /// tenant the request named, if it exists.
    pub fn refused(&self, tenant: Option<&str>, kind: &'static str) {
        let labels = [
            Label::new("tenant", tenant.unwrap_or("_none").to_owned()),
            Label::new("kind", kind),
        ];
        metrics::with_local_recorder(&self.recorder, || {
            metrics::counter!("switchboard_auth_refusals_total", labels.to_vec()).increment(1);
        });
    }

    /// Reads the gauges and the pipelines' own counters (kept by each pipeline as atomics,
    /// copied here as Prometheus counters) just before a scrape.
    fn read(&self, state: &MetricsState) {
        use metrics::{counter, gauge};
        metrics::with_local_recorder(&self.recorder, || {
            let gateway = &state.gateway;
            // Sessions with a service loop are in the hub; parked ones are not.
            let parked = state.sessions.parked();
            gauge!("switchboard_sessions").set((gateway.hub().session_count() + parked) as f64);
            gauge!("switchboard_sessions_parked").set(parked as f64);
            gauge!("switchboard_calls_in_flight").set(gateway.in_flight() as f64);
            counter!("switchboard_direct_requests_total").absolute(state.mcp.direct_requests());
            if let Some(audit) = &state.audit {
                let stats = audit.stats();
                gauge!("switchboard_audit_backlog").set(stats.backlog as f64);
                counter!("switchboard_audit_written_total").absolute(stats.written);
                counter!("switchboard_audit_write_errors_total").absolute(stats.write_errors);
            }
            if let Some(meter) = &state.meter {
                let stats = meter.stats();
                gauge!("switchboard_usage_pending_cells").set(stats.pending_cells as f64);
                counter!("switchboard_usage_written_cells_total").absolute(stats.written_cells);
                counter!("switchboard_usage_write_errors_total").absolute(stats.write_errors);
            }
            let limits = state.limiter.stats();
            counter!("switchboard_rate_limited_total").absolute(limits.refused);
            counter!("switchboard_rate_limit_store_calls_total").absolute(limits.redis_calls);
            counter!("switchboard_rate_limit_store_errors_total").absolute(limits.redis_errors);
            counter!("switchboard_rate_limit_local_fallbacks_total")
                .absolute(limits.local_fallbacks);
            if let Some(traces) = &state.traces {
                let stats = traces.stats();
                let read =
                    |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
                counter!("switchboard_spans_exported_total").absolute(read(&stats.exported));
                counter!("switchboard_spans_dropped_total").absolute(read(&stats.dropped));
                counter!("switchboard_span_exports_failed_total")
                    .absolute(read(&stats.failed_exports));
            }
        });
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }
}

/// What `/metrics` needs.
#[derive(Clone)]
pub struct MetricsState {
    pub metrics: Arc<Metrics>,
    pub gateway: Arc<Gateway>,
    pub audit: Option<Arc<AuditLog>>,
    pub limiter: Arc<Limiter>,
    pub meter: Option<Arc<Meter>>,
    pub traces: Option<Arc<crate::traces::SpanExporter>>,
    /// The Streamable HTTP sessions, for the count of parked ones.
    pub sessions: switchboard_mcp::downstream::streamable::SessionLimit,
    /// `/mcp`, for the count of requests its direct path served.
    pub mcp: Arc<switchboard_mcp::downstream::streamable::McpService>,
    pub token: Option<Arc<SecretString>>,
}

/// `GET /metrics`.
pub async fn scrape(State(state): State<MetricsState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let expected = token.expose_secret().as_bytes();
        if !bool::from(presented.as_bytes().ct_eq(expected)) {
            let mut response = (
                StatusCode::UNAUTHORIZED,
                "metrics need `Authorization: Bearer <metrics.token>`\n",
            )
                .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"metrics\""),
            );
            return response;
        }
    }
    state.metrics.read(&state);
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_sets_are_capped() {
        let metrics = Metrics::new(2);
        metrics.call("acme", "git", "tool", "log", true, 0.001);
        metrics.call("acme", "git", "tool", "diff", false, 0.002);
        metrics.call("acme", "git", "tool", "blame", true, 0.003);
        metrics.call("acme", "git", "tool", "log", true, 0.001);
        let text = metrics.render();
        assert!(text.contains("name=\"log\""), "{text}");
        assert!(text.contains("name=\"_other\""), "{text}");
        assert!(!text.contains("name=\"blame\""), "{text}");
    }
}
