//! Upstream MCP server definitions and their validation.
//!
//! A definition is what an operator writes in the configuration file (and, later, what a
//! tenant admin stores through the admin API). [`RawUpstream`] is the lenient, serde-facing
//! shape; [`UpstreamDef::from_raw`] turns it into a checked definition and reports the first
//! problem with the field name and what to write instead.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::names::ServerName;
pub use crate::network::Network;
use crate::rewrite::Rewrites;
use crate::template::{Encoding, Template};
use crate::tenancy::TenantId;

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

/// The key identity headers to an upstream are signed with (HMAC-SHA256). `Debug` never
/// shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityKey(pub std::sync::Arc<[u8]>);

impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityKey([redacted])")
    }
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
    /// Signs identity headers (tenant, user, groups) on every HTTP request when set.
    pub identity_key: Option<IdentityKey>,
    /// Tenants whose calls go to another endpoint of this server (`tenant_urls`): each such
    /// tenant gets a connection of its own there; the others share the default one.
    pub routes: BTreeMap<TenantId, String>,
    /// Where its connections may go (a tenant's own server: public addresses only).
    pub network: Network,
    /// Whether its placeholders may take the calling user's own secrets (else the
    /// tenant's only): not for a server a tenant admin defined, which could send members'
    /// personal credentials wherever that admin chose.
    pub user_secrets: bool,
}

impl UpstreamDef {
    /// Whether `tenant` may see and use this server at all.
    pub fn available_to(&self, tenant: &TenantId) -> bool {
        self.tenants.is_empty() || self.tenants.contains(tenant)
    }

    /// Whether `tenant` reaches this server on a connection of its own (placeholders, or an
    /// endpoint of its own), never the shared one.
    pub fn own_connection_for(&self, tenant: &TenantId) -> bool {
        self.per_tenant || self.routes.contains_key(tenant)
    }

    /// Whether some tenant may get a connection of its own.
    pub fn has_own_connections(&self) -> bool {
        self.per_tenant || !self.routes.is_empty()
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
                    url: fill(
                        self.routes.get(tenant).unwrap_or(url),
                        Encoding::UrlComponent,
                    ),
                    headers: fill_map(headers),
                }
            }
            UpstreamTransport::Sse { url, headers } => UpstreamTransport::Sse {
                url: fill(
                    self.routes.get(tenant).unwrap_or(url),
                    Encoding::UrlComponent,
                ),
                headers: fill_map(headers),
            },
        };
        UpstreamDef {
            transport,
            secrets: Vec::new(),
            per_tenant: false,
            routes: BTreeMap::new(),
            ..self.clone()
        }
    }
}

mod parse;
mod tenant_owned;
#[cfg(test)]
mod tests;

pub use parse::{RawUpstream, UpstreamDefError};
pub use tenant_owned::TenantServerRules;
