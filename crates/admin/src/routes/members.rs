//! `/admin/v1/tenants/{tenant}/members` and `…/groups`: who belongs to a tenant, with which
//! role, and in which groups.
//!
//! Nobody hands out more than they hold: an admin cannot make, change or remove an owner
//! (that needs an owner), and roles above one's own are refused.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;
use switchboard_domain::tenancy::{Membership, Role, TenantId, UserId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::path_tenant;
use crate::AdminState;
use crate::access::{Admin, Need};
use crate::changes::{Change, snapshot};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Body, Params};
use crate::page::{self, PageQuery};
use crate::views::{
    self, GroupList, GroupView, MemberList, MemberPatch, MemberView, NewGroup, NewMember,
};

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_members, add_member))
        .routes(routes!(change_member, remove_member))
        .routes(routes!(list_groups, create_group))
        .routes(routes!(delete_group))
        .routes(routes!(add_group_member, remove_group_member))
}

/// May `admin` give or take `role` in `tenant`?
async fn check_role(
    state: &AdminState,
    admin: &Admin,
    tenant: &TenantId,
    role: &Role,
) -> ApiResult<()> {
    if role == &Role::Owner {
        admin.check(tenant, Need::Own)?;
    }
    if crate::access::rank(role) > admin.rank_in(tenant) {
        return Err(ApiError::forbidden(format!(
            "you cannot hand out the role {role}: it is above your own"
        )));
    }
    if let Role::Custom(name) = role {
        let roles = state.store().tenant(tenant).roles().await?;
        if !roles.iter().any(|r| &r.name == name) {
            return Err(ApiError::invalid(
                "role",
                format!(
                    "role {name:?} is neither built in (owner, admin, member, readonly) nor a custom role of this tenant; create it first"
                ),
            ));
        }
    }
    Ok(())
}

async fn membership(state: &AdminState, tenant: &TenantId, user: &UserId) -> ApiResult<Membership> {
    state
        .store()
        .tenant(tenant)
        .members()
        .await?
        .into_iter()
        .find(|m| &m.user == user)
        .ok_or_else(|| ApiError::not_found("member", user))
}

fn path_user(user: &str) -> ApiResult<UserId> {
    UserId::new(user).map_err(|_| ApiError::not_found("member", user))
}

/// Members of the tenant, by email.
#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/members", tag = "members",
    params(("tenant" = String, Path, description = "Tenant id"), PageQuery),
    responses((status = 200, description = "One page of members", body = MemberList),
              (status = 404, description = "No such tenant", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_members(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<MemberList>> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Read)?;
    let members: Vec<MemberView> = state
        .store()
        .tenant(&id)
        .members()
        .await?
        .iter()
        .map(MemberView::from)
        .collect();
    Ok(Json(MemberList::new(page::slice(
        members,
        |m| &m.user,
        &q,
    )?)))
}

/// Adds a user (created if new) to the tenant.
#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/members", tag = "members",
    params(("tenant" = String, Path, description = "Tenant id")),
    request_body = NewMember,
    responses((status = 201, description = "Added", body = MemberView),
              (status = 403, description = "The role is above yours", body = ErrorBody),
              (status = 409, description = "Already a member", body = ErrorBody),
              (status = 422, description = "Bad email or role", body = ErrorBody)),
    security(("bearer" = [])))]
async fn add_member(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
    Body(body): Body<NewMember>,
) -> ApiResult<(StatusCode, Json<MemberView>)> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    let user = views::user_id("user", &body.user)?;
    let role = views::role("role", body.role.as_deref().unwrap_or("member"))?;
    check_role(&state, &admin, &id, &role).await?;
    state
        .store()
        .tenant(&id)
        .add_member(&user, role.clone())
        .await?;
    let view = MemberView::from(&Membership { user, role });
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: "member.add",
                target: format!("member {}", view.user),
                before: Value::Null,
                after: snapshot(&view),
            },
        )
        .await;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Changes a member's role.
#[utoipa::path(patch, path = "/admin/v1/tenants/{tenant}/members/{user}", tag = "members",
    params(("tenant" = String, Path, description = "Tenant id"),
           ("user" = String, Path, description = "The member's email")),
    request_body = MemberPatch,
    responses((status = 200, description = "The member with the new role", body = MemberView),
              (status = 403, description = "Owners are changed by owners", body = ErrorBody),
              (status = 404, description = "Not a member", body = ErrorBody)),
    security(("bearer" = [])))]
async fn change_member(
    admin: Admin,
    State(state): State<AdminState>,
    Path((tenant, user)): Path<(String, String)>,
    Body(body): Body<MemberPatch>,
) -> ApiResult<Json<MemberView>> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    let user = path_user(&user)?;
    let role = views::role("role", &body.role)?;
    let current = membership(&state, &id, &user).await?;
    check_role(&state, &admin, &id, &current.role).await?;
    check_role(&state, &admin, &id, &role).await?;
    state
        .store()
        .tenant(&id)
        .set_member_role(&user, role.clone())
        .await?;
    let view = MemberView::from(&Membership { user, role });
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: "member.role",
                target: format!("member {}", view.user),
                before: snapshot(&MemberView::from(&current)),
                after: snapshot(&view),
            },
        )
        .await;
    Ok(Json(view))
}

/// Removes a member (and their group memberships; their API keys stop working).
#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/members/{user}", tag = "members",
    params(("tenant" = String, Path, description = "Tenant id"),
           ("user" = String, Path, description = "The member's email")),
    responses((status = 204, description = "Removed"),
              (status = 403, description = "Owners are removed by owners", body = ErrorBody),
              (status = 404, description = "Not a member", body = ErrorBody)),
    security(("bearer" = [])))]
