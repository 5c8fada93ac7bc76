//! Governance of the data plane: rate limits, the audit log's writer, usage metering and
//! call quotas.
//!
//! This crate is a service layer: it depends on the pure domain and on its stores (Redis, the
//! repositories),
//! never on HTTP or MCP. The server's adapters ask it for decisions and turn them into
//! responses.

pub mod audit;
pub mod limits;
pub mod usage;

pub use audit::{AuditBusy, AuditLog, AuditOptions, AuditStats};

pub use usage::{CallCell, Meter, MeterOptions, MeterStats, QuotaError, QuotaScope};

pub use limits::{
    Check, Checks, LimitError, LimitStats, Limiter, LimitsOptions, OnRedisError, Outcome,
    PlanLimits,
};
