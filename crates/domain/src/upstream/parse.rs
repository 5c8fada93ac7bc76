//! Checking an upstream definition as written ([`RawUpstream`]) into an [`UpstreamDef`]: the
//! first problem is reported with the field and what to write instead.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Isolation, ProcessLimits, Timeouts, UpstreamDef, UpstreamTransport};
use crate::names::{ServerName, exposed_name, is_valid_exposed_name};
use crate::rewrite::{RawArgumentRule, RawResultRule, Rewrites};
use crate::template::Template;
use crate::tenancy::TenantId;

/// The placeholders of a definition: which secrets they name, and whether there is any.
#[derive(Default)]
struct Placeholders {
    secrets: std::collections::BTreeSet<String>,
    any: bool,
}

impl Placeholders {
    fn scan(&mut self, text: &str) -> Result<(), String> {
        let template = Template::parse(text)?;
        self.any |= template.has_placeholders();
        self.secrets
            .extend(template.secrets().map(ToOwned::to_owned));
        Ok(())
    }
}

/// The serde-facing shape of an upstream in the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// `stdio`, `streamable-http` or `sse`.
    pub transport: Option<String>,
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub url: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub prefix: Option<String>,
    pub isolation: Option<Isolation>,
    /// Tenant ids that may use the server; omitted = every tenant.
    #[serde(default)]
    pub tenants: Vec<String>,
    pub connect_timeout_ms: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub list_ttl_ms: Option<u64>,
    pub ping_interval_ms: Option<u64>,
    pub max_lifetime_ms: Option<u64>,
    pub max_memory_mb: Option<u64>,
    pub max_open_files: Option<u64>,
    pub max_processes: Option<u64>,
    /// `[[upstreams.<name>.arguments]]`: arguments prefixed per tenant.
    #[serde(default)]
    pub arguments: Vec<RawArgumentRule>,
    /// `[[upstreams.<name>.results]]`: results filtered per tenant.
    #[serde(default)]
    pub results: Vec<RawResultRule>,
    /// Key of the signed identity headers (at least 32 characters); none: no headers.
    pub identity_key: Option<String>,
    /// Tenant id → the endpoint that tenant's calls go to instead of `url`.
    #[serde(default)]
    pub tenant_urls: BTreeMap<String, String>,
}

/// A problem in one upstream definition: which field, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upstreams.{server}.{field}: {message}")]
pub struct UpstreamDefError {
    pub server: String,
    pub field: &'static str,
    pub message: String,
}

