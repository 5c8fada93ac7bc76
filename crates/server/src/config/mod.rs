//! The configuration file: one TOML document, every key overridable from the environment.
//!
//! `SWITCHBOARD_<SECTION>__<KEY>=value` overrides `[section] key`; deeper paths use more `__`
//! (`SWITCHBOARD_UPSTREAMS__TIME__COMMAND=uvx`). Values are read as TOML when they parse
//! (`8080`, `true`, `["a","b"]`) and as plain strings otherwise. Unknown keys are errors, and
//! every error names the key and says what to write instead.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use switchboard_domain::{RawUpstream, UpstreamDef};

mod admin;
mod env;
mod governance;
mod secrets;
mod traces;

pub use admin::{AdminSection, TenantServersSection};
use env::env_overrides;
pub use secrets::SecretsSection;
pub use traces::TracesSection;

pub use governance::{
    AuditSection, LimitsSection, MetricsSection, OnRedisErrorSetting, PlansSection, UsageSection,
};
use switchboard_mcp::GatewayConfig;
use switchboard_mcp::downstream::streamable::HttpOptions;

/// Port of the zero-setup demo and the default listener.
pub const DEFAULT_PORT: u16 = 8931;
/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "SWITCHBOARD_";

/// A configuration problem, with the key it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(String),
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error(transparent)]
    Upstream(#[from] switchboard_domain::UpstreamDefError),
}

/// `[server]`: the listener and downstream limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Address to listen on.
    pub listen: String,
    /// Accepted `Host` header values; default: loopback names when listening on loopback.
    pub allowed_hosts: Option<Vec<String>>,
    /// Accepted browser origins (`scheme://host:port`, `:*` for any port).
    pub allowed_origins: Option<Vec<String>>,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Items per page of aggregated lists.
    pub page_size: usize,
    /// SSE keep-alive interval.
    pub sse_keep_alive_ms: u64,
    /// Idle time after which a legacy session is closed.
    pub session_idle_ms: u64,
    /// Quiet time after which a legacy Streamable HTTP session without open streams or state
    /// of its own is parked (its service loop stops until its next request); 0: never.
    pub session_park_after_ms: u64,
    /// Serve plain 2026-07-28 stateless requests on the gateway's direct path (false: every
    /// request through rmcp's Streamable HTTP service).
    pub stateless_direct: bool,
    /// Most concurrent legacy HTTP+SSE sessions.
    pub max_sse_sessions: usize,
    /// Most concurrent legacy Streamable HTTP sessions.
    pub max_sessions: usize,
    /// Most session-owned upstream connections (per-session isolation, bridged calls).
    pub max_session_connections: usize,
    /// Most tenants' own connections to upstreams with placeholders (all tenants).
    pub max_tenant_connections: usize,
    /// Most own connections of one tenant (its users' included).
    pub max_connections_per_tenant: usize,
    /// Most concurrent legacy sessions of one user per transport, unless the tenant sets
    /// `maxSessionsPerUser`.
    pub max_sessions_per_user: usize,
    /// Folder for the embedded database and the generated key-hashing secret.
    pub data_dir: String,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_ms: u64,
    /// How long start-up waits for upstreams' first connection before serving.
    pub startup_wait_ms: u64,
    /// `instructions` returned to clients.
    pub instructions: Option<String>,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names the client;
    /// from anyone else the header is ignored.
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: format!("127.0.0.1:{DEFAULT_PORT}"),
            allowed_hosts: None,
            allowed_origins: None,
            max_body_bytes: 4 * 1024 * 1024,
            page_size: 500,
            sse_keep_alive_ms: 15_000,
            session_idle_ms: 300_000,
            session_park_after_ms: 10_000,
            stateless_direct: true,
            max_sse_sessions: 10_000,
            max_sessions: 10_000,
            max_session_connections: 256,
            max_tenant_connections: 1000,
            max_connections_per_tenant: 20,
            max_sessions_per_user: 100,
            data_dir: "switchboard-data".into(),
            shutdown_grace_ms: 10_000,
            startup_wait_ms: 5_000,
            instructions: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[database]`: where tenants, users, grants and credentials are stored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSection {
    /// `sqlite://PATH` or `postgres://…`; default: `sqlite://{server.data_dir}/switchboard.db`.
    pub url: Option<SecretString>,
}

