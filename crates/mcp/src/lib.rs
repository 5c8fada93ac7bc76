//! The MCP data plane of Switchboard.
//!
//! * [`upstream`] — supervised connections to upstream MCP servers (stdio, Streamable HTTP,
//!   legacy SSE) and their cached lists;
//! * [`catalog`] — the merged, namespaced view of all upstreams and where each name routes;
//! * [`hub`] — the registry of downstream clients that upstream events are routed to;
//! * [`gateway`] — owns upstreams, catalog and hub;
//! * [`handler`] — the MCP server handler that serves clients from the catalog;
//! * [`session`], [`mrtr`], [`bridge`] — server-to-client requests across sessions and eras;
//! * [`downstream`] — the client-facing HTTP transports (Streamable HTTP, legacy SSE).
//!
//! This crate does no configuration parsing and owns no listener: `switchboard-server` wires it.

// Sampling, roots and logging are deprecated by SEP-2577 but still part of the protocol that
// real clients speak; a gateway must carry them.
#![allow(deprecated)]

pub mod bridge;
pub mod caller;
pub mod catalog;
pub mod downstream;
pub mod error;
pub mod gateway;
pub mod handler;
pub mod hub;
pub mod mrtr;
pub mod per_tenant;
pub mod session;
pub mod span;
pub mod upstream;

pub use caller::{
    CallGate, CallRecord, Caller, ClientFacts, DecisionRecord, DecisionSink, LogDecisions,
    arguments_digest,
};
pub use gateway::{Gateway, GatewayConfig};
pub use handler::GatewayHandler;

/// Installs the process-wide TLS crypto provider (ring) once. HTTP clients of upstreams need
/// it; the binary and tests get it through [`Gateway::start`] without doing anything.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
