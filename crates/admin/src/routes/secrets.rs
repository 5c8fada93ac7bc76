//! Secrets: write-only. `/admin/v1/tenants/{tenant}/secrets` holds the tenant's own
//! (owners and admins), `/admin/v1/me/secrets` the calling user's (any member, for their own
//! upstream credentials). Names and metadata are listed; values are accepted, encrypted and
//! never returned, logged or audited.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_domain::tenancy::{TenantId, UserId};
use switchboard_secrets::VaultError;
use switchboard_store::SecretMeta;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::path_tenant;
use crate::AdminState;
use crate::access::{Admin, Need, Who};
use crate::changes::Change;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Body, Params};
use crate::page::{self, PageQuery, list_of};

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenant_secrets))
        .routes(routes!(put_tenant_secret, delete_tenant_secret))
        .routes(routes!(list_my_secrets))
        .routes(routes!(put_my_secret, delete_my_secret))
}

/// A secret, without its value.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretView {
    #[schema(example = "github_token")]
    pub name: String,
    pub description: String,
    /// The owning user's email; absent for the tenant's own secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Increases with every write.
    pub version: i64,
}

impl From<&SecretMeta> for SecretView {
    fn from(m: &SecretMeta) -> Self {
        Self {
            name: m.name.clone(),
            description: m.description.clone(),
            owner: (!m.owner.is_empty()).then(|| m.owner.clone()),
            created_at: m.created_at,
            updated_at: m.updated_at,
            version: m.version,
        }
    }
}

list_of!(SecretList, SecretView);

/// A secret's value (never returned) and description.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSecret {
    /// The value, up to 64 KiB of text; encrypted at rest, never shown again.
    pub value: String,
    #[serde(default)]
    pub description: String,
}

fn vault_error(err: VaultError) -> ApiError {
    match err {
        VaultError::Store(err) => err.into(),
        VaultError::BadName(_) => ApiError::invalid("name", err.to_string()),
        VaultError::BadValue => ApiError::invalid("value", err.to_string()),
        other => {
            tracing::error!(error = %other, "admin API: the vault failed");
            ApiError::internal(other.to_string())
        }
    }
}

fn target(user: Option<&UserId>, name: &str) -> String {
    match user {
        Some(user) => format!("secret {user}/{name}"),
        None => format!("secret {name}"),
    }
}

fn audit_detail(meta: &SecretMeta) -> Value {
    json!({"name": meta.name, "owner": meta.owner, "description": meta.description, "version": meta.version})
}

/// The calling user and their tenant (platform administrators and service clients have no
/// secrets of their own).
fn me(admin: &Admin) -> ApiResult<(TenantId, UserId)> {
    match (&admin.who, admin.user()) {
        (Who::Tenant(p), Some(user)) => Ok((p.tenant.clone(), user.clone())),
        _ => Err(ApiError::forbidden(
            "only users have secrets of their own; platform administrators and service clients manage tenants' secrets",
        )),
    }
}

async fn list(
    state: &AdminState,
    tenant: &TenantId,
    user: Option<&UserId>,
    q: &PageQuery,
) -> ApiResult<Json<SecretList>> {
    let secrets: Vec<SecretView> = state
        .0
        .vault
        .list(tenant, user)
        .await
        .map_err(vault_error)?
        .iter()
        .map(SecretView::from)
        .collect();
    Ok(Json(SecretList::new(page::slice(secrets, |s| &s.name, q)?)))
}

async fn put(
    state: &AdminState,
    admin: &Admin,
    tenant: &TenantId,
    user: Option<&UserId>,
    name: &str,
    body: NewSecret,
) -> ApiResult<(StatusCode, Json<SecretView>)> {
    let value = SecretString::from(body.value);
    let meta = state
        .0
        .vault
        .put(tenant, user, name, &body.description, &value)
        .await
        .map_err(vault_error)?;
    state.0.hooks.secrets_changed(tenant);
    let created = meta.version == 1;
    state
        .changed(
            admin,
            Change {
                tenant,
                action: "secret.set",
                target: target(user, name),
                before: Value::Null,
                after: audit_detail(&meta),
            },
        )
        .await;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(SecretView::from(&meta))))
}

