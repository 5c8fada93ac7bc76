//! The JSON shapes of the admin API (camelCase), and their conversion from and to the
//! domain types. Request bodies refuse unknown fields: a typo is an error, not a silently
//! ignored setting. No view holds a secret or a secret's hash.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_domain::tenancy::{
    ApiKeyRecord, ClientId, Effect, Grant, Grantee, Group, GroupName, KeyOwner, Membership, Plan,
    Quotas, Role, RoleDef, ServiceClient, Target, Tenant, TenantId, TenantSettings, TenantStatus,
    UserId,
};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::page::list_of;

// ---- parsing of request fields, each refusal naming its field ----

pub fn tenant_id(field: &str, value: &str) -> ApiResult<TenantId> {
    TenantId::new(value).map_err(|e| ApiError::invalid(field, e.to_string()))
}

pub fn user_id(field: &str, value: &str) -> ApiResult<UserId> {
    UserId::new(value).map_err(|e| ApiError::invalid(field, e.to_string()))
}

pub fn group_name(field: &str, value: &str) -> ApiResult<GroupName> {
    GroupName::new(value).map_err(|e| ApiError::invalid(field, e.to_string()))
}

pub fn client_id(field: &str, value: &str) -> ApiResult<ClientId> {
    ClientId::new(value).map_err(|e| ApiError::invalid(field, e.to_string()))
}

pub fn role(field: &str, value: &str) -> ApiResult<Role> {
    Role::parse(value).map_err(|e| ApiError::invalid(field, e.to_string()))
}

pub fn target(field: &str, value: &str) -> ApiResult<Target> {
    Target::parse(value).map_err(|e| ApiError::invalid(field, e.to_string()))
}

pub fn plan(value: &str) -> ApiResult<Plan> {
    Plan::parse(value)
        .ok_or_else(|| ApiError::invalid("plan", "plan must be `free`, `pro` or `enterprise`"))
}

pub fn status(value: &str) -> ApiResult<TenantStatus> {
    TenantStatus::parse(value).ok_or_else(|| {
        ApiError::invalid("status", "status must be `active`, `trial` or `suspended`")
    })
}

/// Client address ranges: CIDR (`10.0.0.0/8`) or single addresses, at most 100.
pub fn address_ranges(field: &str, entries: &[String]) -> ApiResult<Vec<String>> {
    if entries.len() > 100 {
        return Err(ApiError::invalid(field, "at most 100 entries"));
    }
    entries
        .iter()
        .map(|entry| {
            let entry = entry.trim();
            let ok = entry.parse::<ipnet::IpNet>().is_ok() || entry.parse::<std::net::IpAddr>().is_ok();
            if ok {
                Ok(entry.to_owned())
            } else {
                Err(ApiError::invalid(
                    field,
                    format!("{entry:?} is not an address or CIDR range (write e.g. 10.0.0.0/8 or 192.0.2.7)"),
                ))
            }
        })
        .collect()
}

/// Quotas from JSON.
pub fn quotas(field: &str, value: Value) -> ApiResult<Quotas> {
    serde_json::from_value(value).map_err(|e| ApiError::invalid(field, format!("{field}: {e}")))
}

/// Settings from JSON, checked beyond their shape (addresses and CIDR ranges parse).
pub fn settings(value: Value) -> ApiResult<TenantSettings> {
    let settings: TenantSettings = serde_json::from_value(value)
        .map_err(|e| ApiError::invalid("settings", format!("settings: {e}")))?;
    address_ranges("settings.ipAllowlist", &settings.ip_allowlist)?;
    Ok(settings)
}

// ---- tenants ----

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantView {
    /// Slug: lowercase letters, digits and `-`.
    #[schema(example = "acme")]
    pub id: String,
    pub name: String,
    /// `active`, `trial` or `suspended`.
    #[schema(example = "active")]
    pub status: String,
    /// `free`, `pro` or `enterprise`.
    #[schema(example = "free")]
    pub plan: String,
    /// Host names that resolve to this tenant.
    pub domains: Vec<String>,
    /// Limits, quotas, features, IP allowlist (see docs/configuration.md, "Tenant settings").
    #[schema(value_type = Object)]
    pub settings: Value,
    /// Increases with every change; also the `ETag`.
    pub version: i64,
}

impl TenantView {
    pub fn new(tenant: &Tenant, version: i64) -> Self {
        Self {
            id: tenant.id.to_string(),
            name: tenant.name.clone(),
            status: tenant.status.as_str().to_owned(),
            plan: tenant.plan.as_str().to_owned(),
            domains: tenant.domains.clone(),
            settings: serde_json::to_value(&tenant.settings).unwrap_or(Value::Null),
            version,
        }
    }
}

