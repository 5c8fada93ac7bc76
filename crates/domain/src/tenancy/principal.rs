//! The principal: the authenticated caller of one request.

use std::fmt;

use serde::Serialize;

use super::ids::GroupName;
use super::ids::{ClientId, TenantId, UserId};
use super::role::Role;
use super::target::Target;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "id")]
pub enum Identity {
    User(UserId),
    /// A service client (machine identity) or an API key not tied to a user.
    Client(ClientId),
    /// No credential: only in a gateway with no tenants configured (the built-in `default`
    /// tenant), or the local stdio bridge.
    Anonymous,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(u) => write!(f, "user:{u}"),
            Self::Client(c) => write!(f, "client:{c}"),
            Self::Anonymous => f.write_str("anonymous"),
        }
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    ApiKey,
    Jwt,
    None,
}

/// The credential of one request, by reference: never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Credential {
    pub kind: CredentialKind,
    /// The API key's public id, or the token's issuer and id (`iss#jti`); empty for none.
    pub id: String,
}

/// The authenticated caller of one request, resolved to exactly one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub tenant: TenantId,
    pub identity: Identity,
    /// Roles held in `tenant` (a member without a role is `member`).
    pub roles: Vec<Role>,
    pub groups: Vec<GroupName>,
    pub credential: Credential,
    /// When not empty, the credential is bound to these targets only (an API key for one
    /// server, say); the policy denies everything else.
    pub restrictions: Vec<Target>,
    /// OAuth scopes carried by the token.
    pub scopes: Vec<String>,
}

impl Principal {
    /// The caller of a gateway without tenants: owner of the built-in `default` tenant.
    pub fn anonymous() -> Self {
        Self {
            tenant: TenantId::default_tenant(),
            identity: Identity::Anonymous,
            roles: vec![Role::Owner],
            groups: Vec::new(),
            credential: Credential {
                kind: CredentialKind::None,
                id: String::new(),
            },
            restrictions: Vec::new(),
            scopes: Vec::new(),
        }
    }

    /// What a legacy session is bound to: the tenant and the identity. A refreshed token of
    /// the same user keeps the session; another user, client or tenant does not.
    pub fn session_owner(&self) -> SessionOwner {
        SessionOwner {
            tenant: self.tenant.clone(),
            identity: self.identity.clone(),
        }
    }

    /// Whether any role makes the caller a tenant admin.
    pub fn is_tenant_admin(&self) -> bool {
        self.roles.iter().any(Role::is_tenant_admin)
    }
}

/// The owner of a legacy session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionOwner {
    pub tenant: TenantId,
    pub identity: Identity,
}

impl fmt::Display for SessionOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.identity)
    }
}
