//! `/admin/v1/tenants/{tenant}/servers`: the upstream servers a tenant can reach, with their
//! health — every one for owners and admins, those with something they may use for members —
//! and the tenant's own HTTP servers: defined (`PUT`, with `If-Match`), read, deleted, and
//! tried before saving (`POST …/servers/validate`: connects and lists the tools).
//!
//! Only platform administrators define stdio servers (commands run on the gateway) for a
//! tenant, and only they change or delete what they defined. Literal header and environment
//! values are write-only (a GET shows `[redacted]`; sending `[redacted]` back keeps the
//! stored value): credentials belong in secrets, named by `{{secret.NAME}}`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_domain::RawUpstream;
use switchboard_domain::tenancy::{TenantId, TenantServer};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::path_tenant;
use super::tenants::{etag, if_match};
use crate::access::{Admin, Need, Who};
use crate::changes::Change;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Body;
use crate::page::list_of;
use crate::{AdminState, ProbeError, ProbeView, ServerHealth};

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(servers))
        .routes(routes!(get_server, put_server, delete_server))
        .routes(routes!(validate_server))
}

list_of!(ServerList, ServerHealth);

/// Shown instead of a literal header value.
const REDACTED: &str = "[redacted]";

/// A tenant's server definition: Streamable HTTP or SSE, or (platform administrators only)
/// stdio.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerSpec {
    /// `streamable-http`, `sse`, or `stdio` (platform administrators only).
    #[schema(example = "streamable-http")]
    pub transport: String,
    /// The endpoint of an HTTP server; `{{tenant}}` and `{{secret.NAME}}` may appear. Public
    /// addresses only unless the platform allows private networks.
    #[schema(example = "https://mcp.example.com/mcp", max_length = 2048)]
    pub url: Option<String>,
    /// The program of a stdio server (platform administrators only).
    #[schema(max_length = 1024)]
    pub command: Option<String>,
    /// Its arguments (no placeholders: they show in process lists).
    #[serde(default)]
    pub args: Vec<String>,
    /// Its environment (the gateway's own is not passed on); `{{secret.NAME}}` may appear.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Limits of a stdio child: address space (MiB), open files, processes, lifetime (ms).
    #[schema(minimum = 1)]
    pub max_memory_mb: Option<u64>,
    #[schema(minimum = 1)]
    pub max_open_files: Option<u64>,
    #[schema(minimum = 1)]
    pub max_processes: Option<u64>,
    #[schema(minimum = 1)]
    pub max_lifetime_ms: Option<u64>,
    /// Sent with every request, e.g. `Authorization: Bearer {{secret.crm_token}}` (at most
    /// 32).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Prefix of its exposed names (default: the server's name).
    #[schema(max_length = 32)]
    pub prefix: Option<String>,
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub description: String,
    #[schema(minimum = 1, maximum = 600000)]
    pub connect_timeout_ms: Option<u64>,
    #[schema(minimum = 1, maximum = 3600000)]
    pub request_timeout_ms: Option<u64>,
    /// Close the tenant's connection after this long unused (at least the gateway's own
    /// idle limit of 10 minutes applies).
    #[schema(minimum = 0, maximum = 86400000)]
    pub idle_timeout_ms: Option<u64>,
    #[schema(minimum = 1, maximum = 86400000)]
    pub list_ttl_ms: Option<u64>,
}

/// A server to try before saving: its name and definition.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerTrial {
    #[schema(example = "crm")]
    pub name: String,
    pub definition: ServerSpec,
}

/// One of the tenant's own servers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerView {
    pub name: String,
    pub description: String,
    pub transport: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Values without a placeholder are shown as `[redacted]`.
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Values without a placeholder are shown as `[redacted]`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_memory_mb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_open_files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_processes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lifetime_ms: Option<u64>,
    /// `platform` (only platform administrators change it) or `tenant`.
    pub defined_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_ttl_ms: Option<u64>,
    /// Increases with every change; also the `ETag`.
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Values with a placeholder as they are; literal ones (maybe credentials) redacted.
fn redacted(map: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    map.iter()
        .map(|(k, v)| {
            let shown = if v.contains("{{") {
                v.clone()
            } else {
                REDACTED.into()
            };
            (k.clone(), shown)
        })
        .collect()
}

