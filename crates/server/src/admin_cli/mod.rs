//! `switchboard admin …`: the admin API from the command line. Every command is one or a
//! few HTTP requests to `/admin/v1` (so it works against any replica, locally or remotely,
//! with the same authorization as the API), printed as a table or as JSON. Lists follow
//! their cursors to the end. `platform-token` works on the database instead, for when no
//! admin token is at hand.

mod client;
mod commands;
mod output;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};

use crate::token_cli::parse_ttl;
use client::Api;
pub use commands::*;
use output::{print, print_usage};

/// A secret's value from a file or standard input, without its final newline.
fn read_value(file: Option<&std::path::Path>) -> anyhow::Result<zeroize::Zeroizing<String>> {
    use std::io::Read;
    let mut text = zeroize::Zeroizing::new(String::new());
    match file {
        Some(path) => {
            *text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
        }
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprintln!("value (end with Ctrl-D):");
            }
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the value from standard input")?;
        }
    }
    let trimmed = text.trim_end_matches(['\n', '\r']).len();
    text.truncate(trimmed);
    if text.is_empty() {
        bail!("the secret value is empty");
    }
    Ok(text)
}

/// The admin API's server definition from the command's flags.
fn spec(def: ServerDef) -> anyhow::Result<Value> {
    let mut headers = serde_json::Map::new();
    for header in &def.headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("--header {header:?} must be `Name: value`"))?;
        headers.insert(name.trim().to_owned(), json!(value.trim()));
    }
    let mut body = json!({
        "transport": def.transport,
        "url": def.endpoint,
        "headers": headers,
        "description": def.description,
    });
    if let Some(prefix) = def.prefix {
        body["prefix"] = json!(prefix);
    }
    Ok(body)
}

fn parse_json(flag: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("--{flag} is not valid JSON"))
}

