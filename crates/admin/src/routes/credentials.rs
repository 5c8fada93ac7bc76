//! `/admin/v1/tenants/{tenant}/api-keys` and `…/clients`: credentials of the tenant's users
//! and machines. A secret is returned once, in the creation answer, and never again; only
//! its keyed hash is stored.
//!
//! Members manage their own API keys; owners and admins manage every key and client of the
//! tenant, but never issue a credential carrying a role above their own.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::ExposeSecret;
use serde_json::Value;
use switchboard_auth::api_key::{self, HashingKey};
use switchboard_domain::tenancy::{ApiKeyRecord, KeyOwner, ServiceClient, TenantId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::path_tenant;
use crate::AdminState;
use crate::access::{Admin, Need, rank};
use crate::changes::{Change, snapshot};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Body, Params};
use crate::page::{self, PageQuery};
use crate::views::{
    self, ApiKeyList, ApiKeyView, ClientList, ClientPatch, ClientView, CreatedApiKey,
    CreatedClient, NewApiKey, NewClient, Subject,
};

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
        .routes(routes!(list_clients, create_client))
        .routes(routes!(change_client))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Whether the caller owns the key (their own user key).
fn owns(admin: &Admin, key: &ApiKeyRecord) -> bool {
    matches!((&key.owner, admin.user()), (KeyOwner::User(owner), Some(me)) if owner == me)
}

/// Read access to keys: admins see all, members their own.
fn may_manage(admin: &Admin, tenant: &TenantId) -> ApiResult<bool> {
    admin.check(tenant, Need::Read)?;
    Ok(admin.check(tenant, Need::Manage).is_ok())
}

/// API keys of the tenant (members: their own), by id.
#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/api-keys", tag = "api-keys",
    params(("tenant" = String, Path, description = "Tenant id"), PageQuery),
    responses((status = 200, description = "One page of keys, without secrets", body = ApiKeyList),
              (status = 404, description = "No such tenant", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_keys(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<ApiKeyList>> {
    let id = path_tenant(&tenant)?;
    let all = may_manage(&admin, &id)?;
    let now = now();
    let mut keys: Vec<ApiKeyView> = state
        .store()
        .tenant(&id)
        .api_keys()
        .await?
        .iter()
        .filter(|k| all || owns(&admin, k))
        .map(|k| ApiKeyView::new(k, now))
        .collect();
    keys.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(ApiKeyList::new(page::slice(keys, |k| &k.id, &q)?)))
}

/// Creates an API key. The answer holds the whole key once; it cannot be read again.
#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/api-keys", tag = "api-keys",
    params(("tenant" = String, Path, description = "Tenant id")),
    request_body = NewApiKey,
    responses((status = 201, description = "Created; `secret` is shown this once", body = CreatedApiKey),
              (status = 403, description = "A key for someone else, or above your role", body = ErrorBody),
              (status = 422, description = "Unknown owner, bad restriction or expiry", body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_key(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
    Body(body): Body<NewApiKey>,
) -> ApiResult<(StatusCode, Json<CreatedApiKey>)> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Read)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid(
            "name",
            "name must have 1 to 200 characters",
        ));
    }
    let owner = match (&body.owner, admin.user()) {
        (Some(subject), _) => key_owner(subject)?,
        (None, Some(me)) => KeyOwner::User(me.clone()),
        (None, None) => {
            return Err(ApiError::invalid(
                "owner",
                "say whom the key is for: {\"type\": \"user\", \"id\": EMAIL} or {\"type\": \"client\", \"id\": CLIENT}",
            ));
        }
    };
    let is_own = matches!((&owner, admin.user()), (KeyOwner::User(o), Some(me)) if o == me);
    if !is_own {
        admin.check(&id, Need::Manage)?;
    }
    check_owner(&state, &admin, &id, &owner).await?;
    let restrictions = body
        .restrictions
        .iter()
        .map(|t| views::target("restrictions", t))
        .collect::<ApiResult<Vec<_>>>()?;
    let now = now();
    if let Some(at) = body.expires_at
        && at <= now
    {
        return Err(ApiError::invalid(
            "expiresAt",
            "expiresAt is in the past (Unix seconds)",
        ));
    }
    let quotas = body
        .quotas
        .map(|q| views::quotas("quotas", q))
        .transpose()?;
    let ip_allowlist = views::address_ranges("ipAllowlist", &body.ip_allowlist)?;
    let new = api_key::generate(state.0.auth.hashing());
    let record = ApiKeyRecord {
        id: new.id.clone(),
        tenant: id.clone(),
        name: name.to_owned(),
        owner,
        hash: new.hash,
        restrictions,
        expires_at: body.expires_at,
        revoked_at: None,
        created_at: now,
        quotas,
        ip_allowlist,
    };
    state.store().tenant(&id).create_api_key(&record).await?;
    let view = ApiKeyView::new(&record, now);
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: "api_key.create",
                target: format!("api key {}", record.id),
                before: Value::Null,
                after: snapshot(&view),
            },
        )
        .await;
    let secret = new.text.expose_secret().to_owned();
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey { key: view, secret }),
    ))
}

