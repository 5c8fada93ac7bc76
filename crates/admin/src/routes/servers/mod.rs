//! `/admin/v1/tenants/{tenant}/servers`: the upstream servers a tenant can reach, with their
//! health — every one for owners and admins, those with something they may use for members —
//! and the tenant's own HTTP servers: defined (`PUT`, with `If-Match`), read, deleted, and
//! tried before saving (`POST …/servers/validate`: connects and lists the tools).
//!
//! Only platform administrators define stdio servers (commands run on the gateway) for a
//! tenant, and only they change or delete what they defined. Literal header and environment
//! values are write-only (a GET shows `[redacted]`; sending `[redacted]` back keeps the
//! stored value): credentials belong in secrets, named by `{{secret.NAME}}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use switchboard_domain::tenancy::{TenantId, TenantServer};
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

mod spec;

use spec::{ServerSpec, ServerTrial, ServerView, definition_error, raw_of};

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
    if stored.is_none() && headers.get(header::IF_MATCH).is_some() {
        // `If-Match` (even `*`) asks for an existing server; there is none.
        return Err(ApiError::precondition_failed(format!(
            "there is no server {name:?} to match; send no If-Match to create it"
        )));
    }
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
    let before = state
        .store()
        .tenant(&id)
        .delete_server(&name, expected, admin.is_platform())
        .await?;
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
    // Trying a definition under a server's name reuses its write-only values: only for those
    // who may change that server.
    may_change(&admin, stored.as_ref())?;
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
