//! `/admin/v1/tenants/{tenant}/sessions`: the tenant's open legacy sessions on the replica
//! answering (Streamable HTTP and SSE; 2026-07-28 requests are stateless and hold none), and
//! terminating one — its client must initialize again, with a credential that is still good.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::path_tenant;
use crate::access::{Admin, Need};
use crate::changes::Change;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Params;
use crate::page::{self, PageQuery, list_of};
use crate::{AdminState, SessionView};

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions))
        .routes(routes!(end_session))
}

list_of!(SessionList, SessionView);

/// The tenant's open sessions on this replica, by id.
#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/sessions", tag = "sessions",
    params(("tenant" = String, Path, description = "Tenant id"), PageQuery),
    responses((status = 200, description = "One page of sessions", body = SessionList),
              (status = 404, description = "No such tenant", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_sessions(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<SessionList>> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    let mut sessions = state.0.hooks.sessions(&id).await;
    sessions.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(SessionList::new(page::slice(
        sessions,
        |s| &s.id,
        &q,
    )?)))
}

/// Ends a session of the tenant now (its streams close; its client must start over).
#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/sessions/{session}", tag = "sessions",
    params(("tenant" = String, Path, description = "Tenant id"),
           ("session" = String, Path, description = "Session id")),
    responses((status = 204, description = "Ended"),
              (status = 404, description = "No such session of the tenant on this replica", body = ErrorBody)),
    security(("bearer" = [])))]
async fn end_session(
    admin: Admin,
    State(state): State<AdminState>,
    Path((tenant, session)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    if session.len() > 128 || !state.0.hooks.end_session(&id, &session).await {
        return Err(ApiError::not_found("session", &session));
    }
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: "session.terminate",
                target: format!("session {session}"),
                before: json!({"session": session}),
                after: Value::Null,
            },
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}
