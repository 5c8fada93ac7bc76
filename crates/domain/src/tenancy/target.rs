//! What a grant or permission applies to: a server glob and an item glob.
//!
//! Written as `server` (everything of the server), `server/item` or `*`; both parts accept
//! `*` (any run of characters) and `?` (one character). Items are the upstream's own names
//! (tool and prompt names, resource URIs), not the namespaced names clients see, so a grant
//! survives a prefix change.
//!
//! The wildcard matcher is written here rather than taken from `globset`: patterns are tiny,
//! need only `*`/`?` with no path semantics, and the domain crate stays dependency-free.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `server[/item]` pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    server: String,
    item: String,
}

/// Why a target pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("target {shown:?} is not valid: {rule}")]
pub struct TargetError {
    shown: String,
    rule: &'static str,
}

impl Target {
    /// Longest accepted pattern.
    pub const MAX: usize = 512;

    /// Parses `server`, `server/item` or `*`.
    pub fn parse(value: &str) -> Result<Self, TargetError> {
        let err = |rule| TargetError {
            shown: value.chars().take(40).collect(),
            rule,
        };
        if value.is_empty() || value.len() > Self::MAX {
            return Err(err(
                "write 1–512 characters: \"server\", \"server/tool\" or \"*\"",
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(err("control characters are not allowed"));
        }
        let (server, item) = match value.split_once('/') {
            Some((s, i)) => (s, i),
            None => (value, "*"),
        };
        let server_ok = !server.is_empty()
            && server.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'*' | b'?')
            });
        if !server_ok {
            return Err(err(
                "the server part uses lowercase letters, digits, '-' and the wildcards '*' and '?'",
            ));
        }
        if item.is_empty() {
            return Err(err(
                "the item after '/' must not be empty (use '*' for all)",
            ));
        }
        Ok(Self {
            server: server.to_owned(),
            item: item.to_owned(),
        })
    }

    /// The pattern matching everything.
    pub fn everything() -> Self {
        Self {
            server: "*".into(),
            item: "*".into(),
        }
    }

    /// Whether `server`/`item` is covered.
    pub fn matches(&self, server: &str, item: &str) -> bool {
        wildcard(self.server.as_bytes(), server.as_bytes())
            && wildcard(self.item.as_bytes(), item.as_bytes())
    }

    /// Whether the whole of `server` may be covered (used to decide which servers a
    /// restricted credential can see at all).
    pub fn may_cover_server(&self, server: &str) -> bool {
        wildcard(self.server.as_bytes(), server.as_bytes())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.item == "*" {
            f.write_str(&self.server)
        } else {
            write!(f, "{}/{}", self.server, self.item)
        }
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// `*`/`?` matching without backtracking blow-up (greedy star with one restart point).
pub fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_shell_globs() {
        assert!(wildcard(b"*", b""));
        assert!(wildcard(b"create_*", b"create_issue"));
        assert!(!wildcard(b"create_*", b"delete_issue"));
        assert!(wildcard(b"*_issue", b"create_issue"));
        assert!(wildcard(b"c?eate*e", b"create_issue"));
        assert!(wildcard(b"a*b*c", b"aXXbYYc"));
        assert!(!wildcard(b"a*b*c", b"aXXbYY"));
        // No exponential blow-up on hostile patterns.
        let text = "a".repeat(5000);
        assert!(!wildcard(b"*a*a*a*a*a*a*a*b", text.as_bytes()));
    }

    #[test]
    fn targets_parse_server_and_item() {
        let t = Target::parse("github").unwrap();
        assert!(t.matches("github", "create_issue"));
        assert!(!t.matches("gitlab", "create_issue"));
        let t = Target::parse("git*/create_*").unwrap();
        assert!(t.matches("gitlab", "create_mr"));
        assert!(!t.matches("gitlab", "delete_mr"));
        assert_eq!(t.to_string(), "git*/create_*");
        assert!(Target::parse("*").unwrap().matches("x", "y"));
        for bad in ["", "GitHub", "a/", "../x", "a\nb"] {
            assert!(Target::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Target::parse(&"a".repeat(600)).is_err());
    }
}
