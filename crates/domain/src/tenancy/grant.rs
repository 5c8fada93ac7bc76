//! Grants: who (a user, group, role or service client) may — or may not — use what.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ids::{ClientId, GroupName, UserId};
use super::role::Role;
use super::target::Target;

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "id")]
pub enum Grantee {
    User(UserId),
    Group(GroupName),
    Role(Role),
    Client(ClientId),
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(u) => write!(f, "user {u}"),
            Self::Group(g) => write!(f, "group {g}"),
            Self::Role(r) => write!(f, "role {r}"),
            Self::Client(c) => write!(f, "client {c}"),
        }
    }
}

/// Allow or deny; a matching deny always wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// One grant inside a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub grantee: Grantee,
    pub target: Target,
    pub effect: Effect,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} on {}",
            self.effect.as_str(),
            self.grantee,
            self.target
        )
    }
}
