//! The one shape of a refusal at the HTTP edge: a status and a JSON-RPC error object
//! (`id: null`, since the request was not read), so MCP clients surface the message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

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
pub fn unavailable(code: i32, message: &str) -> Response {
    let mut response = jsonrpc_error(StatusCode::SERVICE_UNAVAILABLE, code, message, None);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