async fn remove_member(
    admin: Admin,
    State(state): State<AdminState>,
    Path((tenant, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    let user = path_user(&user)?;
    let current = membership(&state, &id, &user).await?;
    check_role(&state, &admin, &id, &current.role).await?;
    state.store().tenant(&id).remove_member(&user).await?;
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: "member.remove",
                target: format!("member {user}"),
                before: snapshot(&MemberView::from(&current)),
                after: Value::Null,
            },
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Groups of the tenant with their members, by name.
#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/groups", tag = "groups",
    params(("tenant" = String, Path, description = "Tenant id"), PageQuery),
    responses((status = 200, description = "One page of groups", body = GroupList),
              (status = 404, description = "No such tenant", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_groups(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<GroupList>> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Read)?;
    let groups: Vec<GroupView> = state
        .store()
        .tenant(&id)
        .groups()
        .await?
        .iter()
        .map(GroupView::from)
        .collect();
    Ok(Json(GroupList::new(page::slice(groups, |g| &g.name, &q)?)))
}

/// Creates a group, optionally with members (who must be members of the tenant).
#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/groups", tag = "groups",
    params(("tenant" = String, Path, description = "Tenant id")),
    request_body = NewGroup,
    responses((status = 201, description = "Created", body = GroupView),
              (status = 409, description = "The group exists", body = ErrorBody),
              (status = 422, description = "Bad name, or a member who is not in the tenant", body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_group(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
    Body(body): Body<NewGroup>,
) -> ApiResult<(StatusCode, Json<GroupView>)> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    let name = views::group_name("name", &body.name)?;
    let members = body
        .members
        .iter()
        .map(|m| views::user_id("members", m))
        .collect::<ApiResult<Vec<_>>>()?;
    let known = state.store().tenant(&id).members().await?;
    if let Some(stranger) = members
        .iter()
        .find(|m| !known.iter().any(|k| &k.user == *m))
    {
        return Err(ApiError::invalid(
            "members",
            format!("{stranger} is not a member of the tenant; add them as a member first"),
        ));
    }
    let scoped = state.store().tenant(&id);
    scoped.create_group(&name, &body.description).await?;
    for member in &members {
        scoped.add_group_member(&name, member).await?;
    }
    let view = GroupView {
        name: name.to_string(),
        description: body.description,
        members: members.iter().map(ToString::to_string).collect(),
    };
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: "group.create",
                target: format!("group {name}"),
                before: Value::Null,
                after: snapshot(&view),
            },
        )
        .await;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Deletes a group (its grants stay and match nobody).
#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/groups/{group}", tag = "groups",
    params(("tenant" = String, Path, description = "Tenant id"),
           ("group" = String, Path, description = "Group name")),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such group", body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_group(
    admin: Admin,
    State(state): State<AdminState>,
    Path((tenant, group)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    let name =
        views::group_name("group", &group).map_err(|_| ApiError::not_found("group", &group))?;
    let before = state
        .store()
        .tenant(&id)
        .groups()
        .await?
        .iter()
        .find(|g| g.name == name)
        .map(GroupView::from)
        .ok_or_else(|| ApiError::not_found("group", &name))?;
    state.store().tenant(&id).delete_group(&name).await?;
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: "group.delete",
                target: format!("group {name}"),
                before: snapshot(&before),
                after: Value::Null,
            },
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Puts a member of the tenant into a group.
#[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/groups/{group}/members/{user}", tag = "groups",
    params(("tenant" = String, Path, description = "Tenant id"),
           ("group" = String, Path, description = "Group name"),
           ("user" = String, Path, description = "The member's email")),
    responses((status = 204, description = "In the group"),
              (status = 404, description = "No such group, or not a member of the tenant", body = ErrorBody)),
    security(("bearer" = [])))]
async fn add_group_member(
    admin: Admin,
    State(state): State<AdminState>,
    Path((tenant, group, user)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    group_member(admin, state, tenant, group, user, true).await
}

/// Takes a user out of a group.
#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/groups/{group}/members/{user}", tag = "groups",
    params(("tenant" = String, Path, description = "Tenant id"),
           ("group" = String, Path, description = "Group name"),
           ("user" = String, Path, description = "The member's email")),
    responses((status = 204, description = "Out of the group"),
              (status = 404, description = "Not in the group", body = ErrorBody)),
    security(("bearer" = [])))]
async fn remove_group_member(
    admin: Admin,
    State(state): State<AdminState>,
    Path((tenant, group, user)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    group_member(admin, state, tenant, group, user, false).await
}

async fn group_member(
    admin: Admin,
    state: AdminState,
    tenant: String,
    group: String,
    user: String,
    add: bool,
) -> ApiResult<StatusCode> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    let name =
        views::group_name("group", &group).map_err(|_| ApiError::not_found("group", &group))?;
    let user = path_user(&user)?;
    let scoped = state.store().tenant(&id);
    if add {
        match scoped.add_group_member(&name, &user).await {
            // Already in the group: PUT is idempotent.
            Err(switchboard_store::StoreError::Conflict { .. }) => {
                return Ok(StatusCode::NO_CONTENT);
            }
            other => other?,
        }
    } else {
        scoped.remove_group_member(&name, &user).await?;
    }
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: if add { "group.member.add" } else { "group.member.remove" },
                target: format!("group {name} member {user}"),
                before: Value::Null,
                after: serde_json::json!({ "group": name.to_string(), "user": user.to_string(), "member": add }),
            },
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}