list_of!(TenantList, TenantView);

/// A tenant to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewTenant {
    #[schema(example = "acme")]
    pub id: String,
    pub name: String,
    /// Default `free`.
    pub plan: Option<String>,
    /// `active` (default) or `trial`.
    pub status: Option<String>,
    #[serde(default)]
    pub domains: Vec<String>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    /// Email of a first owner, added as a member with the `owner` role.
    pub owner: Option<String>,
}

/// Fields of a tenant to change; absent fields stay as they are. `settings` replaces the
/// whole settings document.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TenantPatch {
    pub name: Option<String>,
    /// Platform administrators only.
    pub plan: Option<String>,
    /// Platform administrators only.
    pub status: Option<String>,
    pub domains: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
}

// ---- members and groups ----

/// A user's membership of the tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    #[schema(example = "ada@acme.com")]
    pub user: String,
    /// `owner`, `admin`, `member`, `readonly` or a custom role.
    pub role: String,
}

impl From<&Membership> for MemberView {
    fn from(m: &Membership) -> Self {
        Self {
            user: m.user.to_string(),
            role: m.role.to_string(),
        }
    }
}

list_of!(MemberList, MemberView);

/// A user to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    pub user: String,
    /// Default `member`.
    pub role: Option<String>,
}

/// A member's new role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberPatch {
    pub role: String,
}

/// A group of the tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    pub name: String,
    pub description: String,
    pub members: Vec<String>,
}

impl From<&Group> for GroupView {
    fn from(g: &Group) -> Self {
        Self {
            name: g.name.to_string(),
            description: g.description.clone(),
            members: g.members.iter().map(ToString::to_string).collect(),
        }
    }
}

list_of!(GroupList, GroupView);

/// A group to create; its members must be members of the tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub members: Vec<String>,
}

// ---- roles and grants ----

/// A custom role: permissions on servers and items, with optional argument conditions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleView {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `[{"kinds": ["tool"], "target": "github/*", "conditions": [{"argument": "repo",
    /// "matches": "acme-*"}, {"cel": "size(args.title) < 200 && 'eng' in groups"}]}]`
    #[schema(value_type = Vec<Object>)]
    pub permissions: Value,
}

impl From<&RoleDef> for RoleView {
    fn from(r: &RoleDef) -> Self {
        Self {
            name: r.name.clone(),
            description: r.description.clone(),
            permissions: serde_json::to_value(&r.permissions).unwrap_or(Value::Null),
        }
    }
}

list_of!(RoleList, RoleView);

/// Who a grant or key is for: `{"type": "group", "id": "eng"}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// `user`, `group`, `role` or `client` (keys: `user` or `client`).
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

impl Subject {
    pub fn grantee(&self) -> ApiResult<Grantee> {
        Ok(match self.kind.as_str() {
            "user" => Grantee::User(user_id("grantee.id", &self.id)?),
            "group" => Grantee::Group(group_name("grantee.id", &self.id)?),
            "role" => Grantee::Role(role("grantee.id", &self.id)?),
            "client" => Grantee::Client(client_id("grantee.id", &self.id)?),
            _ => {
                return Err(ApiError::invalid(
                    "grantee.type",
                    "grantee type must be `user`, `group`, `role` or `client`",
                ));
            }
        })
    }

    fn of_grantee(g: &Grantee) -> Self {
        let (kind, id) = match g {
            Grantee::User(u) => ("user", u.to_string()),
            Grantee::Group(g) => ("group", g.to_string()),
            Grantee::Role(r) => ("role", r.to_string()),
            Grantee::Client(c) => ("client", c.to_string()),
        };
        Self {
            kind: kind.to_owned(),
            id,
        }
    }

    fn of_owner(o: &KeyOwner) -> Self {
        let (kind, id) = match o {
            KeyOwner::User(u) => ("user", u.to_string()),
            KeyOwner::Client(c) => ("client", c.to_string()),
        };
        Self {
            kind: kind.to_owned(),
            id,
        }
    }
}

/// A grant: who may (or may not) use which servers and items.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantView {
    pub id: String,
    pub grantee: Subject,
    /// `server`, `server/item` or `*`, with `*` and `?` wildcards.
    #[schema(example = "github/create_*")]
    pub target: String,
    /// `allow` or `deny` (a matching deny wins).
    pub effect: String,
}