fn key_owner(subject: &Subject) -> ApiResult<KeyOwner> {
    match subject.kind.as_str() {
        "user" => Ok(KeyOwner::User(views::user_id("owner.id", &subject.id)?)),
        "client" => Ok(KeyOwner::Client(views::client_id("owner.id", &subject.id)?)),
        _ => Err(ApiError::invalid(
            "owner.type",
            "owner type must be `user` or `client`",
        )),
    }
}

/// The owner must exist in the tenant and hold no role above the caller's.
async fn check_owner(
    state: &AdminState,
    admin: &Admin,
    tenant: &TenantId,
    owner: &KeyOwner,
) -> ApiResult<()> {
    let scoped = state.store().tenant(tenant);
    let role = match owner {
        KeyOwner::User(user) => scoped
            .members()
            .await?
            .into_iter()
            .find(|m| &m.user == user)
            .map(|m| m.role)
            .ok_or_else(|| {
                ApiError::invalid("owner", format!("{user} is not a member of the tenant"))
            })?,
        KeyOwner::Client(client) => scoped
            .clients()
            .await?
            .into_iter()
            .find(|c| &c.id == client)
            .map(|c| c.role)
            .ok_or_else(|| {
                ApiError::invalid(
                    "owner",
                    format!("{client} is not a service client of the tenant"),
                )
            })?,
    };
    if rank(&role) > admin.rank_in(tenant) {
        return Err(ApiError::forbidden(format!(
            "the key would carry the role {role}, which is above yours"
        )));
    }
    Ok(())
}

/// Revokes an API key at once (members: their own).
#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/api-keys/{key}", tag = "api-keys",
    params(("tenant" = String, Path, description = "Tenant id"),
           ("key" = String, Path, description = "The key's public id")),
    responses((status = 204, description = "Revoked (revoking twice is not an error)"),
              (status = 404, description = "No such key", body = ErrorBody)),
    security(("bearer" = [])))]
