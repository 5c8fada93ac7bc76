//! The one decision function for listing and calling tools, prompts and resources.
//!
//! Order of evaluation (the first rule that applies decides):
//! 1. a principal of another tenant is denied;
//! 2. a credential bound to targets is denied everything outside them;
//! 3. a matching **deny** grant denies — for every role, owners included (deny overrides);
//! 4. owners and admins are allowed everything else in their tenant;
//! 5. a principal whose only role is `readonly` may not use tools;
//! 6. a matching allow grant (to the user, one of their groups or roles, or the client), or a
//!    permission of one of their custom roles whose conditions hold, allows;
//! 7. everything else is denied: members see only what is granted.
//!
//! Listing asks the same question without arguments (conditions are then not checked), so a
//! tool that may not be called is never listed, and a denied call can answer exactly like an
//! unknown tool. Every decision carries its reason for the audit trail.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::condition::CallFacts;
use super::grant::{Effect, Grant, Grantee};
use super::ids::TenantId;
use super::principal::{Identity, Principal};
use super::role::{ItemKind, Permission, Role, RoleDef};

/// What is being listed or called.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    pub kind: ItemKind,
    /// The upstream server's name.
    pub server: &'a str,
    /// The upstream's own name of the tool or prompt, or the resource URI.
    pub name: &'a str,
    /// A call's arguments; `None` when listing.
    pub arguments: Option<&'a Map<String, Value>>,
}

/// Why a decision came out as it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    OtherTenant,
    /// The server is not in the tenant's catalog.
    NotAvailableToTenant,
    OutsideCredentialBinding,
    DeniedByGrant(Arc<str>),
    TenantAdmin,
    ReadonlyMayNotUseTools,
    Granted(Arc<str>),
    RolePermission(Arc<str>),
    ConditionNotMet(Arc<str>),
    NoGrant,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OtherTenant => f.write_str("principal belongs to another tenant"),
            Self::NotAvailableToTenant => f.write_str("server is not available to the tenant"),
            Self::OutsideCredentialBinding => {
                f.write_str("credential is bound to other servers or tools")
            }
            Self::DeniedByGrant(g) => write!(f, "denied by grant: {g}"),
            Self::TenantAdmin => f.write_str("tenant owner or admin"),
            Self::ReadonlyMayNotUseTools => f.write_str("role readonly may not use tools"),
            Self::Granted(g) => write!(f, "allowed by grant: {g}"),
            Self::RolePermission(r) => write!(f, "allowed by role {r}"),
            Self::ConditionNotMet(r) => {
                write!(f, "arguments do not meet the conditions of role {r}")
            }
            Self::NoGrant => f.write_str("no grant allows it"),
        }
    }
}

/// The outcome of one question to the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
}

impl Decision {
    /// A refusal because the server is not in the tenant's catalog.
    pub fn unavailable() -> Self {
        Self::deny(Reason::NotAvailableToTenant)
    }

    fn allow(reason: Reason) -> Self {
        Self {
            allowed: true,
            reason,
        }
    }

    fn deny(reason: Reason) -> Self {
        Self {
            allowed: false,
            reason,
        }
    }
}

struct CompiledGrant {
    grant: Grant,
    label: Arc<str>,
}

struct CompiledRole {
    label: Arc<str>,
    permissions: Vec<Permission>,
}

/// The compiled grants and custom roles of one tenant; immutable, shared by snapshot.
pub struct Policy {
    tenant: TenantId,
    allows: Vec<CompiledGrant>,
    denies: Vec<CompiledGrant>,
    roles: HashMap<String, CompiledRole>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("tenant", &self.tenant)
            .field("allows", &self.allows.len())
            .field("denies", &self.denies.len())
            .field("roles", &self.roles.len())
            .finish()
    }
}