async fn delete(
    state: &AdminState,
    admin: &Admin,
    tenant: &TenantId,
    user: Option<&UserId>,
    name: &str,
) -> ApiResult<StatusCode> {
    state
        .0
        .vault
        .delete(tenant, user, name)
        .await
        .map_err(vault_error)?;
    state.0.hooks.secrets_changed(tenant);
    state
        .changed(
            admin,
            Change {
                tenant,
                action: "secret.delete",
                target: target(user, name),
                before: json!({"name": name, "owner": user.map(ToString::to_string)}),
                after: Value::Null,
            },
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's own secrets (names and metadata only).
#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/secrets", tag = "secrets",
    params(("tenant" = String, Path, description = "Tenant id"), PageQuery),
    responses((status = 200, description = "One page of secrets, without values", body = SecretList),
              (status = 404, description = "No such tenant", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_tenant_secrets(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<SecretList>> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    list(&state, &id, None, &q).await
}

/// Creates (201) or replaces (200) a secret of the tenant. The value is encrypted and never
/// returned.
#[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/secrets/{name}", tag = "secrets",
    params(("tenant" = String, Path, description = "Tenant id"),
           ("name" = String, Path, description = "Letters, digits and '_', up to 64")),
    request_body = NewSecret,
    responses((status = 201, description = "Created", body = SecretView),
              (status = 200, description = "Replaced (version increased)", body = SecretView),
              (status = 422, description = "Bad name or value", body = ErrorBody)),
    security(("bearer" = [])))]
async fn put_tenant_secret(
    admin: Admin,
    State(state): State<AdminState>,
    Path((tenant, name)): Path<(String, String)>,
    Body(body): Body<NewSecret>,
) -> ApiResult<(StatusCode, Json<SecretView>)> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    put(&state, &admin, &id, None, &name, body).await
}

/// Deletes a secret of the tenant.
#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/secrets/{name}", tag = "secrets",
    params(("tenant" = String, Path, description = "Tenant id"),
           ("name" = String, Path, description = "Secret name")),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such secret", body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_tenant_secret(
    admin: Admin,
    State(state): State<AdminState>,
    Path((tenant, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    delete(&state, &admin, &id, None, &name).await
}

/// The calling user's own secrets (names and metadata only).
#[utoipa::path(get, path = "/admin/v1/me/secrets", tag = "secrets",
    params(PageQuery),
    responses((status = 200, description = "One page of your secrets, without values", body = SecretList),
              (status = 403, description = "Not a user", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_my_secrets(
    admin: Admin,
    State(state): State<AdminState>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<SecretList>> {
    let (tenant, user) = me(&admin)?;
    list(&state, &tenant, Some(&user), &q).await
}

/// Creates or replaces one of your secrets (used instead of the tenant's for your calls).
#[utoipa::path(put, path = "/admin/v1/me/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "Letters, digits and '_', up to 64")),
    request_body = NewSecret,
    responses((status = 201, description = "Created", body = SecretView),
              (status = 200, description = "Replaced", body = SecretView),
              (status = 403, description = "Not a user", body = ErrorBody)),
    security(("bearer" = [])))]
async fn put_my_secret(
    admin: Admin,
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Body(body): Body<NewSecret>,
) -> ApiResult<(StatusCode, Json<SecretView>)> {
    let (tenant, user) = me(&admin)?;
    put(&state, &admin, &tenant, Some(&user), &name, body).await
}

/// Deletes one of your secrets.
#[utoipa::path(delete, path = "/admin/v1/me/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "Secret name")),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such secret", body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_my_secret(
    admin: Admin,
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let (tenant, user) = me(&admin)?;
    delete(&state, &admin, &tenant, Some(&user), &name).await
}
