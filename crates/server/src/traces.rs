//! OpenTelemetry span export over OTLP/HTTP (JSON encoding), when `[traces] otlp_endpoint`
//! is set.
//!
//! Each sampled call (see `switchboard_mcp::span`) becomes one `SERVER` span — named
//! `{method} {name}`, with the tenant, server, item, principal, client address, outcome and
//! JSON-RPC error code as attributes, never arguments or secrets — continuing the client's
//! trace and parenting the upstream's. Spans queue in memory (bounded: beyond
//! `max_queue` they are dropped and counted, as telemetry may be under overload; the audit
//! log is what never drops) and one task posts them in batches of up to 512, at least every
//! `batch_ms`, and once more at shutdown.
//!
//! Written here rather than with `opentelemetry-otlp`: the gateway produces one kind of span
//! from its own call record, and the OTLP/HTTP JSON encoding is a small documented format,
//! whereas the SDK would bring a second HTTP stack (tonic/prost or another reqwest) into
//! the build for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use switchboard_domain::names::recorded_message;
use switchboard_mcp::caller::CallRecord;
use switchboard_mcp::span::hex;
use tokio::sync::{mpsc, oneshot};

use crate::config::TracesSection;

/// Most spans in one export request.
const BATCH: usize = 512;

enum Message {
    Span(Value),
    Flush(oneshot::Sender<()>),
}

/// Counters of the exporter.
#[derive(Debug, Default)]
pub struct TraceStats {
    pub exported: AtomicU64,
    pub dropped: AtomicU64,
    pub failed_exports: AtomicU64,
}

/// The span exporter: hands spans to its task.
pub struct SpanExporter {
    queue: mpsc::Sender<Message>,
    stats: Arc<TraceStats>,
}

fn string(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

fn nanos(at: SystemTime) -> String {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
        .to_string()
}

/// The OTLP/JSON span of a call record, if it has a span.
pub fn span_of(r: &CallRecord<'_>) -> Option<Value> {
    let span = r.span?;
    let method = match r.kind {
        switchboard_domain::tenancy::ItemKind::Tool => "tools/call",
        switchboard_domain::tenancy::ItemKind::Prompt => "prompts/get",
        switchboard_domain::tenancy::ItemKind::Resource => "resources/read",
    };
    let mut attributes = vec![
        string("mcp.method.name", method),
        string("switchboard.tenant", r.principal.tenant.as_str()),
        string("switchboard.server", r.server),
        string("enduser.id", &r.principal.identity.to_string()),
        string(
            match r.kind {
                switchboard_domain::tenancy::ItemKind::Tool => "gen_ai.tool.name",
                switchboard_domain::tenancy::ItemKind::Prompt => "mcp.prompt.name",
                switchboard_domain::tenancy::ItemKind::Resource => "mcp.resource.uri",
            },
            r.name,
        ),
        json!({"key": "switchboard.reached_upstream", "value": {"boolValue": r.reached}}),
    ];
    if let Some(ip) = r.client.ip {
        attributes.push(string("client.address", &ip.to_string()));
    }
    if let Some(agent) = &r.client.user_agent {
        attributes.push(string("user_agent.original", agent));
    }
    let status = match (r.error, r.tool_error) {
        (Some(error), _) => {
            attributes.push(json!({"key": "rpc.jsonrpc.error_code", "value": {"intValue": error.code.0.to_string()}}));
            json!({"code": 2, "message": recorded_message(&error.message)})
        }
        (None, true) => json!({"code": 2, "message": "the tool reported an error"}),
        (None, false) => json!({"code": 1}),
    };
    let end = span.start + r.latency;
    let mut value = json!({
        "traceId": hex(&span.trace_id),
        "spanId": hex(&span.span_id),
        "name": format!("{method} {}", r.name),
        "kind": 2,
        "startTimeUnixNano": nanos(span.start),
        "endTimeUnixNano": nanos(end),
        "attributes": attributes,
        "status": status,
    });
    if let Some(parent) = &span.parent_span_id {
        value["parentSpanId"] = json!(hex(parent));
    }
    if let Some(state) = &span.tracestate {
        value["traceState"] = json!(state);
    }
    Some(value)
}

impl SpanExporter {
    /// Starts the export task, or `None` when no endpoint is configured.
    pub fn start(config: &TracesSection) -> anyhow::Result<Option<Arc<SpanExporter>>> {
        let Some(endpoint) = &config.otlp_endpoint else {
            return Ok(None);
        };
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &config.headers {
            headers.insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes())?,
                reqwest::header::HeaderValue::from_str(value)?,
            );
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_secs(10))
            .build()?;
        let (queue, rx) = mpsc::channel(config.max_queue);
        let stats = Arc::new(TraceStats::default());
        let resource = json!({"attributes": [string("service.name", &config.service_name),
            string("service.version", env!("CARGO_PKG_VERSION"))]});
        tokio::spawn(export(
            rx,
            http,
            url,
            resource,
            Duration::from_millis(config.batch_ms),
            stats.clone(),
        ));
        tracing::info!(endpoint = %endpoint, "exporting spans over OTLP/HTTP");
        Ok(Some(Arc::new(SpanExporter { queue, stats })))
    }

    /// Queues the span of a call record (if it has one); never waits.
    pub fn record(&self, r: &CallRecord<'_>) {
        let Some(span) = span_of(r) else {
            return;
        };
        if self.queue.try_send(Message::Span(span)).is_err() {
            let dropped = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped == 1 || dropped.is_multiple_of(1000) {
                tracing::warn!(
                    dropped,
                    "the span queue is full ([traces] max_queue); spans dropped"
                );
            }
        }
    }

    /// Exports everything queued so far (shutdown).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(15), wait).await;
        }
    }

    pub fn stats(&self) -> &TraceStats {
        &self.stats
    }
}

