//! Who is calling the admin API, and what they may touch.
//!
//! Two kinds of caller:
//! - **platform administrators**, with a platform admin token (`sba_…`, stored as a keyed
//!   hash; or the operator's `SWITCHBOARD_ADMIN_TOKEN`): every tenant and the platform;
//! - **tenant members**, with the same API keys and tokens they use for MCP: owners and
//!   admins manage their own tenant, members and readonly users read it and manage their
//!   own API keys.
//!
//! Another tenant's objects are answered 404, exactly like missing ones (never 403, which
//! would confirm that they exist); 403 is for what the caller's role does not allow inside
//! their own tenant. An anonymous principal (a gateway without tenants) is never an admin.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use secrecy::{ExposeSecret, SecretString};
use switchboard_auth::api_key::{self, ADMIN_PREFIX, HashingKey};
use switchboard_auth::{AuthError, RequestFacts};
use switchboard_domain::tenancy::{Identity, Principal, Role, TenantId, UserId};

use crate::AdminState;
use crate::error::{ApiError, ApiResult};

/// The authenticated caller of one admin request.
pub struct Admin {
    pub who: Who,
    /// The TCP peer, recorded with every change.
    pub ip: Option<IpAddr>,
}

/// Which kind of administrator.
pub enum Who {
    /// A platform administrator; `token` is the platform token's public id (`env` for
    /// `SWITCHBOARD_ADMIN_TOKEN`).
    Platform { token: String },
    /// A member of one tenant, with their roles there.
    Tenant(Arc<Principal>),
}

/// What an operation needs inside a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any member (readonly included).
    Read,
    /// An owner or admin.
    Manage,
    /// An owner (changes to ownership).
    Own,
}

/// Rank of a role for "may not hand out more than one holds" checks.
pub fn rank(role: &Role) -> u8 {
    match role {
        Role::Owner => 3,
        Role::Admin => 2,
        Role::Member | Role::Custom(_) => 1,
        Role::Readonly => 0,
    }
}

impl Admin {
    /// `platform-admin:<token>` or the principal's identity.
    pub fn actor(&self) -> String {
        match &self.who {
            Who::Platform { .. } => "platform-admin".to_owned(),
            Who::Tenant(p) => p.identity.to_string(),
        }
    }

    /// The credential's public id.
    pub fn credential(&self) -> String {
        match &self.who {
            Who::Platform { token } => format!("admin-token:{token}"),
            Who::Tenant(p) => p.credential.id.clone(),
        }
    }

    /// Whether this is a platform administrator.
    pub fn is_platform(&self) -> bool {
        matches!(self.who, Who::Platform { .. })
    }

    /// The highest role held in `tenant` (platform administrators rank as owners).
    pub fn rank_in(&self, tenant: &TenantId) -> u8 {
        match &self.who {
            Who::Platform { .. } => rank(&Role::Owner),
            Who::Tenant(p) if &p.tenant == tenant => p.roles.iter().map(rank).max().unwrap_or(0),
            Who::Tenant(_) => 0,
        }
    }

    /// The calling user, when the caller is one.
    pub fn user(&self) -> Option<&UserId> {
        match &self.who {
            Who::Tenant(p) => match &p.identity {
                Identity::User(u) => Some(u),
                _ => None,
            },
            Who::Platform { .. } => None,
        }
    }

    /// Allows the operation on `tenant` if the caller may, else 404 (another tenant) or 403.
    pub fn check(&self, tenant: &TenantId, need: Need) -> ApiResult<()> {
        let Who::Tenant(principal) = &self.who else {
            return Ok(());
        };
        if &principal.tenant != tenant {
            return Err(ApiError::not_found("tenant", tenant));
        }
        let allowed = match need {
            Need::Read => true,
            Need::Manage => principal.is_tenant_admin(),
            Need::Own => principal.roles.contains(&Role::Owner),
        };
        if allowed {
            return Ok(());
        }
        Err(ApiError::forbidden(match need {
            Need::Manage => "this needs the owner or admin role in the tenant",
            _ => "this needs the owner role in the tenant",
        }))
    }

