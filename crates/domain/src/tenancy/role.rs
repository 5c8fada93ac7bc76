//! Roles: the four built-in roles and per-tenant custom roles made of permissions.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::condition::Condition;
use super::ids::IdError;
use super::target::Target;

/// The kind of thing a client lists and uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    Tool,
    Prompt,
    Resource,
}

impl ItemKind {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Prompt => "prompt",
            Self::Resource => "resource",
        }
    }

    /// Parses a lowercase name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Tool, Self::Prompt, Self::Resource]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// A role held in one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Everything in the tenant, including its administration.
    Owner,
    /// Everything in the tenant, administration except ownership.
    Admin,
    /// What grants allow.
    Member,
    /// What grants allow, except calling tools: prompts and resources only.
    Readonly,
    /// A tenant-defined role (its permissions are in the tenant's policy).
    Custom(String),
}

impl Role {
    /// Parses a role name: a built-in name or a custom role slug.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        Ok(match value {
            "owner" => Self::Owner,
            "admin" => Self::Admin,
            "member" => Self::Member,
            "readonly" => Self::Readonly,
            other => Self::Custom(custom_role_name(other)?),
        })
    }

    /// The role's name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Readonly => "readonly",
            Self::Custom(name) => name,
        }
    }

    /// Owners and admins see and use everything of their tenant.
    pub fn is_tenant_admin(&self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }
}

fn custom_role_name(value: &str) -> Result<String, IdError> {
    const WHAT: &str = "role name";
    if value.is_empty() {
        return Err(IdError::Empty { what: WHAT });
    }
    if value.len() > 64 {
        return Err(IdError::TooLong {
            what: WHAT,
            len: value.chars().count(),
            max: 64,
        });
    }
    let ok = value.as_bytes()[0].is_ascii_lowercase()
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'));
    if !ok {
        return Err(IdError::Invalid {
            what: WHAT,
            shown: value.chars().take(40).collect(),
            rule: "owner, admin, member, readonly, or a custom role: lowercase letters, digits, '-' and '_', starting with a letter",
        });
    }
    Ok(value.to_owned())
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// One permission of a custom role: which kinds of item, on which target, under which
/// conditions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    /// Kinds covered; empty covers all kinds.
    #[serde(default)]
    pub kinds: Vec<ItemKind>,
    pub target: Target,
    /// All must hold for a call (tools only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl Permission {
    /// Whether the permission covers the kind and target (conditions not considered).
    pub fn covers(&self, kind: ItemKind, server: &str, item: &str) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&kind)) && self.target.matches(server, item)
    }
}

/// A custom role of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDef {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub permissions: Vec<Permission>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_builtin_and_custom_names() {
        assert_eq!(Role::parse("owner").unwrap(), Role::Owner);
        assert_eq!(
            Role::parse("db-reader").unwrap(),
            Role::Custom("db-reader".into())
        );
        assert!(Role::parse("Owner!").is_err());
        assert!(Role::parse("").is_err());
        assert!(Role::Admin.is_tenant_admin() && !Role::Member.is_tenant_admin());
    }
}
