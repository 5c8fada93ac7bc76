//! The JSON shapes of a tenant's server definition, and how write-only values are shown
//! (redacted) and kept (a `[redacted]` sent back keeps the stored value while the server
//! stays where it was).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchboard_domain::RawUpstream;
use switchboard_domain::tenancy::TenantServer;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};

/// Shown instead of a literal header value.
const REDACTED: &str = "[redacted]";

/// A tenant's server definition: Streamable HTTP or SSE, or (platform administrators only)
/// stdio.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerSpec {
    /// `streamable-http`, `sse`, or `stdio` (platform administrators only).
    #[schema(example = "streamable-http")]
    pub transport: String,
    /// The endpoint of an HTTP server; `{{tenant}}` and `{{secret.NAME}}` may appear. Public
    /// addresses only unless the platform allows private networks.
    #[schema(example = "https://mcp.example.com/mcp", max_length = 2048)]
    pub url: Option<String>,
    /// The program of a stdio server (platform administrators only).
    #[schema(max_length = 1024)]
    pub command: Option<String>,
    /// Its arguments (no placeholders: they show in process lists).
    #[serde(default)]
    pub args: Vec<String>,
    /// Its environment (the gateway's own is not passed on); `{{secret.NAME}}` may appear.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Limits of a stdio child: address space (MiB), open files, processes, lifetime (ms).
    #[schema(minimum = 1)]
    pub max_memory_mb: Option<u64>,
    #[schema(minimum = 1)]
    pub max_open_files: Option<u64>,
    #[schema(minimum = 1)]
    pub max_processes: Option<u64>,
    #[schema(minimum = 1)]
    pub max_lifetime_ms: Option<u64>,
    /// Sent with every request, e.g. `Authorization: Bearer {{secret.crm_token}}` (at most
    /// 32).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Prefix of its exposed names (default: the server's name).
    #[schema(max_length = 32)]
    pub prefix: Option<String>,
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub description: String,
    #[schema(minimum = 1, maximum = 600000)]
    pub connect_timeout_ms: Option<u64>,
    #[schema(minimum = 1, maximum = 3600000)]
    pub request_timeout_ms: Option<u64>,
    /// Close the tenant's connection after this long unused (at least the gateway's own
    /// idle limit of 10 minutes applies).
    #[schema(minimum = 0, maximum = 86400000)]
    pub idle_timeout_ms: Option<u64>,
    #[schema(minimum = 1, maximum = 86400000)]
    pub list_ttl_ms: Option<u64>,
}

/// A server to try before saving: its name and definition.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerTrial {
    #[schema(example = "crm")]
    pub name: String,
    pub definition: ServerSpec,
}

/// One of the tenant's own servers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerView {
    pub name: String,
    pub description: String,
    pub transport: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Values without a placeholder are shown as `[redacted]`.
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Values without a placeholder are shown as `[redacted]`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_memory_mb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_open_files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_processes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lifetime_ms: Option<u64>,
    /// `platform` (only platform administrators change it) or `tenant`.
    pub defined_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_ttl_ms: Option<u64>,
    /// Increases with every change; also the `ETag`.
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Whether a value may be shown: it has a placeholder and, besides placeholders, at most a
/// short literal such as `Bearer ` (a longer literal may be a credential).
fn showable(value: &str) -> bool {
    if !value.contains("{{") {
        return false;
    }
    let mut literal = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("{{") {
        literal.push_str(&rest[..start]);
        match rest[start..].find("}}") {
            Some(end) => rest = &rest[start + end + 2..],
            None => return false,
        }
    }
    literal.push_str(rest);
    literal.trim().len() <= 8
}

/// Values shown where [`showable`], else redacted.
fn redacted(map: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    map.iter()
        .map(|(k, v)| {
            let shown = if showable(v) {
                v.clone()
            } else {
                REDACTED.into()
            };
            (k.clone(), shown)
        })
        .collect()
}

