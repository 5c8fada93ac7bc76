//! Client-facing MCP transports.
//!
//! * [`streamable`] — Streamable HTTP at `/mcp`, both protocol eras, served by rmcp's
//!   `StreamableHttpService` with Switchboard's limits, except plain 2026-07-28 stateless
//!   requests, which [`direct`] serves without rmcp's per-request service loop;
//! * [`sse`] — the deprecated HTTP+SSE transport (`GET /sse` + `POST /messages`), written
//!   here because rmcp no longer ships it.

pub mod direct;
mod owners;
pub mod sessions;
pub mod sse;
pub mod streamable;

use switchboard_domain::tenancy::SessionOwner;

/// One open legacy session, as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session id (`Mcp-Session-Id`, or the SSE `sessionId`). Useless without the
    /// owner's credential: sessions are bound to who opened them.
    pub id: String,
    /// `streamable-http` or `sse`.
    pub transport: &'static str,
    pub owner: SessionOwner,
    /// Unix seconds.
    pub opened_at: i64,
}

pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