impl GrantView {
    pub fn new(id: &str, g: &Grant) -> Self {
        Self {
            id: id.to_owned(),
            grantee: Subject::of_grantee(&g.grantee),
            target: g.target.to_string(),
            effect: g.effect.as_str().to_owned(),
        }
    }
}

list_of!(GrantList, GrantView);

/// A grant to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    pub grantee: Subject,
    pub target: String,
    /// `allow` (default) or `deny`.
    pub effect: Option<String>,
}

impl NewGrant {
    pub fn grant(&self) -> ApiResult<Grant> {
        let effect = match self.effect.as_deref() {
            None | Some("allow") => Effect::Allow,
            Some("deny") => Effect::Deny,
            Some(_) => {
                return Err(ApiError::invalid(
                    "effect",
                    "effect must be `allow` or `deny`",
                ));
            }
        };
        Ok(Grant {
            grantee: self.grantee.grantee()?,
            target: target("target", &self.target)?,
            effect,
        })
    }
}

// ---- API keys and service clients ----

/// An API key, without its secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    /// The public part of `sb_<id>_<secret>`.
    pub id: String,
    pub name: String,
    pub owner: Subject,
    /// When not empty, the key reaches only these targets.
    pub restrictions: Vec<String>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
    /// `active`, `expired` or `revoked`.
    pub status: String,
    /// The key's own call quotas (`{"callsPerDay", "callsPerMonth"}`), besides its tenant's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub quotas: Option<Value>,
    /// Addresses or CIDR ranges the key may be used from (empty: any; the tenant's
    /// allowlist applies as well).
    pub ip_allowlist: Vec<String>,
}

impl ApiKeyView {
    pub fn new(k: &ApiKeyRecord, now: i64) -> Self {
        let status = if k.revoked_at.is_some() {
            "revoked"
        } else if k.expires_at.is_some_and(|at| at <= now) {
            "expired"
        } else {
            "active"
        };
        Self {
            id: k.id.clone(),
            name: k.name.clone(),
            owner: Subject::of_owner(&k.owner),
            restrictions: k.restrictions.iter().map(ToString::to_string).collect(),
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            created_at: k.created_at,
            status: status.to_owned(),
            quotas: k.quotas.as_ref().and_then(|q| serde_json::to_value(q).ok()),
            ip_allowlist: k.ip_allowlist.clone(),
        }
    }
}

list_of!(ApiKeyList, ApiKeyView);

/// An API key to create, for a member (`owner.type = user`; default: the caller) or a
/// service client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewApiKey {
    pub name: String,
    pub owner: Option<Subject>,
    #[serde(default)]
    pub restrictions: Vec<String>,
    /// Unix seconds; absent for a key that does not expire.
    pub expires_at: Option<i64>,
    /// The key's own call quotas: `{"callsPerDay": 1000, "callsPerMonth": 20000}`.
    #[schema(value_type = Option<Object>)]
    pub quotas: Option<Value>,
    /// Addresses or CIDR ranges the key may be used from; empty: any.
    #[serde(default)]
    pub ip_allowlist: Vec<String>,
}

/// A created API key: `secret` is shown this once and cannot be read again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    pub key: ApiKeyView,
    /// The whole key, `sb_<id>_<secret>`: store it now.
    pub secret: String,
}

/// A service client (machine identity for the OAuth client-credentials grant).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    pub id: String,
    pub name: String,
    pub role: String,
    pub disabled: bool,
}

impl From<&ServiceClient> for ClientView {
    fn from(c: &ServiceClient) -> Self {
        Self {
            id: c.id.to_string(),
            name: c.name.clone(),
            role: c.role.to_string(),
            disabled: c.disabled,
        }
    }
}

list_of!(ClientList, ClientView);

/// A service client to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    pub id: String,
    pub name: String,
    /// Default `member`.
    pub role: Option<String>,
}

/// Enables or disables a client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    pub disabled: bool,
}

/// A created client: `secret` is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedClient {
    pub client: ClientView,
    /// Send with the client id to `/oauth/token` (HTTP Basic or form).
    pub secret: String,
}

// ---- the caller ----

/// Who the credential belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeView {
    /// `platform` or `tenant`.
    pub kind: String,
    pub tenant: Option<String>,
    /// `user:ada@acme.com`, `client:ci`, `platform-admin`.
    pub identity: String,
    pub roles: Vec<String>,
    /// The credential's public id.
    pub credential: String,
}