/// `[auth]`: how requests are authenticated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// The gateway's public base URL (`https://mcp.example.com`): the issuer of its tokens
    /// and the audience tokens must name. Default: `http://{server.listen}`.
    pub public_url: Option<String>,
    /// Hosts `{tenant}.{subdomain_base}` resolve to `{tenant}`.
    pub subdomain_base: Option<String>,
    /// Secret (≥ 32 characters) keying the hashes of API keys and client secrets; the same on
    /// every replica. Default: generated once into `{server.data_dir}/key-hashing.secret`.
    pub key_hashing_secret: Option<SecretString>,
    /// Accept `?token=` on the legacy SSE endpoints (for clients that cannot send headers).
    /// Off by default; the query is never logged.
    pub sse_query_token: bool,
    /// How often the directory is checked for changes made by other processes or replicas.
    pub reload_interval_ms: u64,
    /// Lifetime of tokens issued to service clients at `/oauth/token`.
    pub client_token_ttl_secs: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            public_url: None,
            subdomain_base: None,
            key_hashing_secret: None,
            sse_query_token: false,
            reload_interval_ms: 1_000,
            client_token_ttl_secs: 900,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    database: DatabaseSection,
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    audit: AuditSection,
    #[serde(default)]
    usage: UsageSection,
    #[serde(default)]
    metrics: MetricsSection,
    #[serde(default)]
    admin: AdminSection,
    #[serde(default)]
    tenant_servers: TenantServersSection,
    #[serde(default)]
    traces: TracesSection,
    #[serde(default)]
    secrets: SecretsSection,
    #[serde(default)]
    upstreams: BTreeMap<String, RawUpstream>,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerSection,
    pub database: DatabaseSection,
    pub auth: AuthSection,
    pub limits: LimitsSection,
    pub audit: AuditSection,
    pub usage: UsageSection,
    pub metrics: MetricsSection,
    pub admin: AdminSection,
    pub tenant_servers: TenantServersSection,
    pub traces: TracesSection,
    pub secrets: SecretsSection,
    pub listen: SocketAddr,
    pub upstreams: Vec<UpstreamDef>,
}

