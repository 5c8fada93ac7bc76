//! The command line of `switchboard admin` (clap definitions).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// Where and as whom to call the admin API.
#[derive(Debug, Args)]
pub struct Connection {
    /// The gateway's base URL.
    #[arg(
        long,
        env = "SWITCHBOARD_ADMIN_URL",
        default_value = "http://127.0.0.1:8931",
        global = true
    )]
    pub url: String,
    /// A platform admin token, or a tenant owner's or admin's API key or token.
    #[arg(
        long,
        env = "SWITCHBOARD_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    /// How to print answers.
    #[arg(long, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// `switchboard admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Who the credential belongs to.
    Me,
    /// Tenants.
    #[command(subcommand)]
    Tenants(TenantCmd),
    /// Members of a tenant.
    #[command(subcommand)]
    Members(MemberCmd),
    /// Groups of a tenant.
    #[command(subcommand)]
    Groups(GroupCmd),
    /// Custom roles of a tenant.
    #[command(subcommand)]
    Roles(RoleCmd),
    /// Grants of a tenant.
    #[command(subcommand)]
    Grants(GrantCmd),
    /// API keys of a tenant.
    #[command(subcommand, name = "api-keys")]
    ApiKeys(KeyCmd),
    /// Service clients of a tenant.
    #[command(subcommand)]
    Clients(ClientCmd),
    /// Secrets (write-only): a tenant's, or with `--mine` your own.
    #[command(subcommand)]
    Secrets(SecretCmd),
    /// Servers a tenant can reach, and the HTTP servers it defines for itself.
    #[command(subcommand)]
    Servers(ServerCmd),
    /// A tenant's usage (calls, errors, latency, bytes) and quotas.
    Usage {
        #[arg(long)]
        tenant: String,
        /// Start: Unix seconds, 2026-12-01 or RFC 3339 (default: start of the month).
        #[arg(long)]
        from: Option<String>,
        /// End, exclusive (default: now).
        #[arg(long)]
        to: Option<String>,
        /// Comma-separated: user, key, server, tool, day, hour.
        #[arg(long)]
        group_by: Option<String>,
        /// Print CSV (for spreadsheets) instead of a table.
        #[arg(long)]
        csv: bool,
    },
    /// Platform admin tokens, on the database directly (`--config`).
    #[command(subcommand, name = "platform-token")]
    PlatformToken(PlatformTokenCmd),
}

