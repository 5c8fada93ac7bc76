//! `/admin/v1/tenants`: list (filters, cursor), create, get, update (`If-Match`), delete,
//! suspend, resume.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use switchboard_domain::tenancy::{Role, Tenant, TenantId, TenantStatus};
use switchboard_store::TenantFilter;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::path_tenant;
use crate::AdminState;
use crate::access::{Admin, Need};
use crate::changes::{Change, snapshot};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Body, Params};
use crate::page::{self, PageQuery};
use crate::views::{self, NewTenant, TenantList, TenantPatch, TenantView};

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(get_tenant, update_tenant, delete_tenant))
        .routes(routes!(suspend_tenant))
        .routes(routes!(resume_tenant))
}

/// Filters and paging of the tenant list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TenantQuery {
    /// `active`, `trial` or `suspended`.
    status: Option<String>,
    /// `free`, `pro` or `enterprise`.
    plan: Option<String>,
    /// The tenant a host name resolves to (0 or 1 result).
    domain: Option<String>,
    /// Items per page, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

pub(crate) fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn with_etag(status: StatusCode, view: TenantView) -> Response {
    let tag = etag(view.version);
    let mut response = (status, Json(view)).into_response();
    response.headers_mut().insert(header::ETAG, tag);
    response
}

/// The version an `If-Match` header demands; `None` when absent or `*`.
pub(crate) fn if_match(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    text.trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map(Some)
        .map_err(|_| ApiError::bad_request("If-Match must be the ETag of a GET, e.g. \"3\""))
}

async fn load(state: &AdminState, id: &TenantId) -> ApiResult<(Tenant, i64)> {
    state
        .store()
        .get_tenant_versioned(id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant", id))
}

/// Tenants: every tenant for platform administrators, one's own for tenant members.
#[utoipa::path(get, path = "/admin/v1/tenants", tag = "tenants",
    params(TenantQuery),
    responses(
        (status = 200, description = "One page of tenants, by id", body = TenantList),
        (status = 400, description = "Bad query or cursor", body = ErrorBody),
        (status = 401, description = "No usable credential", body = ErrorBody),
    ),
    security(("bearer" = [])))]
async fn list_tenants(
    admin: Admin,
    State(state): State<AdminState>,
    Params(q): Params<TenantQuery>,
) -> ApiResult<Json<TenantList>> {
    let paging = PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let filter = TenantFilter {
        status: q.status.as_deref().map(views::status).transpose()?,
        plan: q.plan.as_deref().map(views::plan).transpose()?,
    };
    let only = match (&admin.who, &q.domain) {
        (crate::access::Who::Tenant(p), _) => Some(p.tenant.clone()),
        (_, Some(domain)) => match state.store().tenant_by_domain(domain).await? {
            Some(id) => Some(id),
            None => return Ok(Json(TenantList::new((Vec::new(), None)))),
        },
        _ => None,
    };
    if let Some(id) = only {
        // One tenant at most: no paging beyond it.
        let Some((tenant, version)) = state.store().get_tenant_versioned(&id).await? else {
            return Ok(Json(TenantList::new((Vec::new(), None))));
        };
        let matches = filter.status.is_none_or(|s| s == tenant.status)
            && filter.plan.is_none_or(|p| p == tenant.plan)
            && q.domain
                .as_deref()
                .is_none_or(|d| tenant.domains.iter().any(|x| x.eq_ignore_ascii_case(d)));
        let after = paging.after()?;
        let items = if matches && after.is_none_or(|a| tenant.id.as_str() > a.as_str()) {
            vec![TenantView::new(&tenant, version)]
        } else {
            Vec::new()
        };
        return Ok(Json(TenantList::new((items, None))));
    }
    let limit = paging.limit()?;
    let after = paging.after()?;
    let mut rows = state
        .store()
        .tenants_page(after.as_deref(), limit + 1, &filter)
        .await?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|(t, _)| page::encode(t.id.as_str()))
    } else {
        None
    };
    let items = rows.iter().map(|(t, v)| TenantView::new(t, *v)).collect();
    Ok(Json(TenantList::new((items, next))))
}

