//! Client side of the legacy HTTP+SSE transport (protocol 2024-11-05).
//!
//! rmcp 3.11 dropped this transport, but real upstreams (and the seeds) still use it, so it is
//! written here: `GET {url}` opens an event stream whose first `endpoint` event names the URL
//! to `POST` messages to; every later `message` event carries one JSON-RPC message. The result
//! is a `(Sink, Stream)` pair that rmcp accepts as a transport.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use sse_stream::SseStream;
use tokio_util::sync::CancellationToken;

/// Longest single SSE event accepted from an upstream.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Why a legacy SSE connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SseConnectError {
    #[error("GET {url} failed: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url} answered HTTP {status}; expected 200 with an event stream")]
    Status { url: String, status: u16 },
    #[error("the event stream closed before its `endpoint` event")]
    NoEndpoint,
    #[error("the `endpoint` event named {0:?}, which is not a valid URL")]
    BadEndpoint(String),
    #[error("the `endpoint` event points to another origin ({0}); refusing to post there")]
    ForeignEndpoint(String),
}

/// The two halves handed to rmcp.
pub type SseTransport = (
    mpsc::Sender<ClientJsonRpcMessage>,
    mpsc::Receiver<ServerJsonRpcMessage>,
);

/// Opens a legacy SSE connection; the background tasks stop when `ct` is cancelled or either
/// side of the connection fails.
pub async fn connect(
    http: reqwest::Client,
    url: &str,
    headers: &BTreeMap<String, String>,
    identity_key: Option<std::sync::Arc<[u8]>>,
    ct: CancellationToken,
) -> Result<SseTransport, SseConnectError> {
    let mut get = http.get(url).header("accept", "text/event-stream");
    for (k, v) in headers {
        get = get.header(k, v);
    }
    let response = get
        .send()
        .await
        .map_err(|source| SseConnectError::Request {
            url: url.to_owned(),
            source,
        })?;
    if !response.status().is_success() {
        return Err(SseConnectError::Status {
            url: url.to_owned(),
            status: response.status().as_u16(),
        });
    }
    let base = response.url().clone();
    let mut events = SseStream::from_bytes_stream(response.bytes_stream());
    let endpoint = loop {
        match events.next().await {
            Some(Ok(event)) if event.event.as_deref() == Some("endpoint") => {
                let data = event.data.unwrap_or_default();
                let endpoint = base
                    .join(data.trim())
                    .map_err(|_| SseConnectError::BadEndpoint(data.clone()))?;
                if endpoint.origin() != base.origin() {
                    return Err(SseConnectError::ForeignEndpoint(endpoint.to_string()));
                }
                break endpoint;
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(SseConnectError::NoEndpoint),
        }
    };

    let (in_tx, in_rx) = mpsc::channel::<ServerJsonRpcMessage>(64);
    let (out_tx, mut out_rx) = mpsc::channel::<ClientJsonRpcMessage>(64);

    // Reader: events → rmcp. Ends (closing the transport) on EOF, error or cancellation.
    let reader_ct = ct.clone();
    tokio::spawn(async move {
        let mut in_tx = in_tx;
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                _ = reader_ct.cancelled() => break,
            };
            match event {
                Some(Ok(event)) => {
                    let is_message = matches!(event.event.as_deref(), None | Some("message"));
                    let Some(data) = event.data.filter(|_| is_message) else {
                        continue;
                    };
                    if data.len() > MAX_EVENT_BYTES {
                        tracing::warn!(
                            bytes = data.len(),
                            "dropping oversize SSE event from upstream; closing"
                        );
                        break;
                    }
                    match serde_json::from_str::<ServerJsonRpcMessage>(&data) {
                        Ok(message) => {
                            if in_tx.send(message).await.is_err() {
                                break;
                            }
                        }
                        Err(err) => {
                            tracing::warn!(%err, "upstream sent an SSE message that is not JSON-RPC");
                        }
                    }
                }
                Some(Err(err)) => {
                    tracing::info!(%err, "upstream SSE stream failed");
                    break;
                }
                None => break,
            }
        }
        reader_ct.cancel();
    });

    // Writer: rmcp → POSTs, in order (the protocol relies on initialize preceding initialized).
    let headers = headers.clone();
    tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                message = out_rx.next() => message,
                _ = ct.cancelled() => break,
            };
            let Some(message) = message else { break };
            let mut post = http
                .post(endpoint.clone())
                .timeout(Duration::from_secs(30))
                .json(&message);
            for (k, v) in &headers {
                post = post.header(k, v);
            }
            for (k, v) in super::headers::request_headers(identity_key.as_deref(), &message) {
                post = post.header(k, v);
            }
            match post.send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    tracing::warn!(
                        status = r.status().as_u16(),
                        "upstream refused a posted message; closing"
                    );
                    break;
                }
                Err(err) => {
                    tracing::warn!(%err, "posting to upstream failed; closing");
                    break;
                }
            }
        }
        ct.cancel();
    });

    Ok((out_tx, in_rx))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::routing::{get, post};
    use rmcp::model::{ClientRequest, JsonRpcRequest, PingRequest, RequestId};

    use super::*;
    use crate::caller::Caller;

    #[tokio::test]
    async fn posted_messages_carry_signed_identity_headers() {
        crate::install_crypto_provider();
        let seen: Arc<Mutex<Vec<http::HeaderMap>>> = Arc::default();
        let record = seen.clone();
        let app = axum::Router::new()
            .route(
                "/sse",
                get(|| async {
                    let body = futures::stream::once(async {
                        Ok::<_, std::io::Error>("event: endpoint\ndata: /messages\n\n")
                    })
                    .chain(futures::stream::pending());
                    (
                        [("content-type", "text/event-stream")],
                        axum::body::Body::from_stream(body),
                    )
                }),
            )
            .route(
                "/messages",
                post(move |headers: http::HeaderMap| {
                    record.lock().unwrap().push(headers);
                    async { http::StatusCode::ACCEPTED }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let ct = CancellationToken::new();
        let key: Arc<[u8]> = Arc::from(&b"k-0123456789abcdef0123456789abcdef"[..]);
        let (mut out, _in) = connect(
            reqwest::Client::new(),
            &format!("http://{addr}/sse"),
            &BTreeMap::new(),
            Some(key),
            ct.clone(),
        )
        .await
        .unwrap();
        let mut request = ClientRequest::PingRequest(PingRequest::default());
        super::super::headers::attach(&mut request, &Caller::open());
        out.send(ClientJsonRpcMessage::Request(JsonRpcRequest::new(
            RequestId::Number(1),
            request,
        )))
        .await
        .unwrap();
        let mut headers = None;
        for _ in 0..100 {
            if let Some(h) = seen.lock().unwrap().first().cloned() {
                headers = Some(h);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ct.cancel();
        let headers = headers.expect("the message was posted");
        assert_eq!(headers["x-switchboard-tenant"], "default");
        assert_eq!(headers["x-switchboard-user"], "anonymous");
        let signature = headers["x-switchboard-signature"].to_str().unwrap();
        assert!(
            signature.starts_with("v1=") && signature.len() == 67,
            "{signature}"
        );
    }
}