/// A URL with its user-info and literal query values redacted (they often carry keys).
fn redacted_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://{REDACTED}@{host}{path}"),
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    match query {
        None => base,
        Some(query) => {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) if !showable(v) && !v.is_empty() => format!("{k}={REDACTED}"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{base}?{}", pairs.join("&"))
        }
    }
}

impl From<&TenantServer> for ServerView {
    fn from(s: &TenantServer) -> Self {
        let d = &s.definition;
        Self {
            name: s.name.clone(),
            description: s.description.clone(),
            transport: d.transport.clone().unwrap_or_default(),
            url: d.url.as_deref().map(redacted_url),
            headers: redacted(&d.headers),
            command: d.command.clone(),
            args: d.args.clone(),
            env: redacted(&d.env),
            max_memory_mb: d.max_memory_mb,
            max_open_files: d.max_open_files,
            max_processes: d.max_processes,
            max_lifetime_ms: d.max_lifetime_ms,
            defined_by: if s.by_platform { "platform" } else { "tenant" }.into(),
            prefix: d.prefix.clone(),
            connect_timeout_ms: d.connect_timeout_ms,
            request_timeout_ms: d.request_timeout_ms,
            idle_timeout_ms: d.idle_timeout_ms,
            list_ttl_ms: d.list_ttl_ms,
            version: s.version,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

fn field_limits(spec: &ServerSpec) -> ApiResult<()> {
    if spec.url.as_ref().is_some_and(|u| u.len() > 2048) {
        return Err(ApiError::invalid("url", "longer than 2048 characters"));
    }
    if spec.command.as_ref().is_some_and(|c| c.len() > 1024)
        || spec.args.len() > 64
        || spec.args.iter().any(|a| a.len() > 4096)
    {
        return Err(ApiError::invalid(
            "args",
            "at most 64 arguments of 4 KiB, a command of 1 KiB",
        ));
    }
    for (field, map) in [("headers", &spec.headers), ("env", &spec.env)] {
        if map.len() > 32 {
            return Err(ApiError::invalid(field, "at most 32 entries"));
        }
        if let Some((name, _)) = map.iter().find(|(k, v)| k.len() > 256 || v.len() > 8192) {
            return Err(ApiError::invalid(
                field,
                format!("{name:?}: names are at most 256 characters, values 8 KiB"),
            ));
        }
    }
    if spec.description.chars().count() > 1024 {
        return Err(ApiError::invalid(
            "description",
            "longer than 1024 characters",
        ));
    }
    for (field, value, max) in [
        ("connectTimeoutMs", spec.connect_timeout_ms, 600_000),
        ("requestTimeoutMs", spec.request_timeout_ms, 3_600_000),
        ("idleTimeoutMs", spec.idle_timeout_ms, 86_400_000),
        ("listTtlMs", spec.list_ttl_ms, 86_400_000),
    ] {
        if value.is_some_and(|v| v > max) {
            return Err(ApiError::invalid(field, format!("at most {max}")));
        }
    }
    Ok(())
}

/// `[redacted]` values replaced by what `stored` has.
fn keep_redacted(
    field: &'static str,
    mut map: BTreeMap<String, String>,
    stored: Option<&BTreeMap<String, String>>,
) -> ApiResult<BTreeMap<String, String>> {
    for (name, value) in map.iter_mut() {
        if value == REDACTED {
            *value = stored.and_then(|s| s.get(name)).cloned().ok_or_else(|| {
                ApiError::invalid(
                    field,
                    format!(
                        "{name:?} is [redacted] but has no stored value to keep; send the value"
                    ),
                )
            })?;
        }
    }
    Ok(map)
}

/// The definition as stored; `[redacted]` values keep what `stored` has — only while the
/// server stays where it was (same transport, URL and command): a write-only value is never
/// sent somewhere new without being sent again.
pub(super) fn raw_of(spec: ServerSpec, stored: Option<&RawUpstream>) -> ApiResult<RawUpstream> {
    field_limits(&spec)?;
    let stored_url = stored.and_then(|s| s.url.as_deref());
    // The URL as a GET showed it stands for the stored one.
    let url = match (&spec.url, stored_url) {
        (Some(sent), Some(kept)) if *sent == redacted_url(kept) => Some(kept.to_owned()),
        _ => spec.url.clone(),
    };
    if url.as_deref().is_some_and(|u| u.contains(REDACTED)) {
        return Err(ApiError::invalid(
            "url",
            "[redacted] parts can only keep the stored URL as it was; send the whole URL",
        ));
    }
    let same_place = stored.filter(|s| {
        s.transport.as_deref() == Some(spec.transport.as_str())
            && s.url == url
            && s.command == spec.command
    });
    let headers = keep_redacted("headers", spec.headers, same_place.map(|s| &s.headers))?;
    let env = keep_redacted("env", spec.env, same_place.map(|s| &s.env))?;
    Ok(RawUpstream {
        transport: Some(spec.transport),
        url,
        command: spec.command,
        args: spec.args,
        env,
        max_memory_mb: spec.max_memory_mb,
        max_open_files: spec.max_open_files,
        max_processes: spec.max_processes,
        max_lifetime_ms: spec.max_lifetime_ms,
        headers,
        prefix: spec.prefix,
        connect_timeout_ms: spec.connect_timeout_ms,
        request_timeout_ms: spec.request_timeout_ms,
        idle_timeout_ms: spec.idle_timeout_ms,
        list_ttl_ms: spec.list_ttl_ms,
        ..RawUpstream::default()
    })
}

/// A definition error as a 422 naming the field (in the API's spelling).
pub(super) fn definition_error(err: switchboard_domain::UpstreamDefError) -> ApiError {
    let field = match err.field {
        "connect_timeout_ms" => "connectTimeoutMs",
        "request_timeout_ms" => "requestTimeoutMs",
        "idle_timeout_ms" => "idleTimeoutMs",
        "list_ttl_ms" => "listTtlMs",
        "max_memory_mb" => "maxMemoryMb",
        "max_open_files" => "maxOpenFiles",
        "max_processes" => "maxProcesses",
        "max_lifetime_ms" => "maxLifetimeMs",
        other => other,
    };
    ApiError::invalid(field, err.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_credentials_are_never_shown() {
        assert!(showable("Bearer {{secret.tok}}"));
        assert!(
            !showable("sk-live-0123456789 {{tenant}}"),
            "a long literal beside a placeholder"
        );
        assert!(!showable("plain-token"));
        assert_eq!(
            redacted_url("https://user:pw@mcp.example.com/t/{{tenant}}?key=abc&org={{tenant}}&x="),
            "https://[redacted]@mcp.example.com/t/{{tenant}}?key=[redacted]&org={{tenant}}&x="
        );
        assert_eq!(
            redacted_url("https://mcp.example.com/mcp"),
            "https://mcp.example.com/mcp"
        );
    }

    fn spec(url: &str, header: &str) -> ServerSpec {
        serde_json::from_value(serde_json::json!({
            "transport": "streamable-http", "url": url, "headers": {"X-Key": header}
        }))
        .unwrap()
    }

    #[test]
    fn redacted_values_are_kept_only_where_the_server_stays() {
        let stored = raw_of(spec("https://a.example.com/mcp?key=k1", "secret-1"), None).unwrap();
        let shown = redacted_url(stored.url.as_deref().unwrap());
        let kept = raw_of(spec(&shown, REDACTED), Some(&stored)).unwrap();
        assert_eq!(kept.url, stored.url);
        assert_eq!(kept.headers["X-Key"], "secret-1");
        let moved = raw_of(spec("https://evil.example.com/", REDACTED), Some(&stored));
        assert!(
            moved.is_err(),
            "a write-only value does not follow a new address"
        );
        assert!(
            raw_of(
                spec("https://evil.example.com/?k=[redacted]", "v"),
                Some(&stored)
            )
            .is_err()
        );
    }
}