async fn revoke_key(
    admin: Admin,
    State(state): State<AdminState>,
    Path((tenant, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = path_tenant(&tenant)?;
    let all = may_manage(&admin, &id)?;
    let scoped = state.store().tenant(&id);
    let record = scoped
        .api_keys()
        .await?
        .into_iter()
        .find(|k| k.id == key && (all || owns(&admin, k)))
        .ok_or_else(|| ApiError::not_found("API key", &key))?;
    let now = now();
    scoped.revoke_api_key(&key, now).await?;
    let before = ApiKeyView::new(&record, now);
    let after = ApiKeyView::new(
        &ApiKeyRecord {
            revoked_at: record.revoked_at.or(Some(now)),
            ..record
        },
        now,
    );
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: "api_key.revoke",
                target: format!("api key {key}"),
                before: snapshot(&before),
                after: snapshot(&after),
            },
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Service clients of the tenant, by id.
#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/clients", tag = "clients",
    params(("tenant" = String, Path, description = "Tenant id"), PageQuery),
    responses((status = 200, description = "One page of clients, without secrets", body = ClientList),
              (status = 404, description = "No such tenant", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_clients(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<ClientList>> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    let mut clients: Vec<ClientView> = state
        .store()
        .tenant(&id)
        .clients()
        .await?
        .iter()
        .map(ClientView::from)
        .collect();
    clients.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(ClientList::new(page::slice(clients, |c| &c.id, &q)?)))
}

/// A new client secret: `sbc_` and 32 random bytes, base64url.
fn client_secret() -> String {
    format!(
        "sbc_{}",
        URL_SAFE_NO_PAD.encode(HashingKey::generate_secret())
    )
}

/// Creates a service client for the OAuth client-credentials grant (`/oauth/token`). The
/// answer holds its secret once.
#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/clients", tag = "clients",
    params(("tenant" = String, Path, description = "Tenant id")),
    request_body = NewClient,
    responses((status = 201, description = "Created; `secret` is shown this once", body = CreatedClient),
              (status = 409, description = "The id is taken", body = ErrorBody),
              (status = 422, description = "Bad id or role", body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_client(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
    Body(body): Body<NewClient>,
) -> ApiResult<(StatusCode, Json<CreatedClient>)> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    let client_id = views::client_id("id", &body.id)?;
    let role = views::role("role", body.role.as_deref().unwrap_or("member"))?;
    if rank(&role) > admin.rank_in(&id) {
        return Err(ApiError::forbidden(format!(
            "you cannot hand out the role {role}: it is above your own"
        )));
    }
    let secret = client_secret();
    let client = ServiceClient {
        id: client_id,
        tenant: id.clone(),
        name: body.name,
        role,
        secret_hash: state.0.auth.hashing().hash(secret.as_bytes()),
        disabled: false,
    };
    state.store().tenant(&id).create_client(&client).await?;
    let view = ClientView::from(&client);
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: "client.create",
                target: format!("client {}", client.id),
                before: Value::Null,
                after: snapshot(&view),
            },
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(CreatedClient {
            client: view,
            secret,
        }),
    ))
}

/// Disables (tokens are refused from now on) or re-enables a client.
#[utoipa::path(patch, path = "/admin/v1/tenants/{tenant}/clients/{client}", tag = "clients",
    params(("tenant" = String, Path, description = "Tenant id"),
           ("client" = String, Path, description = "Client id")),
    request_body = ClientPatch,
    responses((status = 200, description = "The client", body = ClientView),
              (status = 404, description = "No such client", body = ErrorBody)),
    security(("bearer" = [])))]
async fn change_client(
    admin: Admin,
    State(state): State<AdminState>,
    Path((tenant, client)): Path<(String, String)>,
    Body(body): Body<ClientPatch>,
) -> ApiResult<Json<ClientView>> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    let scoped = state.store().tenant(&id);
    let current = scoped
        .clients()
        .await?
        .into_iter()
        .find(|c| c.id.as_str() == client)
        .ok_or_else(|| ApiError::not_found("client", &client))?;
    scoped
        .set_client_disabled(&current.id, body.disabled)
        .await?;
    let before = ClientView::from(&current);
    let after = ClientView {
        disabled: body.disabled,
        ..ClientView::from(&current)
    };
    state
        .changed(
            &admin,
            Change {
                tenant: &id,
                action: if body.disabled {
                    "client.disable"
                } else {
                    "client.enable"
                },
                target: format!("client {client}"),
                before: snapshot(&before),
                after: snapshot(&after),
            },
        )
        .await;
    Ok(Json(after))
}
