//! Refusals at the HTTP edge (rate limits, a full audit backlog), in the shape of the
//! endpoint: a JSON-RPC error object (`id: null`, since the request was not read) for MCP
//! clients, or the admin API's `{"error": {"code", "message"}}` under `/admin/v1`.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// How refusals are written for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Shape {
    #[default]
    JsonRpc,
    Admin,
}

impl Shape {
    /// The shape a request was marked with ([`admin_shape`]), JSON-RPC otherwise.
    pub fn of(request: &Request) -> Shape {
        request
            .extensions()
            .get::<Shape>()
            .copied()
            .unwrap_or_default()
    }
}

/// Marks requests of the admin API, so the edge layers refuse them in its shape.
pub async fn admin_shape(mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(Shape::Admin);
    next.run(request).await
}

/// `status` with `message` in the request's shape: JSON-RPC `code` and `data`, or the admin
/// API's code for the status.
pub fn refusal(
    shape: Shape,
    status: StatusCode,
    code: i32,
    message: &str,
    data: Option<Value>,
) -> Response {
    match shape {
        Shape::JsonRpc => jsonrpc_error(status, code, message, data),
        Shape::Admin => {
            let admin_code = match status {
                StatusCode::TOO_MANY_REQUESTS => "rate_limited",
                StatusCode::SERVICE_UNAVAILABLE => "unavailable",
                _ => "refused",
            };
            let body = json!({"error": {"code": admin_code, "message": message}});
            (status, axum::Json(body)).into_response()
        }
    }
}

/// `status` with a JSON-RPC error body of `code`, `message` and optional `data`.
pub fn jsonrpc_error(
    status: StatusCode,
    code: i32,
    message: &str,
    data: Option<Value>,
) -> Response {
    let mut error = json!({"code": code, "message": message});
    if let Some(data) = data {
        error["data"] = data;
    }
    let body = json!({"jsonrpc": "2.0", "id": null, "error": error});
    (status, axum::Json(body)).into_response()
}

/// A 503 that asks the client to retry after a second.
pub fn unavailable(shape: Shape, code: i32, message: &str) -> Response {
    let mut response = refusal(shape, StatusCode::SERVICE_UNAVAILABLE, code, message, None);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
