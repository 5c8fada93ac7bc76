//! The gateways a benchmark run starts: open, with the benchmark tenant's credentials, or
//! with governance on; in front of one upstream or several copies of one.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::bail;

use crate::auth;
use crate::mcp::Endpoint;
use crate::procs::{Proc, free_port, start};

/// What a benchmark gateway enforces.
pub enum Mode {
    /// No tenants: open mode.
    Open,
    /// The benchmark tenant (enterprise plan: no rate limits), credentials required; the
    /// audit log on (the default) or off.
    Auth { audit: bool },
    /// As `Auth` with the audit log and usage metering, plus every rate limit (address,
    /// tenant, user, key, tool) and the tenant's and key's call quotas, set so high that they
    /// never refuse: governance's cost, limits in-process or on Redis.
    Governed { redis_url: Option<String> },
    /// `count` tenants (`t0001`, …), each with a member and an API key, audit and metering
    /// on as in `Auth`; room for ten idle sessions per tenant.
    Tenants { count: usize },
}

/// A gateway in front of `upstream_url`; with `auth`, on a database provisioned with the
/// benchmark tenant (returns its API key and a token in `Auth`).
pub struct Gateway {
    pub proc: Proc,
    pub url: String,
    pub auth: Option<Auth>,
    /// With `Mode::Tenants`: each tenant's MCP endpoint with its API key.
    pub tenants: Vec<Endpoint>,
}

pub struct Auth {
    pub api_key: String,
    pub token: String,
}

/// Extra environment of every gateway process (`--gateway-env`), e.g. to measure a runtime
/// setting on the gateway alone.
pub static GATEWAY_ENV: OnceLock<Vec<(String, String)>> = OnceLock::new();

fn bench_dir(port: u16) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("switchboard-bench-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

pub async fn gateway(
    switchboard: &str,
    name: &str,
    upstream_url: &str,
    mode: Mode,
) -> anyhow::Result<Gateway> {
    let upstream = format!("transport = \"streamable-http\"\nurl = \"{upstream_url}\"\n");
    gateway_with(switchboard, name, &upstream, mode, 1).await
}

/// Like [`gateway`], with `copies` upstreams (`{name}1`…), each defined by `upstream` (the
/// TOML lines of `[upstreams.x]`).
pub async fn gateway_with(
    switchboard: &str,
    name: &str,
    upstream: &str,
    mode: Mode,
    copies: usize,
) -> anyhow::Result<Gateway> {
    let port = free_port()?;
    let dir = bench_dir(port)?;
    let config = dir.join("gateway.toml");
    let limits = match &mode {
        // Governance off: no audit log, no metering (and no limits: the tenant's plan has none).
        Mode::Auth { audit: false } => {
            "[audit]\nenabled = false\n[usage]\nenabled = false\n".to_owned()
        }
        Mode::Governed { redis_url } => {
            let high = "\"1000000/s\"";
            let redis = redis_url.as_ref().map_or(String::new(), |url| {
                format!(
                    "redis_url = {url:?}\nredis_prefix = \"sbbench:{}:{port}:\"\n",
                    std::process::id()
                )
            });
            format!(
                "[limits]\naddress = {high}\n{redis}[limits.plans.enterprise]\ntenant = {high}\nuser = {high}\nkey = {high}\naddress = {high}\ntool = {high}\n"
            )
        }
        _ => String::new(),
    };
    let server = match &mode {
        Mode::Tenants { count } => format!("max_sessions = {}\n", count * 10 + 1_000),
        _ => String::new(),
    };
    let upstreams: String = (1..=copies)
        .map(|i| {
            let id = if copies == 1 {
                name.to_owned()
            } else {
                format!("{name}{i}")
            };
            format!("[upstreams.{id}]\n{upstream}")
        })
        .collect();
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nstartup_wait_ms = 20000\ndata_dir = {:?}\n{server}\n{limits}{upstreams}",
            dir.display().to_string()
        ),
    )?;
    let database_url = format!("sqlite://{}", dir.join("switchboard.db").display());
    let (api_key, tenant_keys) = match &mode {
        Mode::Open => (None, Vec::new()),
        Mode::Tenants { count } => (None, auth::provision_many(&database_url, *count).await?),
        Mode::Auth { .. } | Mode::Governed { .. } => (
            Some(auth::provision(&database_url, matches!(mode, Mode::Governed { .. })).await?),
            Vec::new(),
        ),
    };
    let mut env = vec![
        ("SWITCHBOARD_LOG", "warn".to_owned()),
        (
            "SWITCHBOARD_AUTH__KEY_HASHING_SECRET",
            auth::HASHING_SECRET.to_owned(),
        ),
    ];
    env.extend(
        GATEWAY_ENV
            .get()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.clone())),
    );
    let proc = start(
        "switchboard",
        switchboard,
        &[
            "serve".into(),
            "--config".into(),
            config.display().to_string(),
        ],
        &env,
        port,
    )
    .await?;
    let public_url = format!("http://127.0.0.1:{port}");
    let (url, auth) = match api_key {
        Some(api_key) => (
            format!("{public_url}/t/{}/mcp", auth::TENANT),
            Some(Auth {
                token: auth::issue_token(switchboard, &database_url, &dir, &public_url)?,
                api_key,
            }),
        ),
        None => (format!("{public_url}/mcp"), None),
    };
    let tenants = tenant_keys
        .into_iter()
        .map(|(tenant, key)| Endpoint {
            url: format!("{public_url}/t/{tenant}/mcp"),
            bearer: Some(key),
            stdio: None,
        })
        .collect();
    // Wait until the upstream is listed.
    let ready = format!("http://127.0.0.1:{port}/readyz");
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(&ready).await
            && let Ok(v) = r.json::<serde_json::Value>().await
            && v["upstreams"][0]["health"]["state"] == "ready"
        {
            return Ok(Gateway {
                proc,
                url,
                auth,
                tenants,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the gateway's upstream never became ready")
}
