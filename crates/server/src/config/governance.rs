//! The governance sections of the configuration: `[limits]`, `[audit]`, `[usage]`,
//! `[metrics]`, and the service options derived from them.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use switchboard_domain::limits::{Limit, RateLimits};
use switchboard_governance::{AuditOptions, LimitsOptions, MeterOptions, OnRedisError, PlanLimits};

use super::Config;

/// `[limits]`: rate limits, in this process or shared through Redis.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// `redis://host:port[/db]`: share limits across replicas. Default: in-process.
    pub redis_url: Option<SecretString>,
    /// Prefix of every Redis key (several gateways may share one Redis).
    pub redis_prefix: String,
    /// Longest wait for Redis before `on_redis_error` applies.
    pub redis_timeout_ms: u64,
    /// `deny` (fail closed) or `local` (decide in this process) while Redis is unreachable.
    pub on_redis_error: OnRedisErrorSetting,
    /// Requests per client address before authentication, over all tenants (e.g.
    /// `"1000/min"`). Default: none.
    pub address: Option<Limit>,
    /// Most keys the in-process limiter holds at once; beyond it requests are refused.
    pub max_local_keys: usize,
    /// Each plan's default limits; a tenant's `rateLimits` setting overrides them.
    pub plans: PlansSection,
}

/// `limits.on_redis_error`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRedisErrorSetting {
    #[default]
    Deny,
    Local,
}

/// `[limits.plans.*]`: a plan table written here replaces that plan's built-in defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlansSection {
    pub free: RateLimits,
    pub pro: RateLimits,
    pub enterprise: RateLimits,
}

fn rate(text: &str) -> Option<Limit> {
    Some(text.parse().expect("built-in rate"))
}

impl Default for PlansSection {
    fn default() -> Self {
        Self {
            free: RateLimits {
                tenant: rate("6000/min"),
                user: rate("600/min"),
                ..Default::default()
            },
            pro: RateLimits {
                tenant: rate("60000/min"),
                user: rate("6000/min"),
                ..Default::default()
            },
            enterprise: RateLimits::default(),
        }
    }
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_prefix: "sb:rl:".into(),
            redis_timeout_ms: 500,
            on_redis_error: OnRedisErrorSetting::Deny,
            address: None,
            max_local_keys: 1_000_000,
            plans: PlansSection::default(),
        }
    }
}

/// `[audit]`: the tamper-evident audit log, kept in the database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// Record refusals, denials and calls (on by default; off only for benchmarks of the
    /// gateway without it).
    pub enabled: bool,
    /// Events waiting to be written beyond which new requests wait (and after
    /// `max_wait_ms`, get 503).
    pub queue_capacity: usize,
    /// Most events written per transaction.
    pub batch_size: usize,
    /// Longest a request waits for room in a full backlog.
    pub max_wait_ms: u64,
    /// How long the writer gathers events into one transaction.
    pub flush_interval_ms: u64,
    /// Days records are kept, unless a tenant's `auditRetentionDays` says otherwise; 0 keeps
    /// them forever. Checked hourly.
    pub retention_days: u32,
}

impl Default for AuditSection {
    fn default() -> Self {
        Self {
            enabled: true,
            queue_capacity: 10_000,
            batch_size: 500,
            max_wait_ms: 5_000,
            flush_interval_ms: 50,
            retention_days: 0,
        }
    }
}

/// `[usage]`: usage metering (rollups in the database) and call quotas.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageSection {
    /// Count calls and enforce quotas (quotas need metering).
    pub enabled: bool,
    /// How often counted calls are written, and quota counts re-read from the database (the
    /// most a quota can lag behind other replicas' calls).
    pub flush_interval_ms: u64,
    /// Distinct (tenant, hour, user, key, server, item) cells held before an early write.
    pub max_cells: usize,
    /// Rollups older than this many days are deleted; 0 keeps them.
    pub retention_days: u32,
}

impl Default for UsageSection {
    fn default() -> Self {
        Self {
            enabled: true,
            flush_interval_ms: 10_000,
            max_cells: 50_000,
            retention_days: 400,
        }
    }
}

/// `[metrics]`: Prometheus metrics at `/metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    pub enabled: bool,
    /// When set, scrapes need `Authorization: Bearer <token>` (the metrics name every
    /// tenant's servers and tools).
    pub token: Option<SecretString>,
    /// Most (tenant, server, item) label sets; beyond it new items count as `_other`.
    pub max_series: usize,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            token: None,
            max_series: 10_000,
        }
    }
}

impl Config {
    /// The rate limiter's settings derived from `[limits]`.
    pub fn limits_options(&self) -> LimitsOptions {
        let limits = &self.limits;
        LimitsOptions {
            plans: PlanLimits {
                free: limits.plans.free,
                pro: limits.plans.pro,
                enterprise: limits.plans.enterprise,
            },
            address: limits.address.and_then(Limit::rate),
            redis_url: limits
                .redis_url
                .as_ref()
                .map(|url| url.expose_secret().to_owned()),
            redis_prefix: limits.redis_prefix.clone(),
            redis_timeout: Duration::from_millis(limits.redis_timeout_ms),
            on_redis_error: match limits.on_redis_error {
                OnRedisErrorSetting::Deny => OnRedisError::Deny,
                OnRedisErrorSetting::Local => OnRedisError::Local,
            },
            max_local_keys: limits.max_local_keys,
        }
    }

    /// The audit writer's settings derived from `[audit]`.
    pub fn usage_options(&self) -> MeterOptions {
        MeterOptions {
            flush_interval: Duration::from_millis(self.usage.flush_interval_ms),
            max_cells: self.usage.max_cells,
            retention_days: self.usage.retention_days,
        }
    }

    pub fn audit_options(&self) -> AuditOptions {
        AuditOptions {
            capacity: self.audit.queue_capacity,
            batch: self.audit.batch_size,
            max_wait: Duration::from_millis(self.audit.max_wait_ms),
            linger: Duration::from_millis(self.audit.flush_interval_ms.min(1_000)),
        }
    }
}