    /// Allows platform administrators only. `tenant` is the object concerned: a tenant
    /// caller gets 404 for another tenant's, 403 for their own.
    pub fn platform_only(&self, tenant: Option<&TenantId>, what: &str) -> ApiResult<()> {
        match (&self.who, tenant) {
            (Who::Platform { .. }, _) => Ok(()),
            (Who::Tenant(p), Some(t)) if &p.tenant != t => Err(ApiError::not_found("tenant", t)),
            (Who::Tenant(_), _) => Err(ApiError::forbidden(format!(
                "only platform administrators can {what}"
            ))),
        }
    }
}

/// The operator's `SWITCHBOARD_ADMIN_TOKEN`, kept as its keyed hash.
pub struct BootstrapToken(Vec<u8>);

impl BootstrapToken {
    /// Shortest accepted operator token.
    pub const MIN_LEN: usize = 32;

    /// Hashes the operator's token; refuses one too short to resist guessing.
    pub fn new(token: &SecretString, hashing: &HashingKey) -> Result<Self, String> {
        let text = token.expose_secret().trim();
        if text.len() < Self::MIN_LEN {
            return Err(format!(
                "SWITCHBOARD_ADMIN_TOKEN has {} characters; use at least {} random ones \
                 (e.g. `openssl rand -hex 32`)",
                text.len(),
                Self::MIN_LEN
            ));
        }
        Ok(Self(hashing.hash(text.as_bytes())))
    }
}

fn bearer(parts: &Parts) -> ApiResult<&str> {
    let missing = || {
        ApiError::unauthorized(
            "send `Authorization: Bearer <credential>`: a platform admin token (sba_…), or the \
             API key or token of a tenant owner or admin",
        )
    };
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| missing())?;
    let (scheme, credential) = value.split_once(' ').ok_or_else(missing)?;
    let credential = credential.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || credential.is_empty() || credential.len() > 16_384
    {
        return Err(missing());
    }
    Ok(credential)
}

impl FromRequestParts<AdminState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> ApiResult<Self> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_canonical());
        let credential = bearer(parts)?;
        let inner = &state.0;
        let hashing = inner.auth.hashing();
        if let Some(bootstrap) = &inner.bootstrap
            && hashing.verify(credential.as_bytes(), &bootstrap.0)
        {
            let who = Who::Platform {
                token: "env".to_owned(),
            };
            return Ok(Self { who, ip });
        }
        if credential.starts_with(ADMIN_PREFIX) {
            return platform_token(state, credential)
                .await
                .map(|token| Self {
                    who: Who::Platform { token },
                    ip,
                })
                .inspect_err(|_| state.refused("platform admin token refused", ip));
        }
        let facts = RequestFacts {
            bearer: Some(credential),
            resource: &inner.public_url,
            client_ip: ip,
            ..RequestFacts::default()
        };
        let authenticated = match inner.auth.authenticate(&facts).await {
            Ok(a) => a,
            Err(err) => {
                inner.auth.report(&err, &facts);
                return Err(auth_error(&err));
            }
        };
        if authenticated.principal.identity == Identity::Anonymous {
            return Err(ApiError::unauthorized(
                "the admin API needs a credential; without tenants, use a platform admin token",
            ));
        }
        Ok(Self {
            who: Who::Tenant(authenticated.principal),
            ip,
        })
    }
}

async fn platform_token(state: &AdminState, credential: &str) -> ApiResult<String> {
    let refused = || ApiError::unauthorized("the platform admin token is unknown or revoked");
    let presented = api_key::parse_with(ADMIN_PREFIX, credential).ok_or_else(refused)?;
    let row = state
        .0
        .store
        .admin_token(presented.id)
        .await?
        .ok_or_else(refused)?;
    let valid = state
        .0
        .auth
        .hashing()
        .verify(presented.secret.as_bytes(), &row.hash);
    if !valid || row.revoked_at.is_some() {
        return Err(refused());
    }
    Ok(row.id)
}

fn auth_error(err: &AuthError) -> ApiError {
    let message = err.to_string();
    match err.status() {
        403 => ApiError::forbidden(message),
        503 => ApiError::unavailable(message),
        _ => ApiError::unauthorized(message),
    }
}
