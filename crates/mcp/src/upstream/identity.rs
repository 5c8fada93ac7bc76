//! Signed identity headers to HTTP upstreams (`identity_key` in a definition).
//!
//! Every request the gateway sends to such an upstream carries who it is for:
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
//! nor moved to another body. The caller travels from the downstream request to the HTTP
//! client in the upstream request's extensions (never serialized), so a shared connection
//! still signs each request for its own caller.

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

/// reqwest with identity headers on every POST.
#[derive(Clone)]
pub(crate) struct SignedClient {
    pub inner: reqwest::Client,
    pub key: Arc<[u8]>,
}

impl SignedClient {
    fn with_identity(
        &self,
        message: &ClientJsonRpcMessage,
        mut headers: HashMap<HeaderName, HeaderValue>,
    ) -> HashMap<HeaderName, HeaderValue> {
        headers.extend(signed_headers(&self.key, message));
        headers
    }
}

impl StreamableHttpClient for SignedClient {
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
        let headers = self.with_identity(&message, custom_headers);
        self.inner
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                headers,
                max_sse_event_size,
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
        let headers = self.with_identity(&message, custom_headers);
        self.inner
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                headers,
                limits,
            )
            .await
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
