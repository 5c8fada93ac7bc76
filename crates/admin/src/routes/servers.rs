//! `/admin/v1/tenants/{tenant}/servers`: the upstream servers a tenant can reach, with their
//! health — every one for owners and admins, those with something they may use for members.

use axum::Json;
use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::path_tenant;
use crate::access::{Admin, Need, Who};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::page::list_of;
use crate::{AdminState, ServerHealth};

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(servers))
}

list_of!(ServerList, ServerHealth);

/// Servers available to the tenant and their health (`ready`, `down` with the reason…).
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
    if state.store().get_tenant(&id).await?.is_none() {
        return Err(ApiError::not_found("tenant", &id));
    }
    // Owners, admins and platform administrators see every server; members what they may use.
    let principal = match &admin.who {
        Who::Tenant(p) if !p.is_tenant_admin() => Some(p.as_ref()),
        _ => None,
    };
    let items = state.0.hooks.servers(&id, principal);
    Ok(Json(ServerList::new((items, None))))
}
