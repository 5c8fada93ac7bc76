//! `switchboard connect URL`: a stdio bridge for clients that only start local processes
//! (e.g. Claude Desktop's config file).
//!
//! It is the gateway itself with one unprefixed Streamable HTTP upstream — the remote
//! Switchboard — served over this process's stdin/stdout. Names pass through unchanged, and
//! the bearer token goes only to the remote gateway.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use rmcp::ServiceExt;
use switchboard_domain::{RawUpstream, UpstreamDef};
use switchboard_mcp::{Gateway, GatewayConfig};

/// Runs the bridge until stdin closes.
pub async fn run(url: String, token: Option<String>, headers: Vec<String>) -> anyhow::Result<()> {
    let mut header_map = BTreeMap::new();
    if let Some(token) = token {
        header_map.insert("Authorization".to_owned(), format!("Bearer {token}"));
    }
    for header in headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("--header {header:?} must look like 'Name: value'"))?;
        header_map.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    let raw = RawUpstream {
        transport: Some("streamable-http".into()),
        url: Some(url),
        headers: header_map,
        prefix: Some(String::new()),
        ..RawUpstream::default()
    };
    let def = UpstreamDef::from_raw("remote", raw).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let gateway = Gateway::start(vec![def], GatewayConfig::default());
    gateway.wait_started(Duration::from_secs(15)).await;
    // The bridge serves one local client: it acts as the owner of the built-in tenant and the
    // remote gateway authenticates it with the token.
    let running = gateway
        .handler_for(std::sync::Arc::new(switchboard_mcp::Caller::open()))
        .serve(rmcp::transport::stdio())
        .await
        .context("the stdio client did not complete the MCP handshake")?;
    let _ = running.waiting().await;
    gateway.shutdown().await;
    Ok(())
}