impl From<&TenantServer> for ServerView {
    fn from(s: &TenantServer) -> Self {
        let d = &s.definition;
        Self {
            name: s.name.clone(),
            description: s.description.clone(),
            transport: d.transport.clone().unwrap_or_default(),
            url: d.url.clone(),
            headers: redacted(&d.headers),
            command: d.command.clone(),
            args: d.args.clone(),
            env: redacted(&d.env),
            max_memory_mb: d.max_memory_mb,
            max_open_files: d.max_open_files,
            max_processes: d.max_processes,
            max_lifetime_ms: d.max_lifetime_ms,
            defined_by: if s.by_platform { "platform" } else { "tenant" }.into(),
            prefix: d.prefix.clone(),
            connect_timeout_ms: d.connect_timeout_ms,
            request_timeout_ms: d.request_timeout_ms,
            idle_timeout_ms: d.idle_timeout_ms,
            list_ttl_ms: d.list_ttl_ms,
            version: s.version,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

fn field_limits(spec: &ServerSpec) -> ApiResult<()> {
    if spec.url.as_ref().is_some_and(|u| u.len() > 2048) {
        return Err(ApiError::invalid("url", "longer than 2048 characters"));
    }
    if spec.command.as_ref().is_some_and(|c| c.len() > 1024)
        || spec.args.len() > 64
        || spec.args.iter().any(|a| a.len() > 4096)
    {
        return Err(ApiError::invalid(
            "args",
            "at most 64 arguments of 4 KiB, a command of 1 KiB",
        ));
    }
    for (field, map) in [("headers", &spec.headers), ("env", &spec.env)] {
        if map.len() > 32 {
            return Err(ApiError::invalid(field, "at most 32 entries"));
        }
        if let Some((name, _)) = map.iter().find(|(k, v)| k.len() > 256 || v.len() > 8192) {
            return Err(ApiError::invalid(
                field,
                format!("{name:?}: names are at most 256 characters, values 8 KiB"),
            ));
        }
    }
    if spec.description.chars().count() > 1024 {
        return Err(ApiError::invalid(
            "description",
            "longer than 1024 characters",
        ));
    }
    for (field, value, max) in [
        ("connectTimeoutMs", spec.connect_timeout_ms, 600_000),
        ("requestTimeoutMs", spec.request_timeout_ms, 3_600_000),
        ("idleTimeoutMs", spec.idle_timeout_ms, 86_400_000),
        ("listTtlMs", spec.list_ttl_ms, 86_400_000),
    ] {
        if value.is_some_and(|v| v > max) {
            return Err(ApiError::invalid(field, format!("at most {max}")));
        }
    }
    Ok(())
}

/// `[redacted]` values replaced by what `stored` has.
fn keep_redacted(
    field: &'static str,
    mut map: BTreeMap<String, String>,
    stored: Option<&BTreeMap<String, String>>,
) -> ApiResult<BTreeMap<String, String>> {
    for (name, value) in map.iter_mut() {
        if value == REDACTED {
            *value = stored.and_then(|s| s.get(name)).cloned().ok_or_else(|| {
                ApiError::invalid(
                    field,
                    format!(
                        "{name:?} is [redacted] but has no stored value to keep; send the value"
                    ),
                )
            })?;
        }
    }
    Ok(map)
}

/// The definition as stored; `[redacted]` values keep what `stored` has.
fn raw_of(spec: ServerSpec, stored: Option<&RawUpstream>) -> ApiResult<RawUpstream> {
    field_limits(&spec)?;
    let headers = keep_redacted("headers", spec.headers, stored.map(|s| &s.headers))?;
    let env = keep_redacted("env", spec.env, stored.map(|s| &s.env))?;
    Ok(RawUpstream {
        transport: Some(spec.transport),
        url: spec.url,
        command: spec.command,
        args: spec.args,
        env,
        max_memory_mb: spec.max_memory_mb,
        max_open_files: spec.max_open_files,
        max_processes: spec.max_processes,
        max_lifetime_ms: spec.max_lifetime_ms,
        headers,
        prefix: spec.prefix,
        connect_timeout_ms: spec.connect_timeout_ms,
        request_timeout_ms: spec.request_timeout_ms,
        idle_timeout_ms: spec.idle_timeout_ms,
        list_ttl_ms: spec.list_ttl_ms,
        ..RawUpstream::default()
    })
}

/// A definition error as a 422 naming the field (in the API's spelling).
fn definition_error(err: switchboard_domain::UpstreamDefError) -> ApiError {
    let field = match err.field {
        "connect_timeout_ms" => "connectTimeoutMs",
        "request_timeout_ms" => "requestTimeoutMs",
        "idle_timeout_ms" => "idleTimeoutMs",
        "list_ttl_ms" => "listTtlMs",
        "max_memory_mb" => "maxMemoryMb",
        "max_open_files" => "maxOpenFiles",
        "max_processes" => "maxProcesses",
        "max_lifetime_ms" => "maxLifetimeMs",
        other => other,
    };
    ApiError::invalid(field, err.message)
}

fn with_etag(status: StatusCode, view: ServerView) -> Response {
    let tag = etag(view.version);
    let mut response = (status, Json(view)).into_response();
    response.headers_mut().insert(header::ETAG, tag);
    response
}

/// Refuses (403) a tenant admin's change to a server a platform administrator defined.
fn may_change(admin: &Admin, stored: Option<&TenantServer>) -> ApiResult<()> {
    if stored.is_some_and(|s| s.by_platform) && !admin.is_platform() {
        return Err(ApiError::forbidden(
            "this server was defined by a platform administrator; ask them to change it",
        ));
    }
    Ok(())
}

async fn tenant_exists(state: &AdminState, id: &TenantId) -> ApiResult<()> {
    match state.store().get_tenant(id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found("tenant", id)),
    }
}

/// Servers available to the tenant — the platform's catalog and its own — and their health
/// (`ready`, `down` with the reason, `per-tenant` before its first connection…).
#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/servers", tag = "servers",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "Every server (members: those they may use)", body = ServerList),
              (status = 404, description = "No such tenant", body = ErrorBody)),
    security(("bearer" = [])))]
