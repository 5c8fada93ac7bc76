//! What rmcp's worker negotiated for a connection (its session, its headers), noted from
//! rmcp's own POSTs so the direct path sends alike.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use http::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest};

use super::sep2243::per_message;

/// What rmcp's worker sent with its last POST after the handshake. Not `Debug`: the
/// headers can hold the upstream's credentials.
#[derive(PartialEq)]
pub(crate) struct Negotiated {
    pub(super) session_id: Option<Arc<str>>,
    pub(super) auth_header: Option<String>,
    /// The connection's headers (configured ones and `MCP-Protocol-Version`), without the
    /// per-message ones (`Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`).
    pub(super) headers: HashMap<HeaderName, HeaderValue>,
}

/// Notes what rmcp's worker sends, for the direct path to send alike.
#[derive(Default)]
pub(crate) struct Recorder(ArcSwapOption<Negotiated>);

impl Recorder {
    /// What a POST of rmcp's worker is sent with, to keep (with [`Recorder::keep`]) once
    /// the upstream accepted it; `None` for the handshake.
    pub(crate) fn note(
        &self,
        message: &ClientJsonRpcMessage,
        session_id: Option<&Arc<str>>,
        auth_header: Option<&String>,
        headers: &HashMap<HeaderName, HeaderValue>,
    ) -> Option<Negotiated> {
        // The handshake goes out before there is a session or a version to send with.
        if let ClientJsonRpcMessage::Request(r) = message
            && matches!(
                r.request,
                ClientRequest::InitializeRequest(_) | ClientRequest::DiscoverRequest(_)
            )
        {
            return None;
        }
        Some(Negotiated {
            session_id: session_id.cloned(),
            auth_header: auth_header.cloned(),
            headers: headers
                .iter()
                .filter(|(name, _)| !per_message(name))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        })
    }

    /// Keeps what a POST the upstream accepted was sent with: a session rmcp tried and the
    /// upstream refused (a failed re-initialization) is never used.
    pub(crate) fn keep(&self, next: Negotiated) {
        if self.0.load().as_deref() != Some(&next) {
            self.0.store(Some(Arc::new(next)));
        }
    }

    pub(super) fn current(&self) -> Option<Arc<Negotiated>> {
        self.0.load_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{CallToolRequest, CallToolRequestParams, PingRequest, RequestId};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HashMap<HeaderName, HeaderValue> {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    fn call(name: &str) -> ClientJsonRpcMessage {
        let request = ClientRequest::from(CallToolRequest::new(CallToolRequestParams::new(
            name.to_owned(),
        )));
        ClientJsonRpcMessage::request(request, RequestId::Number(1))
    }

    fn record(
        recorder: &Recorder,
        message: &ClientJsonRpcMessage,
        session_id: Option<&Arc<str>>,
        auth_header: Option<&String>,
        headers: &HashMap<HeaderName, HeaderValue>,
    ) {
        if let Some(noted) = recorder.note(message, session_id, auth_header, headers) {
            recorder.keep(noted);
        }
    }

    #[test]
    fn the_recorder_keeps_the_connection_headers_not_the_per_message_ones() {
        let recorder = Recorder::default();
        let session: Arc<str> = Arc::from("s-1");
        record(
            &recorder,
            &call("echo"),
            Some(&session),
            None,
            &headers(&[
                ("mcp-protocol-version", "2025-11-25"),
                ("x-api-key", "k"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "echo"),
                ("mcp-param-region", "eu"),
            ]),
        );
        let seen = recorder.current().expect("recorded");
        assert_eq!(seen.session_id.as_deref(), Some("s-1"));
        assert_eq!(
            seen.headers,
            headers(&[("mcp-protocol-version", "2025-11-25"), ("x-api-key", "k")])
        );
        // The same again keeps the same record; a new session replaces it.
        record(
            &recorder,
            &call("echo"),
            Some(&session),
            None,
            &seen.headers.clone(),
        );
        assert!(Arc::ptr_eq(&seen, &recorder.current().unwrap()));
        let renewed: Arc<str> = Arc::from("s-2");
        let ping = ClientJsonRpcMessage::request(
            ClientRequest::from(PingRequest::default()),
            RequestId::Number(2),
        );
        record(
            &recorder,
            &ping,
            Some(&renewed),
            None,
            &seen.headers.clone(),
        );
        assert_eq!(
            recorder.current().unwrap().session_id.as_deref(),
            Some("s-2")
        );
    }

    #[test]
    fn the_handshake_is_not_recorded() {
        let recorder = Recorder::default();
        let init = ClientJsonRpcMessage::request(
            ClientRequest::from(rmcp::model::InitializeRequest::new(
                crate::upstream::client_info(),
            )),
            RequestId::Number(0),
        );
        record(&recorder, &init, None, None, &HashMap::new());
        assert!(recorder.current().is_none());
    }
}
