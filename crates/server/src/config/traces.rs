//! `[traces]`: OpenTelemetry span export over OTLP/HTTP.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ConfigError;

/// `[traces]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracesSection {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`; spans go to
    /// `{endpoint}/v1/traces`). Unset: no span export. `OTEL_EXPORTER_OTLP_ENDPOINT` is read
    /// when this is not set.
    pub otlp_endpoint: Option<String>,
    /// Headers sent with every export (a collector's API key, say).
    pub headers: BTreeMap<String, String>,
    /// Share of calls without a client trace that get a span (0–1); a client's sampled
    /// `traceparent` is always followed.
    pub sample_ratio: f64,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Spans waiting for export at most; beyond it new spans are dropped and counted.
    pub max_queue: usize,
    /// Export at least this often (milliseconds), or when 512 spans are waiting.
    pub batch_ms: u64,
}

impl Default for TracesSection {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            headers: BTreeMap::new(),
            sample_ratio: 1.0,
            service_name: "switchboard".into(),
            max_queue: 4096,
            batch_ms: 1000,
        }
    }
}

impl TracesSection {
    pub(super) fn check(&mut self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: format!("traces.{key}"),
            message,
        };
        if self.otlp_endpoint.is_none() {
            self.otlp_endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
                .ok()
                .filter(|v| !v.trim().is_empty());
        }
        if let Some(url) = &self.otlp_endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                "otlp_endpoint",
                format!(
                    "{url:?} is not an http:// or https:// URL, e.g. \"http://127.0.0.1:4318\""
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(invalid("sample_ratio", "must be between 0 and 1".into()));
        }
        if self.max_queue == 0 || self.batch_ms == 0 {
            return Err(invalid(
                "max_queue",
                "max_queue and batch_ms must be greater than 0".into(),
            ));
        }
        for (name, value) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(value).is_err()
            {
                return Err(invalid(
                    "headers",
                    format!("{name:?} is not a valid header"),
                ));
            }
        }
        Ok(())
    }
}
