//! Per-request headers to HTTP upstreams: the client's W3C trace context, and signed identity
//! headers (`identity_key` in a definition).
//!
//! **Trace context.** A client's `traceparent` (and `tracestate`) header is passed on to the
//! upstream — as HTTP headers on HTTP transports and in `_meta` on every transport — so the
//! upstream's spans join the client's trace; with span export on, the `traceparent` names
//! the gateway's own span of the call as the parent (see [`crate::span`]). A malformed
//! `traceparent` is not forwarded.
//!
//! **Identity.** Every request the gateway sends to an upstream with `identity_key` carries
//! who it is for:
//!
//! ```text
//! X-Switchboard-Tenant: acme
//! X-Switchboard-User: user:ada@acme.com        (client:<id>, anonymous; empty: the gateway's own request)
//! X-Switchboard-Groups: eng,ops
//! X-Switchboard-Timestamp: 1764547200           (Unix seconds)
//! X-Switchboard-Signature: v1=<hex HMAC-SHA256(identity_key, "v1\n{timestamp}\n{tenant}\n{user}\n{groups}\n{hex SHA-256 of the body}")>
//! ```
//!
//! The upstream recomputes the HMAC over the raw body it received, compares in constant
//! time and checks the timestamp is recent: the headers cannot be forged without the key,
//! nor moved to another body.
//!
//! Both travel from the downstream request to the HTTP client in the upstream request's
//! extensions (never serialized), so a shared connection still sends each request's own.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, GetExtensions, JsonRpcMessage};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use sha2::{Digest, Sha256};
use sse_stream::Sse;

use crate::caller::Caller;

/// Who an upstream request is for, as the headers say it.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallerIdentity {
    tenant: String,
    user: String,
    groups: String,
}

