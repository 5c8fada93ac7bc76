//! Servers tenants define for themselves, in this process: checking a definition against the
//! platform's rules (`[tenant_servers]`) and catalog, publishing every tenant's servers to
//! the data plane after each directory snapshot, and trying a definition for
//! `POST …/servers/validate`.

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::ExposeSecret;
use switchboard_admin::{ProbeError, ProbeTool, ProbeView};
use switchboard_domain::tenancy::{TenantId, UserId};
use switchboard_domain::{RawUpstream, TenantServerRules, UpstreamDef, UpstreamDefError};
use switchboard_mcp::Gateway;
use switchboard_mcp::per_tenant::{SecretLookupError, SecretSource};

use crate::config::TenantServersSection;
use crate::tenancy::{OwnServers, Tenancy};

/// Names a tenant's server may not take: routes of the admin API.
const RESERVED: &[&str] = &["validate"];

/// Checks `raw` as `tenant`'s server `name`: the domain's rules for tenant-defined servers
/// (a command only when a platform administrator wrote it), then no clash of its name or
/// prefix with a catalog server.
pub fn check(
    gateway: &Gateway,
    rules: &TenantServersSection,
    tenant: &TenantId,
    name: &str,
    raw: RawUpstream,
    by_platform: bool,
) -> Result<UpstreamDef, UpstreamDefError> {
    let err = |field: &'static str, message: String| UpstreamDefError {
        server: name.to_owned(),
        field,
        message,
    };
    if RESERVED.contains(&name) {
        return Err(err(
            "name",
            format!("{name:?} is reserved; choose another name"),
        ));
    }
    let def = UpstreamDef::for_tenant(
        tenant,
        name,
        raw,
        TenantServerRules {
            allow_private_networks: rules.allow_private_networks,
            allow_commands: by_platform,
        },
    )?;
    for catalog in gateway.upstreams() {
        let other = catalog.def();
        if !other.available_to(tenant) {
            continue;
        }
        if other.name == def.name {
            return Err(err(
                "name",
                format!(
                    "the platform's catalog already has a server {name:?}; choose another name"
                ),
            ));
        }
        if !def.prefix.is_empty() && other.prefix == def.prefix {
            return Err(err(
                "prefix",
                format!(
                    "prefix {:?} is the catalog server {:?}'s; choose another",
                    def.prefix,
                    other.name.as_str()
                ),
            ));
        }
    }
    let own = gateway.per_tenant().owned_by(tenant);
    for other in own.iter().flat_map(|o| o.iter()) {
        let other = other.def();
        if other.name != def.name && !def.prefix.is_empty() && other.prefix == def.prefix {
            return Err(err(
                "prefix",
                format!(
                    "prefix {:?} is the tenant's server {:?}'s; choose another",
                    def.prefix,
                    other.name.as_str()
                ),
            ));
        }
    }
    Ok(def)
}

/// Every tenant's servers as the data plane runs them; one that no longer passes the check
/// (the platform's rules or catalog changed) is left out and logged.
fn compile(
    gateway: &Gateway,
    rules: &TenantServersSection,
    servers: &OwnServers,
) -> HashMap<TenantId, Vec<UpstreamDef>> {
    let mut out = HashMap::with_capacity(servers.len());
    for (tenant, own) in servers {
        let defs: Vec<UpstreamDef> = own
            .iter()
            .filter_map(|server| {
                let raw = server.definition.clone();
                match check(gateway, rules, tenant, &server.name, raw, server.by_platform) {
                    Ok(def) => Some(def),
                    Err(err) => {
                        tracing::warn!(%tenant, server = %server.name, %err, "a tenant's server definition is refused and left out");
                        None
                    }
                }
            })
            .collect();
        out.insert(tenant.clone(), defs);
    }
    out
}

/// Publishes the tenants' servers to `gateway` now and after every directory reload.
pub fn follow(tenancy: &Tenancy, gateway: &Arc<Gateway>, rules: &TenantServersSection) {
    let gateway = gateway.clone();
    let rules = rules.clone();
    tenancy.on_servers(move |servers| {
        let defs = compile(&gateway, &rules, servers);
        gateway.per_tenant().set_owned(defs);
    });
}

/// What trying a definition needs: the gateway, the platform's rules and the secrets.
pub struct Trial<'a> {
    pub gateway: &'a Gateway,
    pub rules: &'a TenantServersSection,
    pub secrets: &'a dyn SecretSource,
}

/// Checks `raw`, fills its placeholders with `user`'s secrets (else the tenant's), connects
/// and lists its tools. Secret values are cut out of every error.
pub async fn probe(
    trial: Trial<'_>,
    tenant: &TenantId,
    user: Option<&UserId>,
    name: &str,
    raw: RawUpstream,
    by_platform: bool,
) -> Result<ProbeView, ProbeError> {
    let Trial {
        gateway,
        rules,
        secrets,
    } = trial;
    let def = check(gateway, rules, tenant, name, raw, by_platform)?;
    let resolved = secrets
        .resolve(tenant, user, &def.secrets)
        .await
        .map_err(|err| match err {
            SecretLookupError::Missing(name) => ProbeError::MissingSecret(name),
            SecretLookupError::Failed(reason) => ProbeError::Unreachable(reason),
        })?;
    let rendered = def.render(tenant, |name| {
        resolved.values.get(name).map(|v| v.expose_secret())
    });
    let redact = |mut text: String| {
        for value in resolved.values.values() {
            let value = value.expose_secret();
            if value.len() >= 4 {
                let encoded = switchboard_domain::template::url_encoded(value);
                text = text
                    .replace(value, "[redacted]")
                    .replace(&encoded, "[redacted]");
            }
        }
        text
    };
    let probe = gateway
        .per_tenant()
        .probe(tenant, rendered)
        .await
        .map_err(|reason| ProbeError::Unreachable(redact(reason)))?;
    Ok(ProbeView {
        tools: probe
            .tools
            .into_iter()
            .map(|t| ProbeTool {
                name: t.name.to_string(),
                description: t.description.map(|d| d.to_string()),
            })
            .collect(),
        server_info: probe.server_info,
        protocol_version: probe.protocol_version,
    })
}
