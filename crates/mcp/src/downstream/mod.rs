//! Client-facing MCP transports.
//!
//! * [`streamable`] — Streamable HTTP at `/mcp`, both protocol eras, served by rmcp's
//!   `StreamableHttpService` with Switchboard's limits;
//! * [`sse`] — the deprecated HTTP+SSE transport (`GET /sse` + `POST /messages`), written
//!   here because rmcp no longer ships it.

pub mod sse;
pub mod streamable;
