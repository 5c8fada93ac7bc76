//! Governance of the data plane: rate limits and the audit log's writer; quotas and usage
//! metering join this crate as they land.
//!
//! This crate is a service layer: it depends on the pure domain and on its stores (Redis, the
//! repositories),
//! never on HTTP or MCP. The server's adapters ask it for decisions and turn them into
//! responses.

pub mod audit;
pub mod limits;

pub use audit::{AuditBusy, AuditLog, AuditOptions, AuditStats};

pub use limits::{
    Check, LimitError, LimitStats, Limiter, LimitsOptions, OnRedisError, Outcome, PlanLimits,
};
