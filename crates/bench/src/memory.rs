//! Gateway memory: a fresh gateway's idle RSS/PSS, and what idle legacy sessions cost
//! (sessions opened with `initialize` and then left alone, as idle clients do).

use std::time::Duration;

use serde::Serialize;

use crate::mcp::{Endpoint, Era, McpClient};

/// Memory of one gateway before and after opening idle sessions.
#[derive(Debug, Serialize)]
pub struct SessionMemory {
    pub idle_rss_kib: u64,
    pub idle_pss_kib: u64,
    pub sessions: usize,
    pub rss_kib: u64,
    pub pss_kib: u64,
    pub rss_per_1000_sessions_kib: f64,
    pub pss_per_1000_sessions_kib: f64,
}

/// Opens `sessions` legacy sessions on `gateway` (a fresh gateway in front of `upstream`)
/// and measures it before and after.
pub async fn idle_sessions(
    switchboard: &str,
    upstream: &str,
    sessions: usize,
) -> anyhow::Result<SessionMemory> {
    let gateway = crate::gateway(switchboard, "demo", upstream, crate::Mode::Open).await?;
    // Let start-up allocations settle before the baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle_rss_kib, idle_pss_kib) = gateway
        .proc
        .memory_kib()
        .ok_or_else(|| anyhow::anyhow!("cannot read the gateway's memory (/proc)"))?;
    let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let endpoint = Endpoint::open(gateway.url.clone());
    let mut open = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        open.push(McpClient::connect(http.clone(), &endpoint, Era::Legacy).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_kib, pss_kib) = gateway
        .proc
        .memory_kib()
        .ok_or_else(|| anyhow::anyhow!("cannot read the gateway's memory (/proc)"))?;
    drop(open);
    let per = |after: u64, before: u64| {
        after.saturating_sub(before) as f64 * 1000.0 / sessions.max(1) as f64
    };
    Ok(SessionMemory {
        idle_rss_kib,
        idle_pss_kib,
        sessions,
        rss_kib,
        pss_kib,
        rss_per_1000_sessions_kib: per(rss_kib, idle_rss_kib),
        pss_per_1000_sessions_kib: per(pss_kib, idle_pss_kib),
    })
}
