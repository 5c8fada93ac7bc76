//! How upstream names appear to clients.
//!
//! A client sees one flat namespace of tools and prompts aggregated from many upstreams, so
//! every upstream name is *namespaced* with its server's prefix: `github__create_issue`. The
//! rules:
//!
//! * the result always matches `^[A-Za-z0-9_-]{1,64}$`, the strictest pattern among MCP and
//!   the LLM providers' function-name rules, so a client can hand it to any model;
//! * it is deterministic (the same inputs give the same name on every replica and restart);
//! * when the plain `prefix__name` form is too long or contains other characters, the name is
//!   shortened/sanitised and an 8-hex-digit hash of the *original* pair is appended, so two
//!   different upstream names never collapse into one;
//! * it is reversed through the catalog's lookup table, never by parsing, so an upstream name
//!   that itself contains `__` still routes back exactly.
//!
//! Resource URIs are namespaced as `{server}+{uri}` (a valid URI scheme prefix, like
//! `git+ssh`), which keeps them readable and lets `resources/read` route back.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest name accepted by the MCP and LLM-provider tool-name patterns.
pub const MAX_EXPOSED_NAME: usize = 64;
/// Longest server name: leaves room for a useful tool name after `server__`.
pub const MAX_SERVER_NAME: usize = 32;
/// Separator between the server prefix and the upstream name.
pub const SEPARATOR: &str = "__";

/// Longest name of a called item kept in what a call leaves behind (audit record, usage
/// cell, metrics label, span, log line), in characters. A client chooses the URI of a
/// resource it reads and an upstream names its tools: unbounded, either could make every
/// record of a call as large as a request body, and every metrics series hold one.
pub const MAX_RECORDED_NAME: usize = 512;

/// The first `max` characters of `text` (all of it when shorter); borrowed, never copied.
fn prefix_chars(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text; // no more bytes than allowed characters
    }
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// `name` as recorded: at most [`MAX_RECORDED_NAME`] characters.
pub fn recorded_name(name: &str) -> &str {
    prefix_chars(name, MAX_RECORDED_NAME)
}

/// Longest error message kept with a call (audit record, span status), in characters: an
/// upstream's message can be as long as its reply, and may repeat what the client sent.
pub const MAX_RECORDED_MESSAGE: usize = 1024;

/// `message` as recorded: at most [`MAX_RECORDED_MESSAGE`] characters.
pub fn recorded_message(message: &str) -> &str {
    prefix_chars(message, MAX_RECORDED_MESSAGE)
}

/// Why a server name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("server name must not be empty")]
    Empty,
    #[error("server name is {0} characters long; at most {MAX_SERVER_NAME} are allowed")]
    TooLong(usize),
    #[error(
        "server name {0:?} may contain only lowercase letters, digits and single '-' and must start with a letter"
    )]
    InvalidCharacters(String),
}

/// The name of an upstream server definition: a lowercase slug (`github`, `time-2`).
///
/// Restricted to `[a-z][a-z0-9-]*` so that `{server}__{tool}` and `{server}+{uri}` can never be
/// ambiguous and the name is safe in URLs, metric labels and log lines.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ServerName(String);

impl ServerName {
    /// Validates and wraps a server name.
    pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_SERVER_NAME {
            return Err(NameError::TooLong(name.chars().count()));
        }
        let starts_with_letter = name.as_bytes()[0].is_ascii_lowercase();
        let valid_chars = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !starts_with_letter || !valid_chars || name.contains("--") || name.ends_with('-') {
            return Err(NameError::InvalidCharacters(name));
        }
        Ok(Self(name))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ServerName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        ServerName::new(raw).map_err(serde::de::Error::custom)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// True when `name` already satisfies `^[A-Za-z0-9_-]{1,64}$`.
pub fn is_valid_exposed_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_EXPOSED_NAME && name.chars().all(is_name_char)
}