impl CallerIdentity {
    fn of(caller: &Caller) -> Self {
        let principal = &caller.principal;
        Self {
            tenant: principal.tenant.to_string(),
            user: principal.identity.to_string(),
            groups: principal
                .groups
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// The W3C trace context of the downstream request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TraceContext {
    traceparent: String,
    tracestate: Option<String>,
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, ids not all zero (version 00).
fn valid_traceparent(value: &str) -> bool {
    crate::span::parse_traceparent(value).is_some()
}

impl TraceContext {
    /// The trace context of a downstream HTTP request, when it carries a valid one.
    pub(crate) fn from_headers(headers: &http::HeaderMap) -> Option<Self> {
        let traceparent = headers.get("traceparent")?.to_str().ok()?.trim();
        if !valid_traceparent(traceparent) {
            return None;
        }
        let tracestate = headers
            .get("tracestate")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 512)
            .map(str::to_owned);
        Some(Self {
            traceparent: traceparent.to_owned(),
            tracestate,
        })
    }

    /// The context an upstream gets under the gateway's span `span`.
    pub(crate) fn for_span(span: &crate::span::CallSpan) -> Self {
        Self {
            traceparent: span.traceparent(),
            tracestate: span.tracestate.clone(),
        }
    }

    /// Writes it into a request's `_meta` (SEP-414 keys).
    pub(crate) fn add_to_meta(&self, meta: &mut rmcp::model::RequestMetaObject) {
        meta.set_traceparent(self.traceparent.clone());
        if let Some(state) = &self.tracestate {
            meta.set_tracestate(state.clone());
        }
    }

    fn headers(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        let parent = HeaderValue::from_str(&self.traceparent).ok();
        let state = self
            .tracestate
            .as_deref()
            .and_then(|s| HeaderValue::from_str(s).ok());
        parent
            .map(|v| (HeaderName::from_static("traceparent"), v))
            .into_iter()
            .chain(state.map(|v| (HeaderName::from_static("tracestate"), v)))
    }
}

/// The per-request headers of one message: its trace context, and with `identity_key` its
/// signed identity.
pub(crate) fn request_headers(
    identity_key: Option<&[u8]>,
    message: &ClientJsonRpcMessage,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::new();
    if let JsonRpcMessage::Request(r) = message
        && let Some(trace) = r.request.extensions().get::<Arc<TraceContext>>()
    {
        headers.extend(trace.headers());
    }
    if let Some(key) = identity_key {
        headers.extend(signed_headers(key, message));
    }
    headers
}

/// Marks `request` as sent for `caller` (read back by [`signed_headers`]).
pub(crate) fn attach(request: &mut ClientRequest, caller: &Caller) {
    request
        .extensions_mut()
        .insert(Arc::new(CallerIdentity::of(caller)));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The identity headers of one message (its caller, or the gateway's own when none).
pub(crate) fn signed_headers(
    key: &[u8],
    message: &ClientJsonRpcMessage,
) -> Vec<(HeaderName, HeaderValue)> {
    let identity = match message {
        JsonRpcMessage::Request(r) => r.request.extensions().get::<Arc<CallerIdentity>>().cloned(),
        _ => None,
    }
    .unwrap_or_default();
    let body = serde_json::to_vec(message).unwrap_or_default();
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .to_string();
    let signature = sign(key, &timestamp, &identity, &body);
    let value = |text: &str| {
        // Ids are validated ASCII; anything else would be refused by the header type.
        HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
    };
    vec![
        (
            HeaderName::from_static("x-switchboard-tenant"),
            value(&identity.tenant),
        ),
        (
            HeaderName::from_static("x-switchboard-user"),
            value(&identity.user),
        ),
        (
            HeaderName::from_static("x-switchboard-groups"),
            value(&identity.groups),
        ),
        (
            HeaderName::from_static("x-switchboard-timestamp"),
            value(&timestamp),
        ),
        (
            HeaderName::from_static("x-switchboard-signature"),
            value(&format!("v1={signature}")),
        ),
    ]
}

fn sign(key: &[u8], timestamp: &str, identity: &CallerIdentity, body: &[u8]) -> String {
    let payload = format!(
        "v1\n{timestamp}\n{}\n{}\n{}\n{}",
        identity.tenant,
        identity.user,
        identity.groups,
        hex(&Sha256::digest(body))
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    hex(ring::hmac::sign(&key, payload.as_bytes()).as_ref())
}

/// reqwest with each request's own headers (trace context, signed identity) on every POST.
#[derive(Clone)]
pub(crate) struct UpstreamHttp {
    pub inner: reqwest::Client,
    pub identity_key: Option<Arc<[u8]>>,
    /// Notes the session and headers of rmcp's POSTs for the direct path (see
    /// [`super::direct`]); `None` on the direct path's own client.
    pub recorder: Option<Arc<super::direct::Recorder>>,
}

impl UpstreamHttp {
    fn with_request_headers(
        &self,
        message: &ClientJsonRpcMessage,
        mut headers: HashMap<HeaderName, HeaderValue>,
    ) -> HashMap<HeaderName, HeaderValue> {
        headers.extend(request_headers(self.identity_key.as_deref(), message));
        headers
    }
}

impl StreamableHttpClient for UpstreamHttp {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            StreamableHttpResponseLimits::default(),
        )
        .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let mut limits = StreamableHttpResponseLimits::default();
        limits.max_sse_event_size = max_sse_event_size;
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            limits,
        )
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let noted = self.recorder.as_ref().and_then(|recorder| {
            recorder.note(
                &message,
                session_id.as_ref(),
                auth_header.as_ref(),
                &custom_headers,
            )
        });
        let headers = self.with_request_headers(&message, custom_headers);
        let sent = self
            .inner
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                headers,
                limits,
            )
            .await;
        if let (Some(recorder), Some(noted), Ok(_)) = (&self.recorder, noted, &sent) {
            recorder.keep(noted);
        }
        sent
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        self.inner
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.inner
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.inner
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_trace_parents_are_passed_on() {
        let of = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("traceparent", value.parse().unwrap());
            TraceContext::from_headers(&headers)
        };
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(of(good).unwrap().traceparent, good);
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "garbage",
        ] {
            assert!(of(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_signature_covers_identity_and_body() {
        let who = CallerIdentity {
            tenant: "acme".into(),
            user: "user:ada@acme.com".into(),
            groups: "eng".into(),
        };
        let base = sign(b"k", "100", &who, b"{}");
        assert_eq!(base.len(), 64);
        assert_eq!(base, sign(b"k", "100", &who, b"{}"));
        assert_ne!(base, sign(b"k", "101", &who, b"{}"));
        assert_ne!(base, sign(b"k", "100", &who, b"{ }"));
        assert_ne!(base, sign(b"other", "100", &who, b"{}"));
        let globex = CallerIdentity {
            tenant: "globex".into(),
            ..who.clone()
        };
        assert_ne!(base, sign(b"k", "100", &globex, b"{}"));
    }
}
