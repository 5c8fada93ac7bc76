//! The authentication layer in front of every MCP endpoint.
//!
//! It gathers what the request presents (path `/t/{tenant}/…`, `X-Tenant-ID`, `Host`,
//! `Authorization: Bearer …`, and — only when the operator enables it, only on the legacy SSE
//! endpoints — `?token=`), asks the authenticator, and either puts the resulting
//! [`Caller`] into the request's extensions or answers the refusal: the right status, an
//! RFC 6750 `WWW-Authenticate` challenge pointing at the RFC 9728 metadata, and a JSON-RPC
//! error whose message says what to fix. Credentials never appear in a log line or a reply.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use switchboard_auth::{AuthError, Authenticated, RequestFacts};
use switchboard_domain::limits::RateLimits;
use switchboard_domain::tenancy::{CredentialKind, IdError, Identity};
use switchboard_governance::Limiter;
use switchboard_mcp::Caller;
use switchboard_mcp::downstream::sse::EndpointQuery;
use switchboard_mcp::error::codes;

use crate::tenancy::Tenancy;

/// State of the layer.
#[derive(Clone)]
pub struct AuthState {
    pub tenancy: Arc<Tenancy>,
    pub limiter: Arc<Limiter>,
    pub public_url: Arc<str>,
    pub sse_query_token: bool,
}

/// `{tenant}` of a `/t/{tenant}/…` path.
pub fn path_tenant(path: &str) -> Option<&str> {
    path.strip_prefix("/t/")?.split('/').next()
}

/// The bearer credential of the `Authorization` header: `Ok(None)` when absent.
fn bearer(request: &Request) -> Result<Option<&str>, AuthError> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::MalformedHeader("it contains non-ASCII characters"))?;
    let (scheme, credential) = value
        .split_once(' ')
        .ok_or(AuthError::MalformedHeader("write `Bearer <credential>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MalformedHeader(
            "only the Bearer scheme is accepted",
        ));
    }
    let credential = credential.trim();
    if credential.is_empty() || credential.len() > 16 * 1024 {
        return Err(AuthError::MalformedHeader(
            "the bearer credential is empty or longer than 16 KiB",
        ));
    }
    Ok(Some(credential))
}

/// `token` of the query string (legacy SSE opt-in).
fn query_token(request: &Request) -> Option<String> {
    let query = request.uri().query()?;
    url_param(query, "token")
}

fn url_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// The TCP peer's address (the server is served with connect info).
pub fn client_ip(request: &Request) -> Option<std::net::IpAddr> {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
}

fn host(request: &Request) -> Option<String> {
    let host = request.headers().get(header::HOST)?.to_str().ok()?;
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    Some(name.to_ascii_lowercase())
}

fn is_sse_path(path: &str) -> bool {
    path.ends_with("/sse") || path.ends_with("/messages")
}

/// The middleware.
pub async fn authenticate(
    State(state): State<Arc<AuthState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let resource = format!("{}{}", state.public_url, path);
    // Refusals decided before authentication are reported like the others.
    let early = |err: AuthError| {
        let facts = RequestFacts {
            resource: &resource,
            ..Default::default()
        };
        state.tenancy.auth.report(&err, &facts);
        refuse(&state, &path, err)
    };
    let via_query = state.sse_query_token && is_sse_path(&path);
    let query = if via_query {
        query_token(&request)
    } else {
        None
    };
    let header_bearer = match bearer(&request) {
        Ok(b) => b.map(str::to_owned),
        Err(err) => return early(err),
    };
    let credential = header_bearer.or(query.clone());
    let host = host(&request);
    let header_tenant = match request.headers().get("x-tenant-id").map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            let err = AuthError::InvalidTenant(IdError::Invalid {
                what: "tenant id",
                shown: "(X-Tenant-ID is not ASCII)".into(),
                rule: "use lowercase letters, digits and single '-', e.g. \"acme\"",
            });
            return early(err);
        }
    };
    let client_ip = client_ip(&request);
    let facts = RequestFacts {
        path_tenant: path_tenant(&path),
        header_tenant,
        host: host.as_deref(),
        bearer: credential.as_deref(),
        resource: &resource,
        client_ip,
    };
    match state.tenancy.auth.authenticate(&facts).await {
        Ok(found) => {
            let caller = caller(&found, &state.limiter, &state.tenancy);
            request.extensions_mut().insert(Arc::new(caller));
            if let Some(token) = query.filter(|_| path.ends_with("/sse")) {
                // A client that authenticates by query must be able to post the same way.
                request
                    .extensions_mut()
                    .insert(EndpointQuery(format!("token={}", percent_encode(&token))));
            }
            next.run(request).await
        }
        // Already reported by the authenticator.
        Err(err) => refuse(&state, &path, err),
    }
}