async fn servers(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<ServerList>> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Read)?;
    tenant_exists(&state, &id).await?;
    // Owners, admins and platform administrators see every server; members what they may use.
    let principal = match &admin.who {
        Who::Tenant(p) if !p.is_tenant_admin() => Some(p.as_ref()),
        _ => None,
    };
    let items = state.0.hooks.servers(&id, principal);
    Ok(Json(ServerList::new((items, None))))
}

/// One of the tenant's own servers, with its `ETag` (owners and admins).
#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/servers/{name}", tag = "servers",
    params(("tenant" = String, Path, description = "Tenant id"),
           ("name" = String, Path, description = "Server name")),
    responses((status = 200, description = "The definition (literal header values redacted)", body = ServerView),
              (status = 403, description = "Not an owner or admin of the tenant", body = ErrorBody),
              (status = 404, description = "No such tenant or server", body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_server(
    admin: Admin,
    State(state): State<AdminState>,
    Path((tenant, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    tenant_exists(&state, &id).await?;
    let server = state
        .store()
        .tenant(&id)
        .server(&name)
        .await?
        .ok_or_else(|| ApiError::not_found("server", &name))?;
    Ok(with_etag(StatusCode::OK, ServerView::from(&server)))
}

/// Defines or replaces one of the tenant's own servers (Streamable HTTP or SSE; stdio for
/// platform administrators). It is checked (transport, URL, public address, placeholders,
/// no clash with a catalog server) and in force when the answer comes; grants decide who
/// may use it, as for any server. A server a platform administrator defined is theirs to
/// change (403 for tenant admins).
/// Send `If-Match` with the `ETag` of your read to refuse (412) a change made in between.
#[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/servers/{name}", tag = "servers",
    params(("tenant" = String, Path, description = "Tenant id"),
           ("name" = String, Path, description = "Server name: letters, digits, '_' and '-'"),
           ("If-Match" = Option<String>, Header, description = "ETag of the version read")),
    request_body = ServerSpec,
    responses((status = 201, description = "Created, with its ETag", body = ServerView),
              (status = 200, description = "Replaced, with its new ETag", body = ServerView),
              (status = 403, description = "Not an owner or admin of the tenant", body = ErrorBody),
              (status = 404, description = "No such tenant", body = ErrorBody),
              (status = 409, description = "Created by someone else at the same moment", body = ErrorBody),
              (status = 412, description = "Changed by someone else since your read", body = ErrorBody),
              (status = 422, description = "The definition is refused; `field` names what to fix", body = ErrorBody)),
    security(("bearer" = [])))]
async fn put_server(
    admin: Admin,
    State(state): State<AdminState>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
    Body(spec): Body<ServerSpec>,
) -> ApiResult<Response> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    let expected = if_match(&headers)?;
    tenant_exists(&state, &id).await?;
    let store = state.store().tenant(&id);
    let stored = store.server(&name).await?;
    may_change(&admin, stored.as_ref())?;
    let description = spec.description.clone();
    let raw = raw_of(spec, stored.as_ref().map(|s| &s.definition))?;
    let by_platform = admin.is_platform();
    state
        .0
        .hooks
        .check_server(&id, &name, raw.clone(), by_platform)
        .map_err(definition_error)?;
    let written = store
        .put_server(
            &name,
            &description,
            &raw,
            by_platform,
            expected,
            state.0.hooks.max_servers_per_tenant(),
        )
        .await?;
    let after = ServerView::from(&written.after);
    let created = written.before.is_none();
    let before = written
        .before
        .as_ref()
        .map_or(Value::Null, |b| json!(ServerView::from(b)));
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: if created {
                    "server.create"
                } else {
                    "server.update"
                },
                target: format!("server {name}"),
                before,
                after: json!(after),
            },
        )
        .await;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(with_etag(status, after))
}