fn short_hash(prefix: &str, name: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prefix.as_bytes());
    hasher.update([0u8]);
    hasher.update(name.as_bytes());
    let digest = hasher.finalize();
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// The name a client sees for upstream item `name` of a server exposed under `prefix`.
///
/// `prefix` is usually the server name; an empty prefix exposes upstream names unchanged
/// (when they are valid). See the module documentation for the rules.
pub fn exposed_name(prefix: &str, name: &str) -> String {
    let plain = if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}{SEPARATOR}{name}")
    };
    if is_valid_exposed_name(&plain) {
        return plain;
    }
    // Shorten and sanitise, then disambiguate with a hash of the original pair.
    let hash = short_hash(prefix, name);
    let budget = MAX_EXPOSED_NAME - hash.len() - 1;
    let sanitised: String = plain
        .chars()
        .map(|c| if is_name_char(c) { c } else { '_' })
        .take(budget)
        .collect();
    format!("{sanitised}_{hash}")
}

/// The URI a client sees for upstream resource `uri` of a server exposed under `prefix`.
pub fn exposed_uri(prefix: &str, uri: &str) -> String {
    if prefix.is_empty() {
        uri.to_owned()
    } else {
        format!("{prefix}+{uri}")
    }
}

/// Splits an exposed URI into `(prefix, upstream uri)`; `None` when it carries no prefix.
pub fn split_exposed_uri(uri: &str) -> Option<(&str, &str)> {
    let (prefix, rest) = uri.split_once('+')?;
    ServerName::new(prefix).ok()?;
    Some((prefix, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_names_are_cut_at_a_character_boundary() {
        assert_eq!(recorded_name("echo"), "echo");
        let long = "é".repeat(MAX_RECORDED_NAME + 10);
        let cut = recorded_name(&long);
        assert_eq!(cut.chars().count(), MAX_RECORDED_NAME);
        assert!(long.starts_with(cut));
        // Exactly at the bound, in bytes and in characters: kept whole.
        let exact = "a".repeat(MAX_RECORDED_NAME);
        assert_eq!(recorded_name(&exact), exact);
        let wide = "é".repeat(MAX_RECORDED_NAME);
        assert_eq!(recorded_name(&wide), wide);
        assert_eq!(prefix_chars("🦀🦀🦀", 2), "🦀🦀");
    }

    #[test]
    fn plain_names_are_prefixed_with_double_underscore() {
        assert_eq!(
            exposed_name("github", "create_issue"),
            "github__create_issue"
        );
    }

    #[test]
    fn empty_prefix_keeps_valid_names() {
        assert_eq!(exposed_name("", "echo"), "echo");
    }

    #[test]
    fn long_names_are_shortened_to_64_with_a_stable_hash() {
        let long = "a".repeat(100);
        let first = exposed_name("server", &long);
        assert_eq!(first.len(), MAX_EXPOSED_NAME);
        assert!(is_valid_exposed_name(&first));
        assert_eq!(first, exposed_name("server", &long), "deterministic");
        let other = exposed_name("server", &format!("{long}b"));
        assert_ne!(first, other, "names sharing a long prefix must not collide");
    }

    #[test]
    fn invalid_characters_are_sanitised_and_disambiguated() {
        let dotted = exposed_name("fs", "read.file");
        let underscored = exposed_name("fs", "read_file");
        assert!(is_valid_exposed_name(&dotted));
        assert_eq!(underscored, "fs__read_file");
        assert_ne!(dotted, underscored);
        assert!(dotted.starts_with("fs__read_file_"));
    }

    #[test]
    fn unicode_names_become_valid() {
        let name = exposed_name("x", "résumé✓");
        assert!(is_valid_exposed_name(&name), "{name}");
    }

    #[test]
    fn server_names_are_slugs() {
        assert!(ServerName::new("github").is_ok());
        assert!(ServerName::new("time-2").is_ok());
        for bad in [
            "",
            "Git",
            "a_b",
            "-a",
            "a-",
            "a--b",
            "../x",
            "1abc",
            &"a".repeat(33),
        ] {
            assert!(ServerName::new(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn uris_round_trip() {
        let exposed = exposed_uri("demo", "file:///tmp/a+b");
        assert_eq!(exposed, "demo+file:///tmp/a+b");
        assert_eq!(
            split_exposed_uri(&exposed),
            Some(("demo", "file:///tmp/a+b"))
        );
        assert_eq!(split_exposed_uri("file:///x"), None);
        assert_eq!(exposed_uri("", "test://a"), "test://a");
    }
}
