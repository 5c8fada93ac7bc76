//! Upstream MCP server definitions and their validation.
//!
//! A definition is what an operator writes in the configuration file (and, later, what a
//! tenant admin stores through the admin API). [`RawUpstream`] is the lenient, serde-facing
//! shape; [`UpstreamDef::from_raw`] turns it into a checked definition and reports the first
//! problem with the field name and what to write instead.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::tenancy::TenantId;
use serde::{Deserialize, Serialize};

use crate::names::{ServerName, exposed_name, is_valid_exposed_name};
use crate::rewrite::{RawArgumentRule, RawResultRule, Rewrites};
use crate::template::{Encoding, Template};

/// How the gateway reaches an upstream.
///
/// `env` and `headers` often carry the upstream's credentials: `Debug` prints their names
/// only, so a definition can never leak a secret into a log line.
#[derive(Clone, PartialEq, Eq)]
pub enum UpstreamTransport {
    /// A child process speaking MCP over stdin/stdout.
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<String>,
    },
    /// MCP Streamable HTTP (either protocol era).
    StreamableHttp {
        url: String,
        headers: BTreeMap<String, String>,
    },
    /// The deprecated HTTP+SSE transport (protocol 2024-11-05).
    Sse {
        url: String,
        headers: BTreeMap<String, String>,
    },
}

/// Shows the keys of a map, never its values.
struct KeysOnly<'a>(&'a BTreeMap<String, String>);

impl std::fmt::Debug for KeysOnly<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl std::fmt::Debug for UpstreamTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamTransport::Stdio {
                command,
                args,
                env,
                cwd,
            } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", args)
                .field("env", &KeysOnly(env))
                .field("cwd", cwd)
                .finish(),
            UpstreamTransport::StreamableHttp { url, headers } => f
                .debug_struct("StreamableHttp")
                .field("url", url)
                .field("headers", &KeysOnly(headers))
                .finish(),
            UpstreamTransport::Sse { url, headers } => f
                .debug_struct("Sse")
                .field("url", url)
                .field("headers", &KeysOnly(headers))
                .finish(),
        }
    }
}

impl UpstreamTransport {
    /// Short name used in logs, health output and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamTransport::Stdio { .. } => "stdio",
            UpstreamTransport::StreamableHttp { .. } => "streamable-http",
            UpstreamTransport::Sse { .. } => "sse",
        }
    }
}

/// Whether downstream sessions share one upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// One connection serves every client (fastest; server-to-client requests such as
    /// sampling cannot be attributed to one client and are refused with a clear error).
    #[default]
    Shared,
    /// Each legacy downstream session that declares sampling, elicitation or roots gets its
    /// own upstream connection, so the upstream's requests reach exactly that client.
    PerSession,
}

/// Time limits of one upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting plus the initialize/discover handshake.
    pub connect: Duration,
    /// One request, from send to final response.
    pub request: Duration,
    /// Stop an idle connection (stdio child) after this long; `None` keeps it forever.
    pub idle: Option<Duration>,
    /// Re-list an upstream that never sends `list_changed` after this long.
    pub list_ttl: Duration,
    /// How often a connected upstream is pinged; a ping unanswered within `connect` (at most
    /// 5 s) marks the connection dead and it is replaced.
    pub ping_interval: Duration,
    /// Close a connection (stop a stdio child) this long after it opened, once no request
    /// is in flight; the next request opens a fresh one. `None`: no limit.
    pub lifetime: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(15),
            request: Duration::from_secs(120),
            idle: None,
            list_ttl: Duration::from_secs(300),
            ping_interval: Duration::from_secs(15),
            lifetime: None,
        }
    }
}

/// Operating-system limits a stdio child starts with (`setrlimit`); `None` inherits the
/// gateway's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessLimits {
    /// Address space, MiB (`RLIMIT_AS`).
    pub memory_mb: Option<u64>,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
    /// Processes of the gateway's user the child may have running, itself included
    /// (`RLIMIT_NPROC`: counted per user, so it caps fork bombs, not an exact count).
    pub processes: Option<u64>,
}

/// A validated upstream definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamDef {
    pub name: ServerName,
    /// Prefix of exposed names; empty exposes upstream names unchanged.
    pub prefix: String,
    pub transport: UpstreamTransport,
    pub timeouts: Timeouts,
    pub isolation: Isolation,
    /// Resource limits of a stdio child.
    pub process: ProcessLimits,
    /// Argument prefixing and result filtering per tenant (tools only).
    pub rewrites: Rewrites,
    /// Tenants that may use this server; empty makes it available to every tenant (the
    /// platform catalog). Grants inside each tenant still decide who may use what.
    pub tenants: Vec<TenantId>,
    /// The secrets its placeholders name (sorted, once each).
    pub secrets: Vec<String>,
    /// True when a header, environment value or the URL has a placeholder
    /// (`{{secret.NAME}}`, `{{tenant}}`): each tenant then gets connections of its own, see
    /// [`UpstreamDef::render`].
    pub per_tenant: bool,
}