#[derive(Debug, Subcommand)]
pub enum TenantCmd {
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        plan: Option<String>,
        /// The tenant a host name resolves to.
        #[arg(long)]
        domain: Option<String>,
    },
    Get {
        id: String,
    },
    Create {
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        plan: Option<String>,
        /// Email of the first owner.
        #[arg(long)]
        owner: Option<String>,
        #[arg(long = "domain")]
        domains: Vec<String>,
        /// Settings as JSON (`{"rateLimits": {"user": "100/min"}}`).
        #[arg(long)]
        settings: Option<String>,
    },
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        plan: Option<String>,
        #[arg(long)]
        status: Option<String>,
        /// Replaces the domains (repeat for several).
        #[arg(long = "domain")]
        domains: Option<Vec<String>>,
        /// Replaces the settings document (JSON).
        #[arg(long)]
        settings: Option<String>,
    },
    Delete {
        id: String,
    },
    Suspend {
        id: String,
    },
    Resume {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MemberCmd {
    List {
        #[arg(long)]
        tenant: String,
    },
    Add {
        #[arg(long)]
        tenant: String,
        email: String,
        #[arg(long, default_value = "member")]
        role: String,
    },
    SetRole {
        #[arg(long)]
        tenant: String,
        email: String,
        role: String,
    },
    Remove {
        #[arg(long)]
        tenant: String,
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    List {
        #[arg(long)]
        tenant: String,
    },
    Create {
        #[arg(long)]
        tenant: String,
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long = "member")]
        members: Vec<String>,
    },
    Delete {
        #[arg(long)]
        tenant: String,
        name: String,
    },
    AddMember {
        #[arg(long)]
        tenant: String,
        group: String,
        email: String,
    },
    RemoveMember {
        #[arg(long)]
        tenant: String,
        group: String,
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCmd {
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Creates or replaces a custom role.
    Put {
        #[arg(long)]
        tenant: String,
        name: String,
        /// Permissions as JSON: `[{"kinds":["tool"],"target":"github/*"}]`.
        #[arg(long)]
        permissions: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    Delete {
        #[arg(long)]
        tenant: String,
        name: String,
    },
}

/// A tenant's own server definition, from flags.
#[derive(Debug, clap::Args)]
pub struct ServerDef {
    /// The server's URL; `{{tenant}}` and `{{secret.NAME}}` may appear. (`--url` is the
    /// gateway's.)
    #[arg(long)]
    pub endpoint: String,
    /// `streamable-http` or `sse`.
    #[arg(long, default_value = "streamable-http")]
    pub transport: String,
    /// A header sent with every request, `Name: value` (repeatable), e.g.
    /// `--header 'Authorization: Bearer {{secret.crm_token}}'`.
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Prefix of its exposed names (default: the server's name).
    #[arg(long)]
    pub prefix: Option<String>,
    #[arg(long, default_value = "")]
    pub description: String,
}

#[derive(Debug, Subcommand)]
pub enum ServerCmd {
    /// Every server the tenant can reach, with its health.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// One of the tenant's own servers.
    Get {
        #[arg(long)]
        tenant: String,
        name: String,
    },
    /// Defines or replaces one of the tenant's own servers.
    Put {
        #[arg(long)]
        tenant: String,
        name: String,
        #[command(flatten)]
        def: ServerDef,
    },
    /// Tries a definition without saving it: connects and lists its tools.
    Validate {
        #[arg(long)]
        tenant: String,
        name: String,
        #[command(flatten)]
        def: ServerDef,
    },
    Delete {
        #[arg(long)]
        tenant: String,
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GrantCmd {
    List {
        #[arg(long)]
        tenant: String,
    },
    Add {
        #[arg(long)]
        tenant: String,
        /// `user:EMAIL`, `group:NAME`, `role:ROLE` or `client:ID`.
        #[arg(long)]
        to: String,
        /// `server`, `server/item` or `*` (globs).
        #[arg(long)]
        target: String,
        /// A deny grant (wins over any allow).
        #[arg(long)]
        deny: bool,
    },
    Remove {
        #[arg(long)]
        tenant: String,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Creates a key and prints it once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// For this member (default: yourself).
        #[arg(long, conflicts_with = "client")]
        user: Option<String>,
        /// For this service client.
        #[arg(long)]
        client: Option<String>,
        /// Only these targets (repeat).
        #[arg(long = "restrict")]
        restrictions: Vec<String>,
        /// Lifetime: 3600, 15m, 12h, 90d.
        #[arg(long)]
        ttl: Option<String>,
        /// The key's own daily call quota.
        #[arg(long)]
        calls_per_day: Option<u64>,
        /// The key's own monthly call quota.
        #[arg(long)]
        calls_per_month: Option<u64>,
        /// Only from this address or CIDR range (repeat).
        #[arg(long = "allow-ip")]
        allow_ips: Vec<String>,
    },
    Revoke {
        #[arg(long)]
        tenant: String,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCmd {
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Creates a client and prints its secret once.
    Create {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "member")]
        role: String,
    },
    Disable {
        #[arg(long)]
        tenant: String,
        id: String,
    },
    Enable {
        #[arg(long)]
        tenant: String,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PlatformTokenCmd {
    /// Creates a platform admin token and prints it.
    Create {
        #[arg(long, default_value = "cli")]
        name: String,
        #[arg(long, env = "SWITCHBOARD_CONFIG")]
        config: Option<PathBuf>,
    },
    List {
        #[arg(long, env = "SWITCHBOARD_CONFIG")]
        config: Option<PathBuf>,
    },
    Revoke {
        id: String,
        #[arg(long, env = "SWITCHBOARD_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// Whose secrets: a tenant's (`--tenant`) or the caller's own (`--mine`).
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct SecretOwner {
    #[arg(long)]
    pub tenant: Option<String>,
    /// Your own secrets (used instead of the tenant's for your calls).
    #[arg(long)]
    pub mine: bool,
}

#[derive(Debug, Subcommand)]
pub enum SecretCmd {
    /// Names and metadata (never values).
    List {
        #[command(flatten)]
        owner: SecretOwner,
    },
    /// Creates or replaces a secret; the value is read from standard input (or
    /// `--value-file`), never from the command line.
    Set {
        #[command(flatten)]
        owner: SecretOwner,
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Read the value from this file instead of standard input.
        #[arg(long)]
        value_file: Option<PathBuf>,
    },
    Delete {
        #[command(flatten)]
        owner: SecretOwner,
        name: String,
    },
}
