//! Identifiers of the tenancy model, each a validated newtype so one can never be passed
//! where another is meant, and hostile input (`../`, look-alike unicode, 10 KB strings) is
//! refused at the edge with a message that says what is allowed.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is {len} characters long; at most {max} are allowed")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{what} {shown:?} is not valid: {rule}")]
    Invalid {
        what: &'static str,
        shown: String,
        rule: &'static str,
    },
}

/// Shows at most 40 characters of a refused value, so a 10 KB input does not become a 10 KB
/// error message or log line.
fn shown(value: &str) -> String {
    let mut out: String = value.chars().take(40).collect();
    if value.chars().count() > 40 {
        out.push('…');
    }
    out
}

fn check_len(what: &'static str, value: &str, max: usize) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { what });
    }
    if value.len() > max {
        return Err(IdError::TooLong {
            what,
            len: value.chars().count(),
            max,
        });
    }
    Ok(())
}

/// A lowercase slug: `[a-z0-9]` first and last, `[a-z0-9-]` between, no `--`.
fn is_slug(value: &str, extra: &[u8]) -> bool {
    let bytes = value.as_bytes();
    let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    edge_ok(bytes[0])
        && edge_ok(bytes[bytes.len() - 1])
        && bytes
            .iter()
            .all(|&b| edge_ok(b) || b == b'-' || extra.contains(&b))
        && !value.contains("--")
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Shared text: cloning one (into a usage cell, an audit event, a limit key) costs a
        /// reference count, not an allocation.
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::new(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// A tenant's id: a lowercase DNS-label slug (`acme`, `globex-eu`), ≤ 63 characters, so
    /// it is safe in paths (`/t/{tenant}/mcp`), subdomains, keys, metric labels and logs.
    TenantId
);

impl TenantId {
    /// Longest tenant id (one DNS label).
    pub const MAX: usize = 63;
    /// The built-in tenant of a gateway with no tenants configured.
    pub const DEFAULT: &'static str = "default";

    /// Validates a tenant id.
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        check_len("tenant id", &value, Self::MAX)?;
        if !is_slug(&value, b"") {
            return Err(IdError::Invalid {
                what: "tenant id",
                shown: shown(&value),
                rule: "use lowercase letters, digits and single '-' (not first or last), e.g. \"acme\"",
            });
        }
        Ok(Self(value.into()))
    }

    /// The built-in `default` tenant.
    pub fn default_tenant() -> Self {
        Self(Self::DEFAULT.into())
    }
}

string_id!(
    /// A user: their email address, lowercased, ASCII only (look-alike unicode is refused).
    UserId
);

impl UserId {
    /// Longest email address (RFC 5321 path limit).
    pub const MAX: usize = 254;

    /// Validates and normalises (lowercases) an email address.
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into().to_ascii_lowercase();
        check_len("user email", &value, Self::MAX)?;
        let rule = "write an email address such as \"ada@example.com\" (ASCII, no spaces)";
        let invalid = || IdError::Invalid {
            what: "user email",
            shown: shown(&value),
            rule,
        };
        let printable = value.bytes().all(|b| b.is_ascii_graphic());
        let mut parts = value.split('@');
        let (local, domain) = match (parts.next(), parts.next(), parts.next()) {
            (Some(l), Some(d), None) => (l, d),
            _ => return Err(invalid()),
        };
        if !printable || local.is_empty() || domain.is_empty() || domain.starts_with('.') {
            return Err(invalid());
        }
        Ok(Self(value.into()))
    }
}

string_id!(
    /// A group inside one tenant (`platform-team`).
    GroupName
);

impl GroupName {
    /// Longest group name.
    pub const MAX: usize = 64;

    /// Validates a group name.
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        check_len("group name", &value, Self::MAX)?;
        if !is_slug(&value, b"_.") {
            return Err(IdError::Invalid {
                what: "group name",
                shown: shown(&value),
                rule: "use lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
            });
        }
        Ok(Self(value.into()))
    }
}

string_id!(
    /// A service client (machine identity) inside one tenant, as used for the OAuth
    /// client-credentials grant.
    ClientId
);

impl ClientId {
    /// Longest client id.
    pub const MAX: usize = 128;

    /// Validates a client id.
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        check_len("client id", &value, Self::MAX)?;
        let ok = value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(IdError::Invalid {
                what: "client id",
                shown: shown(&value),
                rule: "use ASCII letters, digits, '-', '_' and '.'",
            });
        }
        Ok(Self(value.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_dns_label_slugs() {
        for ok in ["acme", "a", "globex-eu", "t1", "1t"] {
            assert_eq!(TenantId::new(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "", "../etc", "Acme", "acme-", "-acme", "a--b", "acme/x", "аcme", "a b", "a.b",
        ] {
            assert!(TenantId::new(bad).is_err(), "{bad:?} accepted");
        }
        let long = "a".repeat(10_000);
        let err = TenantId::new(long).unwrap_err().to_string();
        assert!(err.contains("10000 characters"), "{err}");
        assert!(err.len() < 200);
    }

    #[test]
    fn refused_values_are_truncated_in_messages() {
        let hostile = format!("A{}", "b".repeat(5000));
        let err = GroupName::new(hostile).unwrap_err().to_string();
        assert!(err.len() < 300, "{err}");
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            UserId::new("Ada@Example.COM").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in ["", "ada", "a@b@c", "@x", "ada@", "ad a@x", "аda@x.com"] {
            assert!(UserId::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ids_deserialize_through_validation() {
        let ok: TenantId = serde_json::from_str("\"acme\"").unwrap();
        assert_eq!(ok.as_str(), "acme");
        assert!(serde_json::from_str::<TenantId>("\"../x\"").is_err());
        assert!(ClientId::new("ci-runner.v2").is_ok());
        assert!(ClientId::new("ci runner").is_err());
    }
}