impl UpstreamDef {
    /// Whether `tenant` may see and use this server at all.
    pub fn available_to(&self, tenant: &TenantId) -> bool {
        self.tenants.is_empty() || self.tenants.contains(tenant)
    }

    /// The definition one tenant's connection uses: every placeholder filled in with
    /// `tenant` and `secret(name)` (URL parts percent-encoded). The result has no
    /// placeholder left and is not `per_tenant`.
    pub fn render<'a>(
        &self,
        tenant: &TenantId,
        secret: impl Fn(&str) -> Option<&'a str> + Copy,
    ) -> UpstreamDef {
        let fill = |text: &str, encoding: Encoding| match Template::parse(text) {
            Ok(template) => template.render(tenant.as_str(), secret, encoding),
            // Checked when the definition was made; unreachable for a validated one.
            Err(_) => text.to_owned(),
        };
        let fill_map = |map: &BTreeMap<String, String>| {
            map.iter()
                .map(|(k, v)| (k.clone(), fill(v, Encoding::Raw)))
                .collect()
        };
        let transport = match &self.transport {
            UpstreamTransport::Stdio {
                command,
                args,
                env,
                cwd,
            } => UpstreamTransport::Stdio {
                command: command.clone(),
                args: args.clone(),
                env: fill_map(env),
                cwd: cwd.clone(),
            },
            UpstreamTransport::StreamableHttp { url, headers } => {
                UpstreamTransport::StreamableHttp {
                    url: fill(url, Encoding::UrlComponent),
                    headers: fill_map(headers),
                }
            }
            UpstreamTransport::Sse { url, headers } => UpstreamTransport::Sse {
                url: fill(url, Encoding::UrlComponent),
                headers: fill_map(headers),
            },
        };
        UpstreamDef {
            transport,
            secrets: Vec::new(),
            per_tenant: false,
            ..self.clone()
        }
    }
}

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
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
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
        Ok(UpstreamDef {
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
            tenants: raw
                .tenants
                .iter()
                .map(|t| TenantId::new(t.as_str()).map_err(|e| err("tenants", e.to_string())))
                .collect::<Result<_, _>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(transport: &str) -> RawUpstream {
        RawUpstream {
            transport: Some(transport.into()),
            ..Default::default()
        }
    }

    #[test]
    fn stdio_needs_a_command() {
        let e = UpstreamDef::from_raw("time", raw("stdio")).unwrap_err();
        assert_eq!(e.field, "command");
        assert!(e.to_string().starts_with("upstreams.time.command:"));
    }

    #[test]
    fn http_needs_an_http_url() {
        let mut r = raw("streamable-http");
        r.url = Some("ftp://x".into());
        assert_eq!(UpstreamDef::from_raw("a", r).unwrap_err().field, "url");
    }

    #[test]
    fn fields_of_another_transport_are_refused() {
        let mut r = raw("stdio");
        r.command = Some("x".into());
        r.url = Some("http://x".into());
        let e = UpstreamDef::from_raw("a", r).unwrap_err();
        assert_eq!(e.field, "url");
        assert!(e.message.contains("not used"));
    }

    #[test]
    fn unknown_transport_names_the_choices() {
        let e = UpstreamDef::from_raw("a", raw("websocket")).unwrap_err();
        assert!(e.message.contains("\"stdio\""));
    }

    #[test]
    fn defaults_apply() {
        let mut r = raw("sse");
        r.url = Some("http://127.0.0.1:1/sse".into());
        let def = UpstreamDef::from_raw("legacy", r).unwrap();
        assert_eq!(def.prefix, "legacy");
        assert_eq!(def.timeouts, Timeouts::default());
        assert_eq!(def.isolation, Isolation::Shared);
    }

    #[test]
    fn header_injection_is_refused() {
        let mut r = raw("streamable-http");
        r.url = Some("http://127.0.0.1/mcp".into());
        r.headers.insert("X-A".into(), "a\r\nX-B: b".into());
        assert_eq!(UpstreamDef::from_raw("a", r).unwrap_err().field, "headers");
    }

    #[test]
    fn debug_output_never_shows_header_or_env_values() {
        let mut r = raw("streamable-http");
        r.url = Some("http://127.0.0.1/mcp".into());
        r.headers
            .insert("Authorization".into(), "Bearer sk-secret".into());
        let printed = format!("{:?}", UpstreamDef::from_raw("a", r).unwrap());
        assert!(printed.contains("Authorization"));
        assert!(!printed.contains("sk-secret"), "{printed}");
        let mut r = raw("stdio");
        r.command = Some("x".into());
        r.env.insert("API_KEY".into(), "hunter2".into());
        let printed = format!("{:?}", UpstreamDef::from_raw("b", r).unwrap());
        assert!(
            printed.contains("API_KEY") && !printed.contains("hunter2"),
            "{printed}"
        );
    }

    #[test]
    fn placeholders_make_a_definition_per_tenant() {
        let mut r = raw("streamable-http");
        r.url = Some("https://{{tenant}}.api.example/mcp?k={{secret.api_key}}".into());
        r.headers
            .insert("Authorization".into(), "Bearer {{secret.gh_token}}".into());
        let def = UpstreamDef::from_raw("gh", r).unwrap();
        assert!(def.per_tenant);
        assert_eq!(def.secrets, vec!["api_key", "gh_token"]);
        let tenant = TenantId::new("acme").unwrap();
        let rendered = def.render(&tenant, |name| match name {
            "gh_token" => Some("ghp_1"),
            "api_key" => Some("a b"),
            _ => None,
        });
        assert!(!rendered.per_tenant && rendered.secrets.is_empty());
        let UpstreamTransport::StreamableHttp { url, headers } = &rendered.transport else {
            panic!("transport changed");
        };
        assert_eq!(url, "https://acme.api.example/mcp?k=a%20b");
        assert_eq!(headers["Authorization"], "Bearer ghp_1");

        let mut r = raw("stdio");
        r.command = Some("x".into());
        r.env.insert("TOKEN".into(), "{{secret.token}}".into());
        r.env.insert("PLAIN".into(), "p".into());
        let def = UpstreamDef::from_raw("s", r).unwrap();
        assert!(def.per_tenant);
        let rendered = def.render(&tenant, |_| Some("t"));
        let UpstreamTransport::Stdio { env, .. } = &rendered.transport else {
            panic!("transport changed");
        };
        assert_eq!((env["TOKEN"].as_str(), env["PLAIN"].as_str()), ("t", "p"));
    }

    #[test]
    fn a_definition_without_placeholders_is_shared() {
        let mut r = raw("streamable-http");
        r.url = Some("http://127.0.0.1/mcp".into());
        r.headers.insert("Authorization".into(), "Bearer x".into());
        let def = UpstreamDef::from_raw("a", r).unwrap();
        assert!(!def.per_tenant && def.secrets.is_empty());
    }

    #[test]
    fn misplaced_or_broken_placeholders_are_refused() {
        let mut r = raw("stdio");
        r.command = Some("x".into());
        r.args = vec!["--token={{secret.t}}".into()];
        let e = UpstreamDef::from_raw("a", r).unwrap_err();
        assert_eq!(e.field, "args");
        assert!(e.message.contains("env"), "{e}");

        let mut r = raw("streamable-http");
        r.url = Some("http://127.0.0.1/mcp".into());
        r.headers
            .insert("Authorization".into(), "Bearer {{secrets.t}}".into());
        let e = UpstreamDef::from_raw("a", r).unwrap_err();
        assert_eq!(e.field, "headers");
        assert!(e.message.contains("unknown placeholder"), "{e}");

        let mut r = raw("streamable-http");
        r.url = Some("http://127.0.0.1/mcp".into());
        r.headers.insert("X-Key".into(), "{{secret.k}}".into());
        r.isolation = Some(Isolation::PerSession);
        assert_eq!(
            UpstreamDef::from_raw("a", r).unwrap_err().field,
            "isolation"
        );
    }

    #[test]
    fn process_limits_belong_to_stdio() {
        let mut r = raw("stdio");
        r.command = Some("x".into());
        r.max_open_files = Some(64);
        r.max_memory_mb = Some(512);
        r.max_lifetime_ms = Some(60_000);
        let def = UpstreamDef::from_raw("a", r).unwrap();
        assert_eq!(def.process.open_files, Some(64));
        assert_eq!(def.process.memory_mb, Some(512));
        assert_eq!(def.timeouts.lifetime, Some(Duration::from_secs(60)));
        let mut r = raw("streamable-http");
        r.url = Some("http://127.0.0.1/mcp".into());
        r.max_processes = Some(4);
        let e = UpstreamDef::from_raw("a", r).unwrap_err();
        assert_eq!(e.field, "max_processes");
        let mut r = raw("stdio");
        r.command = Some("x".into());
        r.max_open_files = Some(0);
        assert_eq!(
            UpstreamDef::from_raw("a", r).unwrap_err().field,
            "max_open_files"
        );
    }

    #[test]
    fn zero_timeouts_are_refused() {
        let mut r = raw("sse");
        r.url = Some("http://127.0.0.1/sse".into());
        r.request_timeout_ms = Some(0);
        assert_eq!(
            UpstreamDef::from_raw("a", r).unwrap_err().field,
            "request_timeout_ms"
        );
    }
}