/// Deletes one of the tenant's own servers: its connections close and its tools leave the
/// tenant's lists at once (grants naming it stay, and apply again to a server of that name).
#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/servers/{name}", tag = "servers",
    params(("tenant" = String, Path, description = "Tenant id"),
           ("name" = String, Path, description = "Server name"),
           ("If-Match" = Option<String>, Header, description = "ETag of the version read")),
    responses((status = 204, description = "Deleted"),
              (status = 403, description = "Not an owner or admin of the tenant", body = ErrorBody),
              (status = 404, description = "No such tenant or server", body = ErrorBody),
              (status = 412, description = "Changed by someone else since your read", body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_server(
    admin: Admin,
    State(state): State<AdminState>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    let expected = if_match(&headers)?;
    tenant_exists(&state, &id).await?;
    let store = state.store().tenant(&id);
    may_change(&admin, store.server(&name).await?.as_ref())?;
    let before = store.delete_server(&name, expected).await?;
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: "server.delete",
                target: format!("server {name}"),
                before: json!(ServerView::from(&before)),
                after: Value::Null,
            },
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Tries a definition without saving it: checks it, fills its placeholders with your
/// secrets (else the tenant's), connects and lists the tools.
#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/servers/validate", tag = "servers",
    params(("tenant" = String, Path, description = "Tenant id")),
    request_body = ServerTrial,
    responses((status = 200, description = "Connected; the tools it lists", body = ProbeView),
              (status = 403, description = "Not an owner or admin of the tenant", body = ErrorBody),
              (status = 404, description = "No such tenant", body = ErrorBody),
              (status = 422, description = "The definition is refused, or a secret it names is not set", body = ErrorBody),
              (status = 502, description = "Connecting or listing failed; the message says how", body = ErrorBody)),
    security(("bearer" = [])))]
async fn validate_server(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
    Body(trial): Body<ServerTrial>,
) -> ApiResult<Json<ProbeView>> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    tenant_exists(&state, &id).await?;
    let stored = state.store().tenant(&id).server(&trial.name).await?;
    let raw = raw_of(trial.definition, stored.as_ref().map(|s| &s.definition))?;
    let probe = state
        .0
        .hooks
        .probe_server(&id, admin.user(), &trial.name, raw, admin.is_platform())
        .await;
    match probe {
        Ok(view) => Ok(Json(view)),
        Err(ProbeError::Invalid(err)) => Err(definition_error(err)),
        Err(err @ ProbeError::MissingSecret(_)) => Err(ApiError::invalid(
            "headers",
            err.to_string().replace("{tenant}", id.as_str()),
        )),
        Err(ProbeError::Unreachable(reason)) => Err(ApiError::bad_gateway(format!(
            "the server could not be reached: {reason}"
        ))),
    }
}
