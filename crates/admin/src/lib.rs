//! The admin REST API at `/admin/v1`: tenants, members, groups, roles, grants, API keys and
//! service clients, for platform administrators and each tenant's own admins, with an
//! OpenAPI 3.1 document generated from the handlers and types
//! (`/admin/v1/openapi.json`, rendered at `/admin/v1/docs`).
//!
//! - `access` — who is calling, and the one place that decides what they may touch;
//! - `routes/` — one module per resource; every write goes to the store, records an
//!   `admin.change` audit event (before/after, never a secret) and republishes the
//!   directory before answering, so a new key works and a revoked one fails at once;
//! - secrets are written and listed here but their values never leave: the vault
//!   (`switchboard-secrets`) encrypts them and only the gateway's upstream calls read them;
//! - `views` — the JSON shapes (camelCase), separate from the domain types so the API can
//!   stay stable while the domain moves;
//! - `error`, `extract`, `page` — one error shape, extractors that use it, cursors.
//!
//! *Must not:* know MCP, the HTTP server's wiring or the audit log's storage: the server
//! hands in a [`Hooks`] implementation for "the directory changed" and "record this event".

pub mod access;
mod changes;
mod docs;
mod error;
mod extract;
mod page;
mod routes;
mod views;

use std::net::IpAddr;
use std::sync::Arc;

use futures::future::BoxFuture;
use switchboard_auth::Authenticator;
use switchboard_domain::audit::AuditEvent;
use switchboard_domain::tenancy::{Principal, TenantId, UserId};
use switchboard_domain::usage::Period;
use switchboard_domain::{RawUpstream, UpstreamDefError};
use switchboard_secrets::Vault;
use switchboard_store::Store;

pub use access::BootstrapToken;
pub use error::{ApiError, ErrorBody};
pub use routes::{openapi, router};

/// What the admin API needs from the process around it.
pub trait Hooks: Send + Sync {
    /// The directory changed in the store: republish the authentication snapshot now.
    fn directory_changed(&self) -> BoxFuture<'_, ()>;
    /// Records an audit event (never blocks; the audit log queues it).
    fn record(&self, event: AuditEvent);
    /// Writes this process's counted usage now, so a report includes it.
    fn flush_usage(&self) -> BoxFuture<'_, ()>;
    /// Calls used of a quota period holding now, as this process counts them (`None`: not
    /// counted here; the store's figure stands).
    fn quota_used(
        &self,
        tenant: &TenantId,
        credential: Option<&str>,
        period: Period,
    ) -> Option<u64>;
    /// The upstream servers available to `tenant`, with their health; with `principal`,
    /// only those where it may use at least one item.
    fn servers(&self, tenant: &TenantId, principal: Option<&Principal>) -> Vec<ServerHealth>;
    /// The tenant's open legacy sessions (Streamable HTTP and SSE) on this replica.
    fn sessions<'a>(&'a self, tenant: &'a TenantId) -> BoxFuture<'a, Vec<SessionView>>;
    /// Ends one of the tenant's sessions on this replica; `false` when there is none.
    fn end_session<'a>(&'a self, tenant: &'a TenantId, id: &'a str) -> BoxFuture<'a, bool>;
    /// A secret of `tenant` (or of one of its users) was set or deleted: upstream
    /// connections made from secrets must look them up again.
    fn secrets_changed(&self, tenant: &TenantId);
    /// Checks a server definition `tenant` wants to store as `name` (transport, URL and the
    /// network rules, placeholders, no clash with a catalog server); `by_platform`: written
    /// by a platform administrator, so it may run a command.
    fn check_server(
        &self,
        tenant: &TenantId,
        name: &str,
        raw: RawUpstream,
        by_platform: bool,
    ) -> Result<(), UpstreamDefError>;
    /// Connects to a definition `tenant` wants to store (its placeholders filled with
    /// `user`'s secrets, else the tenant's) and lists its tools.
    fn probe_server<'a>(
        &'a self,
        tenant: &'a TenantId,
        user: Option<&'a UserId>,
        name: &'a str,
        raw: RawUpstream,
        by_platform: bool,
    ) -> BoxFuture<'a, Result<ProbeView, ProbeError>>;
    /// Most servers one tenant may define.
    fn max_servers_per_tenant(&self) -> usize;
}

/// What a connection to a server definition found.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeView {
    /// The tools it lists, by their names on the server.
    pub tools: Vec<ProbeTool>,
    /// What the server says it is (`serverInfo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
}

/// One tool a checked server lists.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ProbeTool {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Why a server definition could not be tried.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The definition is refused.
    #[error(transparent)]
    Invalid(#[from] UpstreamDefError),
    /// A secret its placeholders name is not set.
    #[error(
        "secret {0:?} is not set; set it first (PUT /admin/v1/tenants/{{tenant}}/secrets/{0} or /admin/v1/me/secrets/{0})"
    )]
    MissingSecret(String),
    /// Connecting or listing failed (secret values cut out).
    #[error("{0}")]
    Unreachable(String),
}

/// An open legacy session.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// The session id (useless without its owner's credential: sessions are bound).
    pub id: String,
    /// `streamable-http` or `sse`.
    pub transport: String,
    /// Who opened it: `user:…`, `client:…`.
    pub owner: String,
    /// Unix seconds.
    pub opened_at: i64,
}

/// One upstream server as a tenant sees it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerHealth {
    /// The server's name (the prefix of its tools: `name__tool`).
    pub name: String,
    /// `catalog` (defined by the platform) or `tenant` (the tenant's own).
    pub owner: String,
    /// `stdio`, `streamable-http` or `sse`.
    pub transport: String,
    /// `starting`, `ready`, `idle`, `down` or `stopped`.
    pub status: String,
    /// Why it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub tools: usize,
    pub prompts: usize,
    pub resources: usize,
    /// What the server says it is (`serverInfo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AdminState(Arc<Inner>);

struct Inner {
    store: Store,
    auth: Arc<Authenticator>,
    vault: Arc<Vault>,
    bootstrap: Option<BootstrapToken>,
    hooks: Arc<dyn Hooks>,
    public_url: String,
}

impl AdminState {
    /// The state of the admin API. `bootstrap` is the operator's `SWITCHBOARD_ADMIN_TOKEN`,
    /// if set; `public_url` is the gateway's base URL (the audience of tenant tokens).
    pub fn new(
        store: Store,
        auth: Arc<Authenticator>,
        vault: Arc<Vault>,
        bootstrap: Option<BootstrapToken>,
        hooks: Arc<dyn Hooks>,
        public_url: String,
    ) -> Self {
        Self(Arc::new(Inner {
            store,
            auth,
            vault,
            bootstrap,
            hooks,
            public_url,
        }))
    }

    fn store(&self) -> &Store {
        &self.0.store
    }

    /// Records a refused platform credential in the platform chain.
    fn refused(&self, reason: &str, ip: Option<IpAddr>) {
        self.0.hooks.record(changes::refusal(reason, ip));
    }
}