/// Creates a tenant (platform administrators), optionally with its first owner.
#[utoipa::path(post, path = "/admin/v1/tenants", tag = "tenants",
    request_body = NewTenant,
    responses(
        (status = 201, description = "Created; `Location` and `ETag` set", body = TenantView),
        (status = 403, description = "Not a platform administrator", body = ErrorBody),
        (status = 409, description = "The id or a domain is taken", body = ErrorBody),
        (status = 422, description = "A field is refused", body = ErrorBody),
    ),
    security(("bearer" = [])))]
async fn create_tenant(
    admin: Admin,
    State(state): State<AdminState>,
    Body(body): Body<NewTenant>,
) -> ApiResult<Response> {
    admin.platform_only(None, "create tenants")?;
    let id = views::tenant_id("id", &body.id)?;
    let mut tenant = Tenant::new(id.clone(), non_empty_name(&body.name)?);
    if let Some(plan) = &body.plan {
        tenant.plan = views::plan(plan)?;
    }
    if let Some(status) = &body.status {
        tenant.status = views::status(status)?;
    }
    tenant.domains = body.domains;
    if let Some(settings) = body.settings {
        tenant.settings = views::settings(settings)?;
    }
    let owner = body
        .owner
        .as_deref()
        .map(|o| views::user_id("owner", o))
        .transpose()?;
    state.store().create_tenant(&tenant).await?;
    if let Some(owner) = &owner {
        state
            .store()
            .tenant(&id)
            .add_member(owner, Role::Owner)
            .await?;
    }
    let view = TenantView::new(&tenant, 1);
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: "tenant.create",
                target: format!("tenant {id}"),
                before: serde_json::Value::Null,
                after: serde_json::json!({"tenant": snapshot(&view), "owner": owner.map(|o| o.to_string())}),
            },
        )
        .await;
    let mut response = with_etag(StatusCode::CREATED, view);
    if let Ok(location) = HeaderValue::from_str(&format!("/admin/v1/tenants/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

fn non_empty_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid(
            "name",
            "name must have 1 to 200 characters",
        ));
    }
    Ok(name.to_owned())
}

/// One tenant, with its `ETag`.
#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "The tenant", body = TenantView),
        (status = 404, description = "No such tenant (or not yours)", body = ErrorBody),
    ),
    security(("bearer" = [])))]
async fn get_tenant(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
) -> ApiResult<Response> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Read)?;
    let (tenant, version) = load(&state, &id).await?;
    Ok(with_etag(StatusCode::OK, TenantView::new(&tenant, version)))
}

/// Changes a tenant. Send `If-Match` with the `ETag` of your read to refuse (412) a change
/// made by someone else in between. Tenant owners and admins may change the name, the IP
/// allowlist and features; plan, status, domains, rate limits, quotas and session limits
/// are the platform's.
#[utoipa::path(patch, path = "/admin/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id"),
           ("If-Match" = Option<String>, Header, description = "ETag of the version read")),
    request_body = TenantPatch,
    responses(
        (status = 200, description = "The changed tenant, with its new ETag", body = TenantView),
        (status = 403, description = "A field only platform administrators may change", body = ErrorBody),
        (status = 412, description = "Changed by someone else since your read", body = ErrorBody),
        (status = 422, description = "A field is refused", body = ErrorBody),
    ),
    security(("bearer" = [])))]