impl Policy {
    /// Compiles a tenant's grants and custom roles.
    pub fn new(tenant: TenantId, grants: Vec<Grant>, roles: Vec<RoleDef>) -> Self {
        let (mut allows, mut denies) = (Vec::new(), Vec::new());
        for grant in grants {
            let compiled = CompiledGrant {
                label: grant.to_string().into(),
                grant,
            };
            match compiled.grant.effect {
                Effect::Allow => allows.push(compiled),
                Effect::Deny => denies.push(compiled),
            }
        }
        let roles = roles
            .into_iter()
            .map(|r| {
                let role = CompiledRole {
                    label: r.name.as_str().into(),
                    permissions: r.permissions,
                };
                (r.name, role)
            })
            .collect();
        Self {
            tenant,
            allows,
            denies,
            roles,
        }
    }

    /// The tenant this policy belongs to.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// Decides whether `principal` may list/use `item`.
    pub fn decide(&self, principal: &Principal, item: Item<'_>) -> Decision {
        if principal.tenant != self.tenant {
            return Decision::deny(Reason::OtherTenant);
        }
        if !principal.restrictions.is_empty()
            && !principal
                .restrictions
                .iter()
                .any(|t| t.matches(item.server, item.name))
        {
            return Decision::deny(Reason::OutsideCredentialBinding);
        }
        let applies = |g: &CompiledGrant| {
            g.grant.target.matches(item.server, item.name)
                && grantee_matches(&g.grant.grantee, principal)
        };
        if let Some(deny) = self.denies.iter().find(|g| applies(g)) {
            return Decision::deny(Reason::DeniedByGrant(deny.label.clone()));
        }
        if principal.is_tenant_admin() {
            return Decision::allow(Reason::TenantAdmin);
        }
        let only_readonly =
            !principal.roles.is_empty() && principal.roles.iter().all(|r| *r == Role::Readonly);
        if item.kind == ItemKind::Tool && only_readonly {
            return Decision::deny(Reason::ReadonlyMayNotUseTools);
        }
        if let Some(allow) = self.allows.iter().find(|g| applies(g)) {
            return Decision::allow(Reason::Granted(allow.label.clone()));
        }
        let mut unmet: Option<&Arc<str>> = None;
        // The caller as conditions see it: built once, and only if a condition is checked.
        let mut caller: Option<CallerFacts> = None;
        for role in &principal.roles {
            let Role::Custom(name) = role else { continue };
            let Some(def) = self.roles.get(name) else {
                continue;
            };
            for permission in &def.permissions {
                if !permission.covers(item.kind, item.server, item.name) {
                    continue;
                }
                let holds = match item.arguments {
                    // Listing: conditions are decided per call.
                    None => true,
                    Some(_) if permission.conditions.is_empty() => true,
                    Some(arguments) => {
                        let caller = caller.get_or_insert_with(|| CallerFacts::of(principal));
                        let facts = CallFacts {
                            arguments,
                            tool: item.name,
                            server: item.server,
                            tenant: principal.tenant.as_str(),
                            user: &caller.user,
                            groups: &caller.groups,
                            roles: &caller.roles,
                        };
                        permission.conditions.iter().all(|c| c.holds(&facts))
                    }
                };
                if holds {
                    return Decision::allow(Reason::RolePermission(def.label.clone()));
                }
                unmet = Some(&def.label);
            }
        }
        match unmet {
            Some(role) => Decision::deny(Reason::ConditionNotMet(role.clone())),
            None => Decision::deny(Reason::NoGrant),
        }
    }
}

/// The caller as conditions see it (built only when a permission has conditions).
struct CallerFacts {
    user: String,
    groups: Vec<String>,
    roles: Vec<String>,
}

impl CallerFacts {
    fn of(principal: &Principal) -> Self {
        Self {
            user: principal.identity.to_string(),
            groups: principal.groups.iter().map(ToString::to_string).collect(),
            roles: principal.roles.iter().map(ToString::to_string).collect(),
        }
    }
}

fn grantee_matches(grantee: &Grantee, principal: &Principal) -> bool {
    match grantee {
        Grantee::User(u) => matches!(&principal.identity, Identity::User(me) if me == u),
        Grantee::Client(c) => matches!(&principal.identity, Identity::Client(me) if me == c),
        Grantee::Group(g) => principal.groups.contains(g),
        Grantee::Role(r) => principal.roles.contains(r),
    }
}

#[cfg(test)]
mod tests;
