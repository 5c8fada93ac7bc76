//! DNS-rebinding protection for the endpoints rmcp does not guard itself (legacy SSE).
//!
//! A browser tricked into talking to the gateway sends a foreign `Host` (rebinding) or a
//! foreign `Origin` (cross-site request). Both are refused with 403 before any work is done.
//! `/mcp` gets the same checks from rmcp's `StreamableHttpServerConfig`, configured from the
//! same lists, so every MCP endpoint applies one policy.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The allowed hosts and origins.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
}

fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        // [v6]:port
        if let Some((host, tail)) = rest.split_once(']') {
            return (host, tail.strip_prefix(':'));
        }
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (authority, None),
    }
}

impl OriginPolicy {
    /// True when `host` (a `Host` header value) is allowed.
    pub fn host_allowed(&self, host: &str) -> bool {
        if self.allowed_hosts.is_empty() {
            return true;
        }
        let (name, _) = split_authority(host);
        self.allowed_hosts
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(host) || allowed.eq_ignore_ascii_case(name))
    }

    /// True when `origin` (an `Origin` header value) is allowed.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|allowed| {
            if allowed == origin {
                return true;
            }
            let (Some((a_scheme, a_auth)), Some((o_scheme, o_auth))) =
                (allowed.split_once("://"), origin.split_once("://"))
            else {
                return false;
            };
            if !a_scheme.eq_ignore_ascii_case(o_scheme) {
                return false;
            }
            let (a_host, a_port) = split_authority(a_auth);
            let (o_host, o_port) = split_authority(o_auth);
            a_host.eq_ignore_ascii_case(o_host) && (a_port == Some("*") || a_port == o_port)
        })
    }
}

fn forbidden(message: String) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": -32600, "message": message},
    });
    (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
}

/// Middleware: refuses requests with a disallowed `Host` or `Origin`.
pub async fn check(
    State(policy): State<Arc<OriginPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    if !policy.host_allowed(host) {
        return forbidden(format!(
            "Host {host:?} is not allowed; add it to server.allowed_hosts"
        ));
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !policy.origin_allowed(origin) {
            return forbidden(format!(
                "Origin {origin:?} is not allowed; add it to server.allowed_origins"
            ));
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> OriginPolicy {
        OriginPolicy {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: vec![
                "http://localhost:*".into(),
                "https://app.example.com".into(),
            ],
        }
    }

    #[test]
    fn hosts_match_with_or_without_port() {
        let p = policy();
        assert!(p.host_allowed("localhost:8931"));
        assert!(p.host_allowed("127.0.0.1"));
        assert!(p.host_allowed("[::1]:80"));
        assert!(!p.host_allowed("evil.example:8931"));
        assert!(!p.host_allowed(""));
    }

    #[test]
    fn origins_match_scheme_host_and_port() {
        let p = policy();
        assert!(p.origin_allowed("http://localhost:3000"));
        assert!(p.origin_allowed("https://app.example.com"));
        assert!(!p.origin_allowed("https://localhost:3000"));
        assert!(!p.origin_allowed("http://evil.example"));
        assert!(!p.origin_allowed("null"));
    }
}
