//! The admin API in this process: what it needs from the gateway (republish the directory
//! after a change, record audit events), the platform admin token of a first start, and the
//! local `switchboard admin platform-token` commands (which work on the database, for when
//! no admin token is at hand).

use std::sync::Arc;

use anyhow::Context;
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use switchboard_admin::{
    AdminState, BootstrapToken, Hooks, ProbeError, ProbeView, ServerHealth, SessionView,
};
use switchboard_auth::api_key::{self, ADMIN_PREFIX, HashingKey};
use switchboard_domain::audit::AuditEvent;
use switchboard_domain::tenancy::{Item, ItemKind, Principal, TenantId, UserId};
use switchboard_domain::usage::Period;
use switchboard_domain::{RawUpstream, UpstreamDefError};
use switchboard_governance::{AuditLog, Meter};
use switchboard_mcp::Gateway;
use switchboard_mcp::upstream::Health;
use switchboard_secrets::Vault;
use switchboard_store::Store;

use crate::app::Sessions;
use crate::config::{Config, TenantServersSection};
use crate::secrets::VaultSource;
use crate::tenancy::{Tenancy, hashing_key, open_store};
use crate::tenant_servers;

struct GatewayHooks {
    tenancy: Arc<Tenancy>,
    gateway: Arc<Gateway>,
    sessions: Sessions,
    audit: Option<Arc<AuditLog>>,
    meter: Option<Arc<Meter>>,
    rules: TenantServersSection,
    secrets: VaultSource,
}

impl Hooks for GatewayHooks {
    fn directory_changed(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // The store has the change; if republishing fails here, the poller retries.
            if let Err(err) = self.tenancy.reload().await {
                tracing::warn!(error = %err, "admin change: cannot republish the directory yet");
            }
        })
    }

    fn record(&self, event: AuditEvent) {
        if let Some(log) = &self.audit {
            log.record(event);
        }
    }

    fn flush_usage(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(meter) = &self.meter {
                meter.flush().await;
            }
        })
    }

    fn quota_used(
        &self,
        tenant: &TenantId,
        credential: Option<&str>,
        period: Period,
    ) -> Option<u64> {
        self.meter.as_ref()?.quota_used(tenant, credential, period)
    }

    fn sessions<'a>(&'a self, tenant: &'a TenantId) -> BoxFuture<'a, Vec<SessionView>> {
        Box::pin(async move {
            let mut found = self.sessions.limit.sessions_of(tenant);
            found.extend(self.sessions.sse.sessions_of(tenant));
            found
                .into_iter()
                .map(|s| SessionView {
                    id: s.id,
                    transport: s.transport.to_owned(),
                    owner: s.owner.identity.to_string(),
                    opened_at: s.opened_at,
                })
                .collect()
        })
    }

    fn end_session<'a>(&'a self, tenant: &'a TenantId, id: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            self.sessions.limit.close(tenant, id) || self.sessions.sse.close(tenant, id)
        })
    }

    fn secrets_changed(&self, tenant: &TenantId) {
        self.gateway.per_tenant().forget(tenant);
    }

    fn check_server(
        &self,
        tenant: &TenantId,
        name: &str,
        raw: RawUpstream,
        by_platform: bool,
    ) -> Result<(), UpstreamDefError> {
        tenant_servers::check(&self.gateway, &self.rules, tenant, name, raw, by_platform).map(drop)
    }

    fn probe_server<'a>(
        &'a self,
        tenant: &'a TenantId,
        user: Option<&'a UserId>,
        name: &'a str,
        raw: RawUpstream,
        by_platform: bool,
    ) -> BoxFuture<'a, Result<ProbeView, ProbeError>> {
        let trial = tenant_servers::Trial {
            gateway: &self.gateway,
            rules: &self.rules,
            secrets: &self.secrets,
        };
        Box::pin(tenant_servers::probe(
            trial,
            tenant,
            user,
            name,
            raw,
            by_platform,
        ))
    }

    fn max_servers_per_tenant(&self) -> usize {
        self.rules.max_per_tenant
    }

    fn servers(&self, tenant: &TenantId, principal: Option<&Principal>) -> Vec<ServerHealth> {
        let snapshot = self.tenancy.auth.snapshot();
        let policy = snapshot.tenant(tenant).map(|entry| entry.policy.clone());
        // A definition with placeholders shows the tenant's own connection, once it has one.
        let own = self.gateway.per_tenant().connections_of(tenant);
        let defined = self.gateway.per_tenant().owned_by(tenant);
        let catalog = self.gateway.upstreams().len();
        self.gateway
            .upstreams()
            .iter()
            .filter(|u| u.def().available_to(tenant))
            .chain(defined.iter().flat_map(|d| d.iter()))
            .filter_map(|u| {
                let status = own
                    .iter()
                    .find(|(c, user)| c.index() == u.index() && user.is_none())
                    .map_or_else(|| u.status(), |(c, _)| c.status());
                if let Some(principal) = principal {
                    let policy = policy.as_ref()?;
                    let may = |kind: ItemKind, name: &str| {
                        policy
                            .decide(
                                principal,
                                Item {
                                    kind,
                                    server: u.name(),
                                    name,
                                    arguments: None,
                                },
                            )
                            .allowed
                    };
                    let lists = &status.lists;
                    let usable = lists.tools.iter().any(|t| may(ItemKind::Tool, &t.name))
                        || lists.prompts.iter().any(|p| may(ItemKind::Prompt, &p.name))
                        || lists
                            .resources
                            .iter()
                            .any(|r| may(ItemKind::Resource, &r.uri));
                    if !usable {
                        return None;
                    }
                }
                let (state, reason) = match &status.health {
                    Health::Starting => ("starting", None),
                    Health::Ready => ("ready", None),
                    Health::Idle => ("idle", None),
                    Health::Down { reason } => ("down", Some(reason.clone())),
                    Health::Stopped => ("stopped", None),
                    Health::PerTenant => ("per-tenant", None),
                };
                Some(ServerHealth {
                    name: u.name().to_owned(),
                    owner: if u.index() < catalog {
                        "catalog"
                    } else {
                        "tenant"
                    }
                    .to_owned(),
                    transport: u.def().transport.kind().to_owned(),
                    status: state.to_owned(),
                    reason,
                    tools: status.lists.tools.len(),
                    prompts: status.lists.prompts.len(),
                    resources: status.lists.resources.len(),
                    server_info: status
                        .server_info
                        .as_ref()
                        .map(|i| format!("{} {}", i.name, i.version)),
                    protocol_version: status.protocol_version.clone(),
                })
            })
            .collect()
    }
}

