//! The stored tenancy data the authentication snapshot is built from: memberships, groups,
//! credentials and trusted issuers of every tenant. Plain data; the store loads it, the
//! `auth` crate compiles it into lookup tables.

use serde::{Deserialize, Serialize};

use super::grant::Grant;
use super::ids::{ClientId, GroupName, TenantId, UserId};
use super::role::{Role, RoleDef};
use super::target::Target;
use super::tenant::{Quotas, Tenant};

/// A user's role in one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub user: UserId,
    pub role: Role,
}

/// A group and its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: GroupName,
    #[serde(default)]
    pub description: String,
    pub members: Vec<UserId>,
}

/// Whom an API key acts for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "id")]
pub enum KeyOwner {
    /// A member of the tenant: the key carries their roles and groups.
    User(UserId),
    /// A service client of the tenant.
    Client(ClientId),
}

/// A stored API key: its public id and a keyed hash of its secret, never the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// The public part of the key (`sb_<id>_<secret>`), unique across tenants.
    pub id: String,
    pub tenant: TenantId,
    pub name: String,
    pub owner: KeyOwner,
    /// HMAC-SHA256 of the secret under the gateway's key-hashing key.
    pub hash: Vec<u8>,
    /// When not empty, the key may reach only these targets.
    #[serde(default)]
    pub restrictions: Vec<Target>,
    /// Unix seconds after which the key is refused.
    pub expires_at: Option<i64>,
    /// Unix seconds at which the key was revoked.
    pub revoked_at: Option<i64>,
    pub created_at: i64,
    /// Call quotas of this key alone (besides its tenant's).
    #[serde(default)]
    pub quotas: Option<Quotas>,
    /// Client addresses or CIDR ranges the key may be used from; empty allows all (the
    /// tenant's allowlist applies as well).
    #[serde(default)]
    pub ip_allowlist: Vec<String>,
}

impl std::fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("owner", &self.owner)
            .field("hash", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish()
    }
}

/// A service client (machine identity) of one tenant.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceClient {
    pub id: ClientId,
    pub tenant: TenantId,
    pub name: String,
    pub role: Role,
    /// Keyed hash of the client secret (OAuth client-credentials grant).
    pub secret_hash: Vec<u8>,
    pub disabled: bool,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// Where a trusted issuer's claims are found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClaimMapping {
    /// Claim holding the user's email (default `email`, falling back to `sub` when it is an
    /// email address).
    #[serde(default = "default_user_claim")]
    pub user: String,
    /// Claim holding the tenant id; when set, it must name the issuer's tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Claim holding group names (array or space-separated string).
    #[serde(default)]
    pub groups: Option<String>,
    /// Claim holding role names.
    #[serde(default)]
    pub roles: Option<String>,
}

fn default_user_claim() -> String {
    "email".into()
}

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            user: default_user_claim(),
            tenant: None,
            groups: None,
            roles: None,
        }
    }
}

/// An identity provider trusted by one tenant to sign bearer tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IssuerConfig {
    pub tenant: TenantId,
    /// The exact `iss` value.
    pub issuer: String,
    /// Where the signing keys are published (fetched, cached, refreshed on an unknown `kid`).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Static keys as a JWKS document, instead of a URL.
    #[serde(default)]
    pub jwks: Option<String>,
    /// Accepted `aud` values; empty means this gateway's own resource URIs.
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub claims: ClaimMapping,
    /// Scopes a token must carry (403 `insufficient_scope` otherwise).
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// Role given to a token whose user is not a member and carries no role claim; `None`
    /// refuses such tokens.
    #[serde(default)]
    pub default_role: Option<Role>,
}

/// Everything stored about one tenant that authentication and policy need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantDirectory {
    pub tenant: Tenant,
    pub members: Vec<Membership>,
    pub groups: Vec<Group>,
    pub roles: Vec<RoleDef>,
    pub grants: Vec<Grant>,
    pub api_keys: Vec<ApiKeyRecord>,
    pub clients: Vec<ServiceClient>,
    pub issuers: Vec<IssuerConfig>,
    /// Ids (`jti`) of revoked tokens issued by this gateway that have not expired yet.
    pub revoked_tokens: Vec<String>,
    /// Upstream servers the tenant defined for itself.
    #[serde(default)]
    pub servers: Vec<TenantServer>,
}

/// An upstream server a tenant defined for itself (checked with
/// [`crate::UpstreamDef::for_tenant`] when written and again when the data plane loads it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantServer {
    pub name: String,
    pub description: String,
    pub definition: crate::upstream::RawUpstream,
    /// Written by a platform administrator: it may run a command on the gateway, and only
    /// platform administrators change it.
    pub by_platform: bool,
    /// Increases with every change (the admin API's `ETag`).
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The whole directory, as loaded in one read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// Incremented by every write; a reader reloads when it changes.
    pub revision: i64,
    pub tenants: Vec<TenantDirectory>,
}
