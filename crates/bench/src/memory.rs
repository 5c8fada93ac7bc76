//! Gateway memory: a fresh gateway's idle RSS/PSS, and what idle legacy sessions cost
//! (sessions opened with `initialize` and then left alone, as idle clients do): just
//! opened, and once the gateway has parked them (`server.session_park_after_ms`, 10 s by
//! default).

use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;

use crate::gateways::Gateway;
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
    /// The same sessions once parked.
    pub parked_rss_kib: u64,
    pub parked_pss_kib: u64,
    pub rss_per_1000_parked_kib: f64,
    pub pss_per_1000_parked_kib: f64,
}

/// How long the probe leaves the sessions alone before the parked reading: the gateway's
/// default `session_park_after_ms` (10 s) plus its sweeper's interval (2.5 s) and margin.
const UNTIL_PARKED: Duration = Duration::from_secs(14);

impl SessionMemory {
    pub fn print(&self, what: &str) {
        println!(
            "{what}: idle RSS {} KiB, PSS {} KiB; {} idle legacy sessions: +{:.0} KiB RSS, +{:.0} KiB PSS per 1,000 just opened, +{:.0} KiB RSS, +{:.0} KiB PSS per 1,000 parked",
            self.idle_rss_kib,
            self.idle_pss_kib,
            self.sessions,
            self.rss_per_1000_sessions_kib,
            self.pss_per_1000_sessions_kib,
            self.rss_per_1000_parked_kib,
            self.pss_per_1000_parked_kib
        );
    }
}

/// Opens `sessions` legacy sessions on a fresh gateway in front of `upstream` and measures
/// it before and after.
pub async fn idle_sessions(
    switchboard: &str,
    upstream: &str,
    sessions: usize,
) -> anyhow::Result<SessionMemory> {
    let gateway = crate::gateway(switchboard, "demo", upstream, crate::Mode::Open).await?;
    let endpoint = Endpoint::open(gateway.url.clone());
    spread_sessions(&gateway, std::slice::from_ref(&endpoint), sessions).await
}

/// Opens `per_endpoint` legacy sessions on each of `endpoints` (all served by `gateway`, which
/// nothing else uses yet) and measures the gateway before and after; closes them at the end.
pub async fn spread_sessions(
    gateway: &Gateway,
    endpoints: &[Endpoint],
    per_endpoint: usize,
) -> anyhow::Result<SessionMemory> {
    // Let start-up allocations settle before the baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let read = || {
        gateway
            .proc
            .memory_kib()
            .ok_or_else(|| anyhow::anyhow!("cannot read the gateway's memory (/proc)"))
    };
    let (idle_rss_kib, idle_pss_kib) = read()?;
    let http = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let wanted = endpoints
        .iter()
        .flat_map(|e| std::iter::repeat_n(e, per_endpoint));
    // A few handshakes at a time: opening 10,000 sessions one by one takes long, all at once
    // measures a burst rather than idle sessions.
    let open: Vec<McpClient> = futures::stream::iter(wanted)
        .map(|endpoint| McpClient::connect(http.clone(), endpoint, Era::Legacy))
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let sessions = open.len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_kib, pss_kib) = read()?;
    tokio::time::sleep(UNTIL_PARKED).await;
    let (parked_rss_kib, parked_pss_kib) = read()?;
    crate::mcp::close_all(open).await;
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
        parked_rss_kib,
        parked_pss_kib,
        rss_per_1000_parked_kib: per(parked_rss_kib, idle_rss_kib),
        pss_per_1000_parked_kib: per(parked_pss_kib, idle_pss_kib),
    })
}
