//! `/admin/v1/tenants/{tenant}/roles` and `…/grants`: custom roles (permission sets with
//! argument conditions) and grants (who may or may not use which servers and items).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;
use switchboard_domain::tenancy::{Permission, Role, RoleDef};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::path_tenant;
use crate::AdminState;
use crate::access::{Admin, Need};
use crate::changes::{Change, snapshot};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Body, Params};
use crate::page::{self, PageQuery};
use crate::views::{GrantList, GrantView, NewGrant, RoleList, RoleView};

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_roles))
        .routes(routes!(put_role, delete_role))
        .routes(routes!(list_grants, add_grant))
        .routes(routes!(remove_grant))
}

/// Custom roles of the tenant, by name.
#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/roles", tag = "roles",
    params(("tenant" = String, Path, description = "Tenant id"), PageQuery),
    responses((status = 200, description = "One page of custom roles", body = RoleList),
              (status = 404, description = "No such tenant", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_roles(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<RoleList>> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Read)?;
    let roles: Vec<RoleView> = state
        .store()
        .tenant(&id)
        .roles()
        .await?
        .iter()
        .map(RoleView::from)
        .collect();
    Ok(Json(RoleList::new(page::slice(roles, |r| &r.name, &q)?)))
}

/// Creates or replaces a custom role.
#[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/roles/{role}", tag = "roles",
    params(("tenant" = String, Path, description = "Tenant id"),
           ("role" = String, Path, description = "Custom role name (not a built-in one)")),
    request_body = RoleView,
    responses((status = 200, description = "The role as stored", body = RoleView),
              (status = 422, description = "Reserved name or bad permission", body = ErrorBody)),
    security(("bearer" = [])))]
async fn put_role(
    admin: Admin,
    State(state): State<AdminState>,
    Path((tenant, role)): Path<(String, String)>,
    Body(body): Body<RoleView>,
) -> ApiResult<Json<RoleView>> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    if !matches!(Role::parse(&role), Ok(Role::Custom(_))) {
        return Err(ApiError::invalid(
            "role",
            format!(
                "{role:?} is not a custom role name: use lowercase letters, digits and '-', not owner/admin/member/readonly"
            ),
        ));
    }
    if !body.name.is_empty() && body.name != role {
        return Err(ApiError::invalid(
            "name",
            "the body's name differs from the path's",
        ));
    }
    let permissions: Vec<Permission> = serde_json::from_value(body.permissions)
        .map_err(|e| ApiError::invalid("permissions", format!("permissions: {e}")))?;
    let def = RoleDef {
        name: role.clone(),
        description: body.description,
        permissions,
    };
    let scoped = state.store().tenant(&id);
    let before = scoped
        .roles()
        .await?
        .iter()
        .find(|r| r.name == role)
        .map(RoleView::from);
    scoped.put_role(&def).await?;
    let view = RoleView::from(&def);
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: if before.is_some() {
                    "role.replace"
                } else {
                    "role.create"
                },
                target: format!("role {role}"),
                before: before.as_ref().map_or(Value::Null, snapshot),
                after: snapshot(&view),
            },
        )
        .await;
    Ok(Json(view))
}

/// Deletes a custom role (members holding it keep a role that grants nothing).
#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/roles/{role}", tag = "roles",
    params(("tenant" = String, Path, description = "Tenant id"),
           ("role" = String, Path, description = "Custom role name")),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such role", body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_role(
    admin: Admin,
    State(state): State<AdminState>,
    Path((tenant, role)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    let scoped = state.store().tenant(&id);
    let before = scoped
        .roles()
        .await?
        .iter()
        .find(|r| r.name == role)
        .map(RoleView::from)
        .ok_or_else(|| ApiError::not_found("role", &role))?;
    scoped.delete_role(&role).await?;
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: "role.delete",
                target: format!("role {role}"),
                before: snapshot(&before),
                after: Value::Null,
            },
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Grants of the tenant, by id.
#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/grants", tag = "grants",
    params(("tenant" = String, Path, description = "Tenant id"), PageQuery),
    responses((status = 200, description = "One page of grants", body = GrantList),
              (status = 404, description = "No such tenant", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_grants(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<GrantList>> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Read)?;
    let mut grants: Vec<GrantView> = state
        .store()
        .tenant(&id)
        .grants()
        .await?
        .iter()
        .map(|(gid, g)| GrantView::new(gid, g))
        .collect();
    grants.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(GrantList::new(page::slice(grants, |g| &g.id, &q)?)))
}

/// Adds a grant: `allow` or `deny` of `server`, `server/item` or `*` (globs) to a user,
/// group, role or service client. A matching deny always wins.
#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/grants", tag = "grants",
    params(("tenant" = String, Path, description = "Tenant id")),
    request_body = NewGrant,
    responses((status = 201, description = "Added", body = GrantView),
              (status = 422, description = "Bad grantee, target or effect", body = ErrorBody)),
    security(("bearer" = [])))]
async fn add_grant(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
    Body(body): Body<NewGrant>,
) -> ApiResult<(StatusCode, Json<GrantView>)> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    let grant = body.grant()?;
    let gid = state.store().tenant(&id).add_grant(&grant).await?;
    let view = GrantView::new(&gid, &grant);
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: "grant.add",
                target: format!("grant {gid}"),
                before: Value::Null,
                after: snapshot(&view),
            },
        )
        .await;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Removes a grant.
#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/grants/{grant}", tag = "grants",
    params(("tenant" = String, Path, description = "Tenant id"),
           ("grant" = String, Path, description = "Grant id")),
    responses((status = 204, description = "Removed"),
              (status = 404, description = "No such grant", body = ErrorBody)),
    security(("bearer" = [])))]
async fn remove_grant(
    admin: Admin,
    State(state): State<AdminState>,
    Path((tenant, grant)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    let scoped = state.store().tenant(&id);
    let before = scoped
        .grants()
        .await?
        .iter()
        .find(|(gid, _)| gid == &grant)
        .map(|(gid, g)| GrantView::new(gid, g))
        .ok_or_else(|| ApiError::not_found("grant", &grant))?;
    scoped.remove_grant(&grant).await?;
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: "grant.remove",
                target: format!("grant {grant}"),
                before: snapshot(&before),
                after: Value::Null,
            },
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}