/// The admin API's state, or `None` when `[admin] enabled = false`. Without an operator
/// token and without any usable platform token, creates one and prints it once.
pub async fn state(
    config: &Config,
    tenancy: &Arc<Tenancy>,
    audit: Option<Arc<AuditLog>>,
    meter: Option<Arc<Meter>>,
    vault: Arc<Vault>,
    gateway: Arc<Gateway>,
    sessions: Sessions,
) -> anyhow::Result<Option<AdminState>> {
    if !config.admin.enabled {
        return Ok(None);
    }
    let hashing = tenancy.auth.hashing();
    let bootstrap = match &config.admin.token {
        Some(token) => Some(BootstrapToken::new(token, hashing).map_err(anyhow::Error::msg)?),
        None => {
            first_start_token(&tenancy.store, hashing).await?;
            None
        }
    };
    let hooks = Arc::new(GatewayHooks {
        tenancy: tenancy.clone(),
        gateway,
        sessions,
        audit,
        meter,
        rules: config.tenant_servers.clone(),
        secrets: VaultSource(vault.clone()),
    });
    Ok(Some(AdminState::new(
        tenancy.store.clone(),
        tenancy.auth.clone(),
        vault,
        bootstrap,
        hooks,
        config.public_url(),
    )))
}

async fn first_start_token(store: &Store, hashing: &HashingKey) -> anyhow::Result<()> {
    let tokens = store
        .admin_tokens()
        .await
        .context("cannot read the platform admin tokens")?;
    if tokens.iter().any(|t| t.revoked_at.is_none()) {
        return Ok(());
    }
    let token = create(store, hashing, "bootstrap").await?;
    // Printed, not logged: log pipelines keep what they see.
    eprintln!(
        "\nPlatform admin token (shown once — store it now):\n\n    {}\n\n\
         Use it with `switchboard admin` as SWITCHBOARD_ADMIN_TOKEN, or as `Authorization: Bearer` \
         on /admin/v1. Lost it? `switchboard admin platform-token create --config FILE`.\n",
        token.expose_secret()
    );
    Ok(())
}

async fn create(store: &Store, hashing: &HashingKey, name: &str) -> anyhow::Result<SecretString> {
    let new = api_key::generate_with(ADMIN_PREFIX, hashing);
    store
        .create_admin_token(&new.id, name, &new.hash)
        .await
        .context("cannot store the platform admin token")?;
    Ok(new.text)
}

/// `switchboard admin platform-token create`: prints a new token on stdout.
pub async fn create_token(config: &Config, name: &str) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let token = create(&store, &hashing_key(config)?, name).await?;
    println!("{}", token.expose_secret());
    Ok(())
}

/// `switchboard admin platform-token list`.
pub async fn list_tokens(config: &Config) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    println!("{:<14} {:<20} {:<12} status", "id", "name", "created");
    for t in store.admin_tokens().await? {
        let status = t
            .revoked_at
            .map_or("active".to_owned(), |at| format!("revoked at {at}"));
        println!("{:<14} {:<20} {:<12} {status}", t.id, t.name, t.created_at);
    }
    Ok(())
}

/// `switchboard admin platform-token revoke ID`.
pub async fn revoke_token(config: &Config, id: &str) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    store
        .revoke_admin_token(id)
        .await
        .with_context(|| format!("cannot revoke platform admin token {id:?}"))?;
    println!("revoked {id}");
    Ok(())
}
