//! A header-capturing HTTP upstream: the demo server over Streamable HTTP, recording every
//! request it receives (headers, URI, body) so tests can check what the gateway sent.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// One request the upstream received.
pub struct Received {
    pub auth: String,
    pub uri: String,
    pub body: String,
    pub headers: http::HeaderMap,
}

pub type Seen = Arc<Mutex<Vec<Received>>>;

async fn capture(State(seen): State<Seen>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    seen.lock().unwrap().push(Received {
        auth,
        uri: parts.uri.to_string(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        headers: parts.headers.clone(),
    });
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The demo upstream over Streamable HTTP, recording every request it gets.
pub async fn capturing_upstream() -> (String, Seen, tokio_util::sync::CancellationToken) {
    capturing(switchboard_server::demo::DemoServer::default()).await
}

/// `demo` over Streamable HTTP, recording every request it gets.
pub async fn capturing(
    demo: switchboard_server::demo::DemoServer,
) -> (String, Seen, tokio_util::sync::CancellationToken) {
    let seen: Seen = Arc::default();
    let layer = axum::middleware::from_fn_with_state(seen.clone(), capture);
    let (url, stop) = super::serve_http(demo, |app| app.layer(layer)).await;
    (url, seen, stop)
}

/// The Authorization header and URI of the request whose body carried `marker`.
pub fn seen_with(seen: &Seen, marker: &str) -> (String, String) {
    let seen = seen.lock().unwrap();
    let r = seen
        .iter()
        .find(|r| r.body.contains(marker))
        .unwrap_or_else(|| panic!("no upstream request carried {marker:?}"));
    (r.auth.clone(), r.uri.clone())
}

/// True when some request the upstream received carried `marker`.
pub fn reached(seen: &Seen, marker: &str) -> bool {
    seen.lock().unwrap().iter().any(|r| r.body.contains(marker))
}