impl UpstreamDef {
    /// Checks a raw definition named `name`.
    pub fn from_raw(name: &str, raw: RawUpstream) -> Result<UpstreamDef, UpstreamDefError> {
        let err = |field: &'static str, message: String| UpstreamDefError {
            server: name.to_owned(),
            field,
            message,
        };
        let server = ServerName::new(name).map_err(|e| err("name", e.to_string()))?;
        let transport_kind = raw.transport.as_deref().ok_or_else(|| {
            err(
                "transport",
                "missing; write transport = \"stdio\", \"streamable-http\" or \"sse\"".into(),
            )
        })?;
        let require_url = |url: Option<String>| -> Result<String, UpstreamDefError> {
            let url = url.ok_or_else(|| {
                err(
                    "url",
                    format!("required for transport \"{transport_kind}\", e.g. url = \"http://127.0.0.1:9000/mcp\""),
                )
            })?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(err(
                    "url",
                    format!("{url:?} is not an http:// or https:// URL"),
                ));
            }
            if url.len() > 2048 {
                return Err(err("url", "longer than 2048 characters".into()));
            }
            Ok(url)
        };
        let reject = |present: bool, field: &'static str| -> Result<(), UpstreamDefError> {
            if present {
                Err(err(
                    field,
                    format!("not used by transport \"{transport_kind}\"; remove it"),
                ))
            } else {
                Ok(())
            }
        };
        let transport = match transport_kind {
            "stdio" => {
                reject(raw.url.is_some(), "url")?;
                reject(!raw.headers.is_empty(), "headers")?;
                let command = raw
                    .command
                    .filter(|c| !c.trim().is_empty())
                    .ok_or_else(|| {
                        err(
                            "command",
                            "required for transport \"stdio\", e.g. command = \"uvx\"".into(),
                        )
                    })?;
                UpstreamTransport::Stdio {
                    command,
                    args: raw.args,
                    env: raw.env,
                    cwd: raw.cwd,
                }
            }
            "streamable-http" | "sse" => {
                reject(raw.command.is_some(), "command")?;
                reject(!raw.args.is_empty(), "args")?;
                reject(!raw.env.is_empty(), "env")?;
                reject(raw.cwd.is_some(), "cwd")?;
                for (header, value) in &raw.headers {
                    if header.is_empty()
                        || !header
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    {
                        return Err(err(
                            "headers",
                            format!("{header:?} is not a valid header name"),
                        ));
                    }
                    if value.bytes().any(|b| b == b'\r' || b == b'\n') {
                        return Err(err(
                            "headers",
                            format!("value of {header:?} contains a line break"),
                        ));
                    }
                }
                let url = require_url(raw.url)?;
                if transport_kind == "sse" {
                    UpstreamTransport::Sse {
                        url,
                        headers: raw.headers,
                    }
                } else {
                    UpstreamTransport::StreamableHttp {
                        url,
                        headers: raw.headers,
                    }
                }
            }
            other => {
                return Err(err(
                    "transport",
                    format!(
                        "unknown transport {other:?}; use \"stdio\", \"streamable-http\" or \"sse\""
                    ),
                ));
            }
        };
        let mut placeholders = Placeholders::default();
        match &transport {
            UpstreamTransport::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                let elsewhere = std::iter::once(command)
                    .chain(args)
                    .chain(cwd)
                    .any(|s| s.contains("{{"));
                if elsewhere {
                    return Err(err(
                        "args",
                        "placeholders go in env (arguments and the command show in process lists); write env = { TOKEN = \"{{secret.NAME}}\" }".into(),
                    ));
                }
                for value in env.values() {
                    placeholders.scan(value).map_err(|m| err("env", m))?;
                }
            }
            UpstreamTransport::StreamableHttp { url, headers }
            | UpstreamTransport::Sse { url, headers } => {
                placeholders.scan(url).map_err(|m| err("url", m))?;
                for value in headers.values() {
                    placeholders.scan(value).map_err(|m| err("headers", m))?;
                }
            }
        }
        let isolation = raw.isolation.unwrap_or_default();
        let stdio = matches!(transport, UpstreamTransport::Stdio { .. });
        let mut process = ProcessLimits::default();
        for (field, value, slot) in [
            ("max_memory_mb", raw.max_memory_mb, &mut process.memory_mb),
            (
                "max_open_files",
                raw.max_open_files,
                &mut process.open_files,
            ),
            ("max_processes", raw.max_processes, &mut process.processes),
        ] {
            match value {
                None => {}
                Some(_) if !stdio => {
                    return Err(err(
                        field,
                        format!(
                            "limits a stdio child; transport \"{transport_kind}\" has none, remove it"
                        ),
                    ));
                }
                Some(0) => return Err(err(field, "must be greater than 0".into())),
                Some(n) => *slot = Some(n),
            }
        }
        if placeholders.any && isolation == Isolation::PerSession {
            return Err(err(
                "isolation",
                "a definition with placeholders already gets connections per tenant; remove isolation = \"per-session\"".into(),
            ));
        }
        let prefix = raw.prefix.unwrap_or_else(|| server.as_str().to_owned());
        if !prefix.is_empty() && !is_valid_exposed_name(&exposed_name(&prefix, "x")) {
            return Err(err(
                "prefix",
                format!("{prefix:?} may contain only letters, digits, '_' and '-'"),
            ));
        }
        if prefix.len() > 32 {
            return Err(err("prefix", "longer than 32 characters".into()));
        }
        let defaults = Timeouts::default();
        let positive = |field: &'static str, v: Option<u64>, default: Duration| match v {
            None => Ok(default),
            Some(0) => Err(err(field, "must be greater than 0".into())),
            Some(ms) => Ok(Duration::from_millis(ms)),
        };
        let timeouts = Timeouts {
            connect: positive(
                "connect_timeout_ms",
                raw.connect_timeout_ms,
                defaults.connect,
            )?,
            request: positive(
                "request_timeout_ms",
                raw.request_timeout_ms,
                defaults.request,
            )?,
            idle: raw
                .idle_timeout_ms
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis),
            list_ttl: positive("list_ttl_ms", raw.list_ttl_ms, defaults.list_ttl)?,
            ping_interval: positive(
                "ping_interval_ms",
                raw.ping_interval_ms,
                defaults.ping_interval,
            )?,
            lifetime: match raw.max_lifetime_ms {
                None => None,
                Some(0) => return Err(err("max_lifetime_ms", "must be greater than 0".into())),
                Some(ms) => Some(Duration::from_millis(ms)),
            },
        };
        let tenants: Vec<TenantId> = raw
            .tenants
            .iter()
            .map(|t| TenantId::new(t.as_str()).map_err(|e| err("tenants", e.to_string())))
            .collect::<Result<_, _>>()?;
        let mut routes = BTreeMap::new();
        if !raw.tenant_urls.is_empty() && stdio {
            return Err(err(
                "tenant_urls",
                "routes HTTP servers only; a stdio server has no URL".into(),
            ));
        }
        if !raw.tenant_urls.is_empty() && isolation == Isolation::PerSession {
            return Err(err(
                "tenant_urls",
                "a routed tenant gets a connection of its own; remove isolation = \"per-session\" or the routes".into(),
            ));
        }
        for (tenant, url) in raw.tenant_urls {
            let id =
                TenantId::new(tenant.as_str()).map_err(|e| err("tenant_urls", e.to_string()))?;
            if !tenants.is_empty() && !tenants.contains(&id) {
                return Err(err(
                    "tenant_urls",
                    format!(
                        "{id} is not in tenants, so it cannot use this server; add it there or remove its URL"
                    ),
                ));
            }
            let url = require_url(Some(url)).map_err(|mut e| {
                e.field = "tenant_urls";
                e
            })?;
            let template = Template::parse(&url).map_err(|m| err("tenant_urls", m))?;
            if template.secrets().next().is_some() {
                return Err(err(
                    "tenant_urls",
                    "only {{tenant}} may appear here; put credentials in headers".into(),
                ));
            }
            routes.insert(id, url);
        }
        let identity_key = match raw.identity_key {
            None => None,
            Some(_) if stdio => {
                return Err(err(
                    "identity_key",
                    "signs HTTP headers; a stdio server has none, remove it".into(),
                ));
            }
            Some(key) if key.len() < 32 || key.contains("{{") => {
                return Err(err(
                    "identity_key",
                    "must be at least 32 characters of literal text (e.g. `openssl rand -hex 32`), shared with the upstream that verifies it".into(),
                ));
            }
            Some(key) => Some(super::IdentityKey(key.into_bytes().into())),
        };
        Ok(UpstreamDef {
            network: super::Network::Any,
            user_secrets: true,
            identity_key,
            routes,
            name: server,
            prefix,
            transport,
            timeouts,
            isolation,
            process,
            rewrites: Rewrites::from_raw(raw.arguments, raw.results)
                .map_err(|(field, message)| err(field, message))?,
            secrets: placeholders.secrets.into_iter().collect(),
            per_tenant: placeholders.any,
            tenants,
        })
    }
}
