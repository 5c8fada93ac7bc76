//! `switchboard admin …`: the admin API from the command line. Every command is one or a
//! few HTTP requests to `/admin/v1` (so it works against any replica, locally or remotely,
//! with the same authorization as the API), printed as a table or as JSON. Lists follow
//! their cursors to the end. `platform-token` works on the database instead, for when no
//! admin token is at hand.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use reqwest::{Method, Url};
use serde_json::{Value, json};

use crate::token_cli::parse_ttl;

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

/// One admin API client.
struct Api {
    http: reqwest::Client,
    base: Url,
    token: String,
}

impl Api {
    fn new(connection: &Connection) -> anyhow::Result<Self> {
        let token = connection.token.clone().context(
            "no credential: set SWITCHBOARD_ADMIN_TOKEN or pass --token (a platform admin token, or a tenant admin's API key)",
        )?;
        let base = Url::parse(&connection.url)
            .with_context(|| format!("--url {:?} is not a URL", connection.url))?;
        Ok(Self {
            http: reqwest::Client::new(),
            base,
            token,
        })
    }

    /// `/admin/v1/<segments…>`, each segment escaped.
    fn url(&self, segments: &[&str]) -> anyhow::Result<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("--url cannot be a base URL"))?
            .pop_if_empty()
            .extend(["admin", "v1"])
            .extend(segments);
        Ok(url)
    }

    async fn call(&self, method: Method, url: Url, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, url.clone())
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| {
                    let e = v.get("error")?;
                    let message = e.get("message")?.as_str()?.to_owned();
                    Some(match e.get("field").and_then(Value::as_str) {
                        Some(field) => format!("{message} (field {field})"),
                        None => message,
                    })
                })
                .unwrap_or(text);
            bail!(
                "{} {}: {message}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).context("the answer is not JSON")
    }

    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        self.call(method, self.url(segments)?, body).await
    }

    /// Every page of a list.
    async fn list(
        &self,
        segments: &[&str],
        query: &[(&str, Option<&String>)],
    ) -> anyhow::Result<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = self.url(segments)?;
            {
                let mut pairs = url.query_pairs_mut();
                for (key, value) in query {
                    if let Some(value) = value {
                        pairs.append_pair(key, value);
                    }
                }
                if let Some(cursor) = &cursor {
                    pairs.append_pair("cursor", cursor);
                }
            }
            let page = self.call(Method::GET, url, None).await?;
            if let Some(page_items) = page.get("items").and_then(Value::as_array) {
                items.extend(page_items.iter().cloned());
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        Ok(json!({ "items": items }))
    }
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
        AdminCommand::ApiKeys(cmd) => match cmd {
            KeyCmd::List { tenant } => api.list(&["tenants", &tenant, "api-keys"], &[]).await?,
            KeyCmd::Create {
                tenant,
                name,
                user,
                client,
                restrictions,
                ttl,
            } => {
                let mut body = json!({ "name": name, "restrictions": restrictions });
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
        },
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
        AdminCommand::PlatformToken(_) => bail!("platform-token runs on the database; see main"),
    };
    print(&answer, connection.output);
    Ok(())
}

fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(map)
            if map.len() == 2 && map.contains_key("type") && map.contains_key("id") =>
        {
            format!("{}:{}", cell(&map["type"]), cell(&map["id"]))
        }
        other => other.to_string(),
    };
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(59).collect::<String>())
    } else {
        text
    }
}

const COLUMN_ORDER: &[&str] = &[
    "id",
    "user",
    "name",
    "role",
    "status",
    "plan",
    "owner",
    "grantee",
    "effect",
    "target",
    "disabled",
    "expiresAt",
    "revokedAt",
    "createdAt",
    "version",
    "domains",
    "members",
    "restrictions",
    "description",
    "permissions",
    "settings",
];

fn table(items: &[Value]) -> String {
    let Some(Value::Object(first)) = items.first() else {
        return "(none)\n".to_owned();
    };
    let mut columns: Vec<&String> = first.keys().collect();
    // The identifying columns first, the long ones last (JSON objects come sorted by key).
    let place = |c: &str| {
        COLUMN_ORDER
            .iter()
            .position(|x| *x == c)
            .unwrap_or(COLUMN_ORDER.len())
    };
    columns.sort_by_key(|c| place(c));
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|c| cell(item.get(c.as_str()).unwrap_or(&Value::Null)))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
            + "\n"
    };
    let mut out = line(columns.iter().map(|c| c.to_string()).collect());
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

fn print(answer: &Value, output: Output) {
    if output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(answer).unwrap_or_default()
        );
        return;
    }
    match answer {
        Value::Null => println!("done"),
        Value::Object(map) if map.contains_key("items") => {
            let items = map["items"].as_array().cloned().unwrap_or_default();
            print!("{}", table(&items));
        }
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::Object(inner) if key != "settings" => {
                        for (k, v) in inner {
                            println!("{key}.{k}: {}", cell(v));
                        }
                    }
                    _ => println!(
                        "{key}: {}",
                        if key == "secret" {
                            value.as_str().unwrap_or("").to_owned()
                        } else {
                            cell(value)
                        }
                    ),
                }
            }
            if map.contains_key("secret") {
                eprintln!("\nThe secret is shown this once: store it now.");
            }
        }
        other => println!("{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_flatten_subjects() {
        let items = vec![
            json!({"id": "k1", "owner": {"type": "user", "id": "ada@acme.com"}, "expiresAt": null}),
            json!({"id": "key-two", "owner": {"type": "client", "id": "ci"}, "expiresAt": 5}),
        ];
        let text = table(&items);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].contains("user:ada@acme.com") && lines[1].contains('-'));
        assert!(lines[2].starts_with("key-two"));
        assert_eq!(table(&[]), "(none)\n");
    }
}