impl Config {
    /// Reads `path`, applies environment overrides from `env`, and checks everything.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, env)
    }

    /// Parses a TOML document, applies environment overrides, and checks everything.
    pub fn from_toml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let base: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        let mut overrides = env_overrides(env)?;
        // An override is read as TOML first (`8080`, `true`); when the key turns out to want a
        // string (`command = "true"`), it is retried as the plain string.
        loop {
            let mut doc = base.clone();
            for o in &overrides {
                o.apply(&mut doc)?;
            }
            match RawConfig::deserialize(toml::Value::Table(doc)) {
                Ok(raw) => return Self::check(raw),
                Err(e) => {
                    let message = e.to_string();
                    let retry = overrides.iter_mut().find(|o| {
                        !o.as_string && message.contains(&format!("in `{}`", o.keys.join(".")))
                    });
                    match retry {
                        Some(o) => o.as_string = true,
                        None => return Err(ConfigError::Parse(message)),
                    }
                }
            }
        }
    }

    fn check(raw: RawConfig) -> Result<Config, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_owned(),
            message,
        };
        let listen: SocketAddr = raw.server.listen.parse().map_err(|_| {
            invalid(
                "server.listen",
                format!(
                    "{:?} is not an address like \"127.0.0.1:{DEFAULT_PORT}\"",
                    raw.server.listen
                ),
            )
        })?;
        if raw.server.max_body_bytes < 1024 {
            return Err(invalid(
                "server.max_body_bytes",
                "must be at least 1024".into(),
            ));
        }
        if raw.server.page_size == 0 || raw.server.page_size > 10_000 {
            return Err(invalid(
                "server.page_size",
                "must be between 1 and 10000".into(),
            ));
        }
        for (key, value) in [
            ("server.sse_keep_alive_ms", raw.server.sse_keep_alive_ms),
            ("server.session_idle_ms", raw.server.session_idle_ms),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0".into()));
            }
        }
        if (1..1000).contains(&raw.server.session_park_after_ms) {
            return Err(invalid(
                "server.session_park_after_ms",
                "must be 0 (never park) or at least 1000".into(),
            ));
        }
        for (key, value) in [
            ("server.max_sessions", raw.server.max_sessions),
            (
                "server.max_session_connections",
                raw.server.max_session_connections,
            ),
            (
                "server.max_tenant_connections",
                raw.server.max_tenant_connections,
            ),
            (
                "server.max_connections_per_tenant",
                raw.server.max_connections_per_tenant,
            ),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0".into()));
            }
        }
        if raw.server.max_sse_sessions == 0 {
            return Err(invalid(
                "server.max_sse_sessions",
                "must be greater than 0".into(),
            ));
        }
        let mut upstreams = Vec::with_capacity(raw.upstreams.len());
        for (name, upstream) in raw.upstreams {
            upstreams.push(UpstreamDef::from_raw(&name, upstream)?);
        }
        let mut prefixes = BTreeMap::new();
        for def in &upstreams {
            if !def.prefix.is_empty()
                && let Some(other) = prefixes.insert(def.prefix.clone(), def.name.to_string())
            {
                return Err(invalid(
                    &format!("upstreams.{}.prefix", def.name),
                    format!(
                        "prefix {:?} is already used by upstream {other:?}",
                        def.prefix
                    ),
                ));
            }
        }
        if let Some(url) = &raw.auth.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                "auth.public_url",
                format!("{url:?} must start with http:// or https://"),
            ));
        }
        if let Some(secret) = &raw.auth.key_hashing_secret
            && secret.expose_secret().len() < 32
        {
            return Err(invalid(
                "auth.key_hashing_secret",
                "must be at least 32 characters (e.g. `openssl rand -hex 32`)".into(),
            ));
        }
        if raw.auth.reload_interval_ms < 50 {
            return Err(invalid(
                "auth.reload_interval_ms",
                "must be at least 50".into(),
            ));
        }
        if !(60..=86_400).contains(&raw.auth.client_token_ttl_secs) {
            return Err(invalid(
                "auth.client_token_ttl_secs",
                "must be between 60 and 86400".into(),
            ));
        }
        if let Some(url) = &raw.limits.redis_url {
            let url = url.expose_secret();
            if !url.starts_with("redis://") {
                return Err(invalid(
                    "limits.redis_url",
                    "must start with redis:// (e.g. \"redis://127.0.0.1:6379\"); TLS (rediss://) is not built in".into(),
                ));
            }
        }
        if !(10..=10_000).contains(&raw.limits.redis_timeout_ms) {
            return Err(invalid(
                "limits.redis_timeout_ms",
                "must be between 10 and 10000".into(),
            ));
        }
        if raw.limits.max_local_keys < 1_000 {
            return Err(invalid(
                "limits.max_local_keys",
                "must be at least 1000".into(),
            ));
        }
        if !(100..=10_000_000).contains(&raw.audit.queue_capacity) {
            return Err(invalid(
                "audit.queue_capacity",
                "must be between 100 and 10000000".into(),
            ));
        }
        if !(1..=10_000).contains(&raw.audit.batch_size) {
            return Err(invalid(
                "audit.batch_size",
                "must be between 1 and 10000".into(),
            ));
        }
        raw.admin.check()?;
        raw.tenant_servers.check()?;
        let mut traces = raw.traces;
        traces.check()?;
        if let Err(entry) = crate::forwarded::TrustedProxies::parse(&raw.server.trusted_proxies) {
            return Err(invalid(
                "server.trusted_proxies",
                format!("{entry:?} is not an address or CIDR range (write e.g. 10.0.0.0/8)"),
            ));
        }
        if raw.usage.flush_interval_ms < 100 || raw.usage.flush_interval_ms > 3_600_000 {
            return Err(invalid(
                "usage.flush_interval_ms",
                "must be between 100 and 3600000".into(),
            ));
        }
        if raw.usage.max_cells < 100 {
            return Err(invalid("usage.max_cells", "must be at least 100".into()));
        }
        if let Some(token) = &raw.metrics.token
            && token.expose_secret().len() < 16
        {
            return Err(invalid(
                "metrics.token",
                "must be at least 16 characters (e.g. `openssl rand -hex 16`)".into(),
            ));
        }
        if !(10..=1_000_000).contains(&raw.metrics.max_series) {
            return Err(invalid(
                "metrics.max_series",
                "must be between 10 and 1000000".into(),
            ));
        }
        if raw.server.max_sessions_per_user == 0 {
            return Err(invalid(
                "server.max_sessions_per_user",
                "must be greater than 0".into(),
            ));
        }
        Ok(Config {
            server: raw.server,
            database: raw.database,
            auth: raw.auth,
            limits: raw.limits,
            audit: raw.audit,
            usage: raw.usage,
            metrics: raw.metrics,
            admin: raw.admin,
            tenant_servers: raw.tenant_servers,
            traces,
            secrets: raw.secrets,
            listen,
            upstreams,
        })
    }

    /// The downstream HTTP options derived from `[server]`.
    pub fn http_options(&self) -> HttpOptions {
        let loopback = self.listen.ip().is_loopback();
        let allowed_hosts = self.server.allowed_hosts.clone().unwrap_or_else(|| {
            if loopback {
                vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
            } else {
                // Bound to a public address without a list: the operator must name the hosts.
                vec![self.listen.ip().to_string()]
            }
        });
        let allowed_origins = self.server.allowed_origins.clone().unwrap_or_else(|| {
            if loopback {
                vec![
                    "http://localhost:*".into(),
                    "http://127.0.0.1:*".into(),
                    "http://[::1]:*".into(),
                ]
            } else {
                Vec::new()
            }
        });
        HttpOptions {
            allowed_hosts,
            allowed_origins,
            max_body_bytes: self.server.max_body_bytes,
            keep_alive: Duration::from_millis(self.server.sse_keep_alive_ms),
            session_idle: Duration::from_millis(self.server.session_idle_ms),
            session_park_after: (self.server.session_park_after_ms > 0)
                .then(|| Duration::from_millis(self.server.session_park_after_ms)),
            stateless_direct: self.server.stateless_direct,
            max_sse_sessions: self.server.max_sse_sessions,
            max_sessions: self.server.max_sessions,
            max_sessions_per_user: self.server.max_sessions_per_user,
        }
    }

    /// The database URL: configured, or the embedded SQLite file in the data folder.
    pub fn database_url(&self) -> SecretString {
        self.database.url.clone().unwrap_or_else(|| {
            let path = Path::new(&self.server.data_dir).join("switchboard.db");
            SecretString::from(format!("sqlite://{}", path.display()))
        })
    }

    /// The gateway's public base URL, without a trailing slash.
    pub fn public_url(&self) -> String {
        self.auth
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }

    /// The data-plane options derived from `[server]`.
    pub fn gateway_config(&self) -> GatewayConfig {
        GatewayConfig {
            page_size: self.server.page_size,
            instructions: self.server.instructions.clone(),
            max_session_connections: self.server.max_session_connections,
            per_tenant: switchboard_mcp::per_tenant::PerTenantLimits {
                total: self.server.max_tenant_connections,
                per_tenant: self.server.max_connections_per_tenant,
            },
            work_dir: Some(std::path::Path::new(&self.server.data_dir).join("work")),
        }
    }
}

#[cfg(test)]
mod tests;
