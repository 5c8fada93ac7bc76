//! The pure domain of Switchboard.
//!
//! Everything here is plain data and pure functions: how upstream servers are described, how
//! their tools, prompts and resources are named towards clients, and how list cursors are
//! encoded, the tenancy model with its policy decision, rate-limit arithmetic, and usage counters with quota periods, and the placeholders that put secrets into upstream definitions. No I/O, no async runtime, no protocol library: the adapters (`switchboard-mcp`,
//! `switchboard-server`) depend on this crate, never the other way round.

pub mod audit;
pub mod cursor;
pub mod limits;
pub mod names;
pub mod network;
pub mod rewrite;
pub mod template;
pub mod tenancy;
pub mod upstream;
pub mod usage;

pub use cursor::{Cursor, CursorError, ListKind};
pub use names::{NameError, ServerName, exposed_name, exposed_uri, split_exposed_uri};
pub use upstream::{
    IdentityKey, Isolation, Network, ProcessLimits, RawUpstream, TenantServerRules, Timeouts,
    UpstreamDef, UpstreamDefError, UpstreamTransport,
};