async fn export(
    mut rx: mpsc::Receiver<Message>,
    http: reqwest::Client,
    url: String,
    resource: Value,
    every: Duration,
    stats: Arc<TraceStats>,
) {
    let mut batch: Vec<Value> = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let flushed = tokio::select! {
            message = rx.recv() => match message {
                Some(Message::Span(span)) => {
                    batch.push(span);
                    if batch.len() < BATCH {
                        continue;
                    }
                    None
                }
                Some(Message::Flush(done)) => Some(done),
                None => {
                    send(&http, &url, &resource, &mut batch, &stats).await;
                    return;
                }
            },
            _ = tick.tick() => None,
        };
        send(&http, &url, &resource, &mut batch, &stats).await;
        if let Some(done) = flushed {
            let _ = done.send(());
        }
    }
}

async fn send(
    http: &reqwest::Client,
    url: &str,
    resource: &Value,
    batch: &mut Vec<Value>,
    stats: &TraceStats,
) {
    if batch.is_empty() {
        return;
    }
    let spans = std::mem::take(batch);
    let count = spans.len() as u64;
    let body = json!({"resourceSpans": [{
        "resource": resource,
        "scopeSpans": [{"scope": {"name": "switchboard", "version": env!("CARGO_PKG_VERSION")}, "spans": spans}],
    }]});
    let outcome = http.post(url).json(&body).send().await;
    match outcome {
        Ok(response) if response.status().is_success() => {
            stats.exported.fetch_add(count, Ordering::Relaxed);
        }
        Ok(response) => {
            stats.failed_exports.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(status = %response.status(), spans = count, "the OTLP collector refused spans; they are dropped");
        }
        Err(err) => {
            stats.failed_exports.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %err, spans = count, "cannot reach the OTLP collector; spans dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rmcp::model::ErrorData;
    use switchboard_domain::names::MAX_RECORDED_MESSAGE;
    use switchboard_domain::tenancy::{ItemKind, Principal, Reason};
    use switchboard_mcp::caller::ClientFacts;
    use switchboard_mcp::span::CallSpan;

    use super::*;

    #[test]
    fn a_failed_calls_span_carries_a_bounded_message() {
        let principal = Principal::anonymous();
        let client = ClientFacts::default();
        let span = CallSpan::start(None, 1.0).expect("sampled");
        let error = ErrorData::internal_error("é".repeat(100_000), None);
        let record = CallRecord {
            principal: &principal,
            kind: ItemKind::Resource,
            server: "demo",
            name: "demo://x",
            reason: &Reason::TenantAdmin,
            arguments_digest: None,
            error: Some(&error),
            tool_error: false,
            latency: Duration::from_millis(1),
            client: &client,
            reached: true,
            bytes_in: 0,
            bytes_out: 0,
            span: Some(&span),
        };
        let span = span_of(&record).expect("a span");
        let message = span["status"]["message"].as_str().unwrap();
        assert_eq!(message.chars().count(), MAX_RECORDED_MESSAGE);
        assert_eq!(span["status"]["code"], 2);
    }
}
