//! The OAuth surface: protected-resource metadata (RFC 9728) for every MCP endpoint, the
//! gateway's authorization-server metadata (RFC 8414) and JWKS, and the client-credentials
//! grant at `/oauth/token` for service clients.

use std::sync::Arc;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;
use switchboard_domain::tenancy::{ClientId, Identity, TenantId};

use crate::tenancy::Tenancy;

/// State of the OAuth endpoints.
#[derive(Clone)]
pub struct OAuthState {
    pub tenancy: Arc<Tenancy>,
    pub public_url: Arc<str>,
    pub token_ttl_secs: i64,
}

fn not_found(message: String) -> Response {
    let body = json!({"error": {"code": "not_found", "message": message}});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

/// `GET /.well-known/oauth-protected-resource[/{endpoint path}]`.
pub async fn protected_resource(
    State(state): State<OAuthState>,
    rest: Option<Path<String>>,
) -> Response {
    let path = rest.map(|Path(p)| format!("/{p}")).unwrap_or_default();
    let endpoint = if path.is_empty() {
        "/mcp".to_owned()
    } else {
        path
    };
    let known = matches!(endpoint.as_str(), "/mcp" | "/sse")
        || crate::authn::path_tenant(&endpoint).is_some_and(|t| {
            endpoint == format!("/t/{t}/mcp") || endpoint == format!("/t/{t}/sse")
        });
    if !known {
        return not_found(format!(
            "no MCP endpoint {endpoint:?}; metadata exists for /mcp, /sse, /t/{{tenant}}/mcp and /t/{{tenant}}/sse"
        ));
    }
    let snapshot = state.tenancy.auth.snapshot();
    let mut servers = vec![state.public_url.to_string()];
    if let Some(tenant) = crate::authn::path_tenant(&endpoint) {
        let Ok(id) = TenantId::new(tenant) else {
            return not_found("unknown tenant".into());
        };
        if snapshot.tenant(&id).is_none() && !(snapshot.is_open() && tenant == TenantId::DEFAULT) {
            return not_found(format!("unknown tenant {tenant:?}"));
        }
        servers.extend(snapshot.issuers_of(&id));
    }
    Json(json!({
        "resource": format!("{}{}", state.public_url, endpoint),
        "authorization_servers": servers,
        "bearer_methods_supported": ["header"],
        "resource_name": "Switchboard MCP gateway",
    }))
    .into_response()
}

/// `GET /.well-known/oauth-authorization-server`.
pub async fn authorization_server(State(state): State<OAuthState>) -> Json<serde_json::Value> {
    let base = &state.public_url;
    Json(json!({
        "issuer": base.to_string(),
        "token_endpoint": format!("{base}/oauth/token"),
        "jwks_uri": format!("{base}/oauth/jwks.json"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": [],
    }))
}

/// `GET /oauth/jwks.json`.
pub async fn jwks(State(state): State<OAuthState>) -> Response {
    match state.tenancy.auth.issuer() {
        Some(issuer) => Json(issuer.jwks().clone()).into_response(),
        None => not_found("this gateway issues no tokens".into()),
    }
}

/// The form of a token request.
#[derive(Debug, Deserialize)]
pub struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"switchboard\""),
        );
    }
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// Client id and secret from HTTP Basic (preferred) or the form.
fn client_credentials(headers: &HeaderMap, form: &TokenRequest) -> Option<(String, String)> {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = STANDARD.decode(basic.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (id, secret) = text.split_once(':')?;
        return Some((id.to_owned(), secret.to_owned()));
    }
    Some((form.client_id.clone()?, form.client_secret.clone()?))
}

/// `POST /oauth/token` and `/t/{tenant}/oauth/token`: the client-credentials grant. The
/// client is named `{tenant}/{client}` or by the tenant of the path or `X-Tenant-ID`.
pub async fn token(
    State(state): State<OAuthState>,
    tenant: Option<Path<String>>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(form)) => form,
        Err(err) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("send the parameters as application/x-www-form-urlencoded: {err}"),
            );
        }
    };
    if form.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only grant_type=client_credentials is supported",
        );
    }
    let Some((raw_id, secret)) = client_credentials(&headers, &form) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "send the client id and secret with HTTP Basic or as client_id/client_secret",
        );
    };
    let named_tenant = tenant.map(|Path(t)| t).or_else(|| {
        headers
            .get("x-tenant-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let (tenant, client) = match (raw_id.split_once('/'), named_tenant) {
        (Some((t, c)), None) => (t.to_owned(), c.to_owned()),
        (Some((t, c)), Some(named)) if t == named => (t.to_owned(), c.to_owned()),
        (None, Some(named)) => (named, raw_id.clone()),
        _ => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "name the client as {tenant}/{client_id}, or use /t/{tenant}/oauth/token",
            );
        }
    };
    let invalid = || {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong secret",
        )
    };
    let (Ok(tenant), Ok(client)) = (TenantId::new(tenant), ClientId::new(client)) else {
        return invalid();
    };
    let auth = &state.tenancy.auth;
    let snapshot = auth.snapshot();
    let Some(entry) = snapshot.tenant(&tenant) else {
        return invalid();
    };
    let Some(record) = entry.client(&client) else {
        return invalid();
    };
    if !auth
        .hashing()
        .verify(secret.as_bytes(), &record.secret_hash)
    {
        return invalid();
    }
    if record.disabled {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "this client is disabled",
        );
    }
    if !entry.tenant.is_usable() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            &format!("tenant {tenant} is suspended"),
        );
    }
    let base = state.public_url.as_ref();
    let audience = match form.resource.as_deref() {
        None => base.to_owned(),
        Some(r) if r.starts_with(base) => r.to_owned(),
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_target",
                &format!("resource must be an endpoint of this gateway ({base}/…)"),
            );
        }
    };
    let Some(issuer) = auth.issuer() else {
        return oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "no signing key",
        );
    };
    let scope = form.scope.unwrap_or_default();
    match issuer.issue(
        &tenant,
        &Identity::Client(client),
        &audience,
        state.token_ttl_secs,
        &scope,
    ) {
        Ok(issued) => {
            let mut response = Json(json!({
                "access_token": issued.token,
                "token_type": "Bearer",
                "expires_in": state.token_ttl_secs,
                "scope": scope,
            }))
            .into_response();
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            response
        }
        Err(err) => {
            tracing::error!(%err, "token issuance failed");
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "token issuance failed",
            )
        }
    }
}
