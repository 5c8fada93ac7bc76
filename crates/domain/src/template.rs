//! Placeholders in upstream definitions: where a tenant's (or a user's) secrets go.
//!
//! A header value, a stdio environment value or an upstream URL may contain
//! `{{secret.NAME}}` (a secret stored through the admin API, the calling user's own before
//! the tenant's) and `{{tenant}}` (the calling tenant's id). A definition with any
//! placeholder is *per tenant*: the gateway opens a connection for each tenant (or user whose
//! own secret it uses) with the placeholders filled in, and never shares it.
//!
//! Parsing is strict so a typo fails at load time, not at the first call: `{{` always opens a
//! placeholder, and an unknown one is an error naming the two that exist.

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Secret(String),
    Tenant,
}

/// A parsed string with placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// How a filled-in value is written into the string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// As is (header and environment values).
    Raw,
    /// Percent-encoded except RFC 3986 unreserved characters (URL path or query parts), so
    /// a value can never add a path segment, a query parameter or change the host.
    UrlComponent,
}

/// Longest secret name (as the vault accepts).
const MAX_NAME: usize = 64;

impl Template {
    /// Parses `text`; the error says what is wrong and what to write.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| {
                "a placeholder opened with {{ is not closed with }}; write {{secret.NAME}} or {{tenant}}"
                    .to_owned()
            })?;
            let inner = after[..end].trim();
            if inner == "tenant" {
                parts.push(Part::Tenant);
            } else if let Some(name) = inner.strip_prefix("secret.") {
                let valid = !name.is_empty()
                    && name.len() <= MAX_NAME
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !valid {
                    return Err(format!(
                        "{{{{secret.{}}}}} is not a valid secret name: use 1 to 64 letters, digits and '_'",
                        name.chars().take(80).collect::<String>()
                    ));
                }
                parts.push(Part::Secret(name.to_owned()));
            } else {
                return Err(format!(
                    "unknown placeholder {{{{{}}}}}; use {{{{secret.NAME}}}} or {{{{tenant}}}}",
                    inner.chars().take(80).collect::<String>()
                ));
            }
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// True when the string has a placeholder.
    pub fn has_placeholders(&self) -> bool {
        self.parts.iter().any(|p| !matches!(p, Part::Text(_)))
    }

    /// Names of the secrets the template uses.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Secret(name) => Some(name.as_str()),
            _ => None,
        })
    }

    /// The string with placeholders filled in; `secret(name)` gives a secret's value (every
    /// name in [`Template::secrets`] must have one, or the text is left empty there).
    pub fn render<'a>(
        &self,
        tenant: &str,
        secret: impl Fn(&str) -> Option<&'a str>,
        encoding: Encoding,
    ) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Tenant => push_encoded(&mut out, tenant, encoding),
                Part::Secret(name) => {
                    push_encoded(&mut out, secret(name).unwrap_or_default(), encoding)
                }
            }
        }
        out
    }
}

/// `value` as a rendered URL part carries it (percent-encoded): what secret redaction must
/// also look for.
pub fn url_encoded(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    push_encoded(&mut out, value, Encoding::UrlComponent);
    out
}

/// Percent-encoding by hand: ten lines, and the domain crate stays free of dependencies.
fn push_encoded(out: &mut String, value: &str, encoding: Encoding) {
    match encoding {
        Encoding::Raw => out.push_str(value),
        Encoding::UrlComponent => {
            for b in value.bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(name: &str) -> Option<&'static str> {
        match name {
            "token" => Some("s3cr/et?&x"),
            _ => None,
        }
    }

    #[test]
    fn text_without_placeholders_is_unchanged() {
        let t = Template::parse("Bearer abc").unwrap();
        assert!(!t.has_placeholders());
        assert_eq!(t.render("acme", values, Encoding::Raw), "Bearer abc");
    }

    #[test]
    fn secrets_and_tenant_are_filled_in() {
        let t = Template::parse("Bearer {{secret.token}} for {{ tenant }}").unwrap();
        assert!(t.has_placeholders());
        assert_eq!(t.secrets().collect::<Vec<_>>(), vec!["token"]);
        assert_eq!(
            t.render("acme", values, Encoding::Raw),
            "Bearer s3cr/et?&x for acme"
        );
    }

    #[test]
    fn url_values_cannot_escape_their_component() {
        let t = Template::parse("https://api.example/{{tenant}}/mcp?key={{secret.token}}").unwrap();
        assert_eq!(
            t.render("acme", values, Encoding::UrlComponent),
            "https://api.example/acme/mcp?key=s3cr%2Fet%3F%26x"
        );
    }

    #[test]
    fn mistakes_are_named() {
        let e = Template::parse("Bearer {{secret.token").unwrap_err();
        assert!(e.contains("not closed"), "{e}");
        let e = Template::parse("{{secrets.token}}").unwrap_err();
        assert!(e.contains("unknown placeholder {{secrets.token}}"), "{e}");
        let e = Template::parse("{{secret.}}").unwrap_err();
        assert!(e.contains("not a valid secret name"), "{e}");
        let e = Template::parse("{{secret.a-b}}").unwrap_err();
        assert!(e.contains("not a valid secret name"), "{e}");
        assert!(Template::parse(&format!("{{{{secret.{}}}}}", "a".repeat(65))).is_err());
    }
}
