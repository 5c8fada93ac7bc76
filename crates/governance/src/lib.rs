//! Governance of the data plane: rate limits today; quotas, usage metering and the audit log
//! join this crate as they land.
//!
//! This crate is a service layer: it depends on the pure domain and on its stores (Redis),
//! never on HTTP or MCP. The server's adapters ask it for decisions and turn them into
//! responses.

pub mod limits;

pub use limits::{
    Check, LimitError, LimitStats, Limiter, LimitsOptions, OnRedisError, Outcome, PlanLimits,
};