async fn update_tenant(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Body(patch): Body<TenantPatch>,
) -> ApiResult<Response> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    let expected = if_match(&headers)?;
    let (current, version) = load(&state, &id).await?;
    if let Some(expected) = expected
        && expected != version
    {
        return Err(ApiError::precondition_failed(format!(
            "the tenant is at version {version}, not {expected}: it was changed since you read it; reload and retry"
        )));
    }
    let mut next = current.clone();
    if let Some(name) = &patch.name {
        next.name = non_empty_name(name)?;
    }
    if let Some(plan) = &patch.plan {
        next.plan = views::plan(plan)?;
    }
    if let Some(status) = &patch.status {
        next.status = views::status(status)?;
    }
    if let Some(domains) = patch.domains {
        next.domains = domains;
    }
    if let Some(settings) = patch.settings {
        next.settings = views::settings(settings)?;
    }
    if !admin.is_platform() {
        platform_fields_unchanged(&current, &next)?;
    }
    let new_version = state.store().update_tenant(&next, version).await?;
    let before = TenantView::new(&current, version);
    let after = TenantView::new(&next, new_version);
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: "tenant.update",
                target: format!("tenant {id}"),
                before: snapshot(&before),
                after: snapshot(&after),
            },
        )
        .await;
    Ok(with_etag(StatusCode::OK, after))
}

/// Refuses (403) a tenant admin's change to what the platform decides.
fn platform_fields_unchanged(current: &Tenant, next: &Tenant) -> ApiResult<()> {
    let (a, b) = (&current.settings, &next.settings);
    let changed = [
        ("plan", current.plan != next.plan),
        ("status", current.status != next.status),
        ("domains", current.domains != next.domains),
        ("settings.rateLimits", a.rate_limits != b.rate_limits),
        ("settings.quotas", a.quotas != b.quotas),
        (
            "settings.auditRetentionDays",
            a.audit_retention_days != b.audit_retention_days,
        ),
        ("settings.maxSessions", a.max_sessions != b.max_sessions),
        (
            "settings.maxSessionsPerUser",
            a.max_sessions_per_user != b.max_sessions_per_user,
        ),
    ];
    match changed.iter().find(|(_, changed)| *changed) {
        Some((field, _)) => Err(ApiError::forbidden(format!(
            "only platform administrators can change {field}"
        ))),
        None => Ok(()),
    }
}

/// Deletes a tenant and everything it owns (its audit chain stays).
#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not a platform administrator", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
    security(("bearer" = [])))]
async fn delete_tenant(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
) -> ApiResult<StatusCode> {
    let id = path_tenant(&tenant)?;
    admin.platform_only(Some(&id), "delete tenants")?;
    let (current, version) = load(&state, &id).await?;
    state.store().delete_tenant(&id).await?;
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: "tenant.delete",
                target: format!("tenant {id}"),
                before: snapshot(&TenantView::new(&current, version)),
                after: serde_json::Value::Null,
            },
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_status(
    admin: Admin,
    state: AdminState,
    tenant: String,
    status: TenantStatus,
) -> ApiResult<Response> {
    let id = path_tenant(&tenant)?;
    let action = if status == TenantStatus::Suspended {
        "tenant.suspend"
    } else {
        "tenant.resume"
    };
    admin.platform_only(Some(&id), &format!("{} tenants", &action[7..]))?;
    let (current, version) = load(&state, &id).await?;
    state.store().set_tenant_status(&id, status).await?;
    let (next, new_version) = load(&state, &id).await?;
    let after = TenantView::new(&next, new_version);
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action,
                target: format!("tenant {id}"),
                before: snapshot(&TenantView::new(&current, version)),
                after: snapshot(&after),
            },
        )
        .await;
    Ok(with_etag(StatusCode::OK, after))
}

/// Suspends a tenant: its requests are refused (403, saying so) until resumed.
#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/suspend", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "The suspended tenant", body = TenantView),
              (status = 404, description = "No such tenant", body = ErrorBody)),
    security(("bearer" = [])))]
async fn suspend_tenant(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
) -> ApiResult<Response> {
    set_status(admin, state, tenant, TenantStatus::Suspended).await
}

/// Resumes a suspended tenant (status `active`).
#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/resume", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "The active tenant", body = TenantView),
              (status = 404, description = "No such tenant", body = ErrorBody)),
    security(("bearer" = [])))]
async fn resume_tenant(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
) -> ApiResult<Response> {
    set_status(admin, state, tenant, TenantStatus::Active).await
}