fn percent_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The data plane's view of an authenticated request.
pub fn caller(found: &Authenticated, limiter: &Limiter, tenancy: &Tenancy) -> Caller {
    let tenant = &found.tenant.tenant;
    // Open mode (the anonymous owner of `default`) has no tenant limits or quotas.
    let anonymous = found.principal.identity == Identity::Anonymous;
    let limits = if anonymous {
        RateLimits::default()
    } else {
        limiter.effective(tenant)
    };
    let key_quotas = match found.principal.credential.kind {
        CredentialKind::ApiKey => tenancy
            .auth
            .snapshot()
            .key(&found.principal.credential.id)
            .and_then(|key| key.record.quotas.clone()),
        _ => None,
    };
    Caller {
        principal: found.principal.clone(),
        policy: found.tenant.policy.clone(),
        max_sessions_per_user: tenant.settings.max_sessions_per_user,
        max_sessions: tenant.settings.max_sessions,
        limits,
        quotas: tenant.settings.quotas.clone().filter(|_| !anonymous),
        key_quotas,
    }
}

/// Header-safe text: ASCII without quotes or control characters.
fn header_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_ascii() && !c.is_ascii_control() => c,
            _ => '?',
        })
        .collect()
}

/// The refusal for `err` on `path`.
pub fn refuse(state: &AuthState, path: &str, err: AuthError) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let code = match err.status() {
        401 => codes::UNAUTHENTICATED,
        403 => codes::FORBIDDEN,
        404 => codes::UNKNOWN_TENANT,
        400 => codes::BAD_TENANT,
        _ => codes::AUTH_UNAVAILABLE,
    };
    let message = err.to_string();
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": code, "message": message},
    });
    let mut response = (status, axum::Json(body)).into_response();
    if matches!(err.status(), 401 | 403) {
        let resource_path = path
            .strip_suffix("/messages")
            .map_or_else(|| path.to_owned(), |base| format!("{base}/sse"));
        let mut challenge = format!(
            "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource{}\"",
            state.public_url, resource_path
        );
        if let Some(error) = err.bearer_error() {
            challenge.push_str(&format!(
                ", error=\"{error}\", error_description=\"{}\"",
                header_text(&message)
            ));
        }
        if let AuthError::InsufficientScope(scopes) = &err {
            challenge.push_str(&format!(", scope=\"{}\"", header_text(&scopes.join(" "))));
        }
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_is_read_from_the_path() {
        assert_eq!(path_tenant("/t/acme/mcp"), Some("acme"));
        assert_eq!(path_tenant("/mcp"), None);
        assert_eq!(path_tenant("/t/../mcp"), Some(".."));
    }

    #[test]
    fn query_tokens_are_decoded() {
        assert_eq!(
            url_param("a=1&token=x%2By", "token").as_deref(),
            Some("x+y")
        );
        assert_eq!(url_param("token=%zz", "token").as_deref(), Some("%zz"));
        assert_eq!(url_param("a=1", "token"), None);
        assert_eq!(percent_encode("a+b/c"), "a%2Bb%2Fc");
    }

    #[test]
    fn challenge_text_is_header_safe() {
        assert_eq!(header_text("tenant \"a…\""), "tenant 'a?'");
    }
}