/// Runs `switchboard admin …` (except `platform-token`, which main runs on the database).
pub async fn run(connection: &Connection, command: AdminCommand) -> anyhow::Result<()> {
    let api = Api::new(connection)?;
    let (post, patch, put, delete) = (Method::POST, Method::PATCH, Method::PUT, Method::DELETE);
    let answer = match command {
        AdminCommand::Me => api.send(Method::GET, &["me"], None).await?,
        AdminCommand::Tenants(cmd) => match cmd {
            TenantCmd::List {
                status,
                plan,
                domain,
            } => {
                let query = [
                    ("status", status.as_ref()),
                    ("plan", plan.as_ref()),
                    ("domain", domain.as_ref()),
                ];
                api.list(&["tenants"], &query).await?
            }
            TenantCmd::Get { id } => api.send(Method::GET, &["tenants", &id], None).await?,
            TenantCmd::Create {
                id,
                name,
                plan,
                owner,
                domains,
                settings,
            } => {
                let mut body = json!({ "id": id, "name": name, "domains": domains });
                if let Some(plan) = plan {
                    body["plan"] = json!(plan);
                }
                if let Some(owner) = owner {
                    body["owner"] = json!(owner);
                }
                if let Some(s) = settings {
                    body["settings"] = parse_json("settings", &s)?;
                }
                api.send(post, &["tenants"], Some(body)).await?
            }
            TenantCmd::Update {
                id,
                name,
                plan,
                status,
                domains,
                settings,
            } => {
                let mut body = json!({});
                if let Some(v) = name {
                    body["name"] = json!(v);
                }
                if let Some(v) = plan {
                    body["plan"] = json!(v);
                }
                if let Some(v) = status {
                    body["status"] = json!(v);
                }
                if let Some(v) = domains {
                    body["domains"] = json!(v);
                }
                if let Some(s) = settings {
                    body["settings"] = parse_json("settings", &s)?;
                }
                api.send(patch, &["tenants", &id], Some(body)).await?
            }
            TenantCmd::Delete { id } => api.send(delete, &["tenants", &id], None).await?,
            TenantCmd::Suspend { id } => api.send(post, &["tenants", &id, "suspend"], None).await?,
            TenantCmd::Resume { id } => api.send(post, &["tenants", &id, "resume"], None).await?,
        },
        AdminCommand::Members(cmd) => match cmd {
            MemberCmd::List { tenant } => api.list(&["tenants", &tenant, "members"], &[]).await?,
            MemberCmd::Add {
                tenant,
                email,
                role,
            } => {
                let body = json!({ "user": email, "role": role });
                api.send(post, &["tenants", &tenant, "members"], Some(body))
                    .await?
            }
            MemberCmd::SetRole {
                tenant,
                email,
                role,
            } => {
                let body = json!({ "role": role });
                api.send(patch, &["tenants", &tenant, "members", &email], Some(body))
                    .await?
            }
            MemberCmd::Remove { tenant, email } => {
                api.send(delete, &["tenants", &tenant, "members", &email], None)
                    .await?
            }
        },
        AdminCommand::Groups(cmd) => match cmd {
            GroupCmd::List { tenant } => api.list(&["tenants", &tenant, "groups"], &[]).await?,
            GroupCmd::Create {
                tenant,
                name,
                description,
                members,
            } => {
                let body = json!({ "name": name, "description": description, "members": members });
                api.send(post, &["tenants", &tenant, "groups"], Some(body))
                    .await?
            }
            GroupCmd::Delete { tenant, name } => {
                api.send(delete, &["tenants", &tenant, "groups", &name], None)
                    .await?
            }
            GroupCmd::AddMember {
                tenant,
                group,
                email,
            } => {
                api.send(
                    put,
                    &["tenants", &tenant, "groups", &group, "members", &email],
                    None,
                )
                .await?
            }
            GroupCmd::RemoveMember {
                tenant,
                group,
                email,
            } => {
                api.send(
                    delete,
                    &["tenants", &tenant, "groups", &group, "members", &email],
                    None,
                )
                .await?
            }
        },
        AdminCommand::Roles(cmd) => match cmd {
            RoleCmd::List { tenant } => api.list(&["tenants", &tenant, "roles"], &[]).await?,
            RoleCmd::Put {
                tenant,
                name,
                permissions,
                description,
            } => {
                let body = json!({ "description": description, "permissions": parse_json("permissions", &permissions)? });
                api.send(put, &["tenants", &tenant, "roles", &name], Some(body))
                    .await?
            }
            RoleCmd::Delete { tenant, name } => {
                api.send(delete, &["tenants", &tenant, "roles", &name], None)
                    .await?
            }
        },
        AdminCommand::Grants(cmd) => match cmd {
            GrantCmd::List { tenant } => api.list(&["tenants", &tenant, "grants"], &[]).await?,
            GrantCmd::Add {
                tenant,
                to,
                target,
                deny,
            } => {
                let (kind, id) = to
                    .split_once(':')
                    .context("--to must be user:EMAIL, group:NAME, role:ROLE or client:ID")?;
                let effect = if deny { "deny" } else { "allow" };
                let body = json!({ "grantee": { "type": kind, "id": id }, "target": target, "effect": effect });
                api.send(post, &["tenants", &tenant, "grants"], Some(body))
                    .await?
            }
            GrantCmd::Remove { tenant, id } => {
                api.send(delete, &["tenants", &tenant, "grants", &id], None)
                    .await?
            }
        },
        AdminCommand::ApiKeys(cmd) => {
            match cmd {
                KeyCmd::List { tenant } => api.list(&["tenants", &tenant, "api-keys"], &[]).await?,
                KeyCmd::Create {
                    tenant,
                    name,
                    user,
                    client,
                    restrictions,
                    ttl,
                    calls_per_day,
                    calls_per_month,
                    allow_ips,
                } => {
                    let mut body = json!({ "name": name, "restrictions": restrictions, "ipAllowlist": allow_ips });
                    if calls_per_day.is_some() || calls_per_month.is_some() {
                        body["quotas"] = json!({ "callsPerDay": calls_per_day, "callsPerMonth": calls_per_month });
                    }
                    if let Some(user) = user {
                        body["owner"] = json!({ "type": "user", "id": user });
                    }
                    if let Some(client) = client {
                        body["owner"] = json!({ "type": "client", "id": client });
                    }
                    if let Some(ttl) = ttl {
                        let expires =
                            switchboard_auth::issuer::now() + parse_ttl(&ttl)?.as_secs() as i64;
                        body["expiresAt"] = json!(expires);
                    }
                    api.send(post, &["tenants", &tenant, "api-keys"], Some(body))
                        .await?
                }
                KeyCmd::Revoke { tenant, id } => {
                    api.send(delete, &["tenants", &tenant, "api-keys", &id], None)
                        .await?
                }
            }
        }
        AdminCommand::Clients(cmd) => match cmd {
            ClientCmd::List { tenant } => api.list(&["tenants", &tenant, "clients"], &[]).await?,
            ClientCmd::Create {
                tenant,
                id,
                name,
                role,
            } => {
                let body = json!({ "id": id, "name": name, "role": role });
                api.send(post, &["tenants", &tenant, "clients"], Some(body))
                    .await?
            }
            ClientCmd::Disable { tenant, id } => {
                api.send(
                    patch,
                    &["tenants", &tenant, "clients", &id],
                    Some(json!({ "disabled": true })),
                )
                .await?
            }
            ClientCmd::Enable { tenant, id } => {
                api.send(
                    patch,
                    &["tenants", &tenant, "clients", &id],
                    Some(json!({ "disabled": false })),
                )
                .await?
            }
        },
        AdminCommand::Secrets(cmd) => {
            let base = |owner: &SecretOwner| -> Vec<String> {
                match &owner.tenant {
                    Some(tenant) => vec!["tenants".into(), tenant.clone(), "secrets".into()],
                    None => vec!["me".into(), "secrets".into()],
                }
            };
            match cmd {
                SecretCmd::List { owner } => {
                    let path = base(&owner);
                    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
                    api.list(&segments, &[]).await?
                }
                SecretCmd::Set {
                    owner,
                    name,
                    description,
                    value_file,
                } => {
                    let value = read_value(value_file.as_deref())?;
                    let mut path = base(&owner);
                    path.push(name);
                    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
                    let body = json!({ "value": value.as_str(), "description": description });
                    api.send(put, &segments, Some(body)).await?
                }
                SecretCmd::Delete { owner, name } => {
                    let mut path = base(&owner);
                    path.push(name);
                    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
                    api.send(delete, &segments, None).await?
                }
            }
        }
        AdminCommand::Servers(cmd) => match cmd {
            ServerCmd::List { tenant } => api.list(&["tenants", &tenant, "servers"], &[]).await?,
            ServerCmd::Get { tenant, name } => {
                api.send(Method::GET, &["tenants", &tenant, "servers", &name], None)
                    .await?
            }
            ServerCmd::Put { tenant, name, def } => {
                api.send(
                    put,
                    &["tenants", &tenant, "servers", &name],
                    Some(spec(def)?),
                )
                .await?
            }
            ServerCmd::Validate { tenant, name, def } => {
                let body = json!({ "name": name, "definition": spec(def)? });
                api.send(
                    post,
                    &["tenants", &tenant, "servers", "validate"],
                    Some(body),
                )
                .await?
            }
            ServerCmd::Delete { tenant, name } => {
                api.send(delete, &["tenants", &tenant, "servers", &name], None)
                    .await?
            }
        },
        AdminCommand::Usage {
            tenant,
            from,
            to,
            group_by,
            csv,
        } => {
            let mut url = api.url(&["tenants", &tenant, "usage"])?;
            {
                let mut pairs = url.query_pairs_mut();
                for (key, value) in [("from", &from), ("to", &to), ("group_by", &group_by)] {
                    if let Some(value) = value {
                        pairs.append_pair(key, value);
                    }
                }
                if csv {
                    pairs.append_pair("format", "csv");
                }
            }
            if csv {
                print!("{}", api.text(url).await?);
                return Ok(());
            }
            let report = api.call(Method::GET, url, None).await?;
            if connection.output == Output::Json {
                report
            } else {
                print_usage(&report);
                return Ok(());
            }
        }
        AdminCommand::PlatformToken(_) => bail!("platform-token runs on the database; see main"),
    };
    print(&answer, connection.output);
    Ok(())
}
