//! Rate limits per client address, tenant, user, credential and tool.
//!
//! The [`Limiter`] turns "who is asking" into a few keys — each with the tenant in it — and
//! asks its store to decide them together: in-process by default, or Redis when configured so
//! that every replica shares one budget. If Redis cannot answer, the limiter either refuses
//! (fail closed, the default) or decides in-process, as configured; both are logged and
//! counted.

mod local;
mod redis;

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use smallvec::SmallVec;
use switchboard_domain::limits::{LimitScope, Rate, RateLimits, Verdict};
use switchboard_domain::tenancy::{CredentialKind, Identity, Plan, Principal, Tenant, TenantId};

pub use local::LocalStore;
pub use redis::RedisStore;

/// A limiter failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LimitError {
    #[error("rate limits cannot be checked: Redis is unavailable ({0})")]
    Unavailable(String),
    #[error(
        "rate limits cannot be checked: the in-process limiter holds its maximum number of keys; raise limits.max_local_keys"
    )]
    Full,
    #[error("{0}")]
    Config(String),
}

/// Most keys one request charges (tenant, user, credential, address; and the platform-wide
/// address limit when it is decided with them).
const MAX_KEYS: usize = 5;

/// The verdicts on a request's keys, in their order.
pub type Verdicts = SmallVec<[Verdict; MAX_KEYS]>;

/// One key to charge.
#[derive(Debug, Clone, Copy)]
pub struct Check<'a> {
    pub scope: LimitScope,
    pub key: &'a str,
    pub rate: Rate,
}

/// The keys one request charges, decided together. Their text is written into one buffer,
/// so a request's keys cost one allocation however many there are.
#[derive(Debug)]
pub struct Checks {
    text: String,
    items: SmallVec<[(LimitScope, Rate, Range<usize>); MAX_KEYS]>,
}

impl Default for Checks {
    fn default() -> Self {
        Self::new()
    }
}

impl Checks {
    /// Room for a request's keys in one allocation.
    pub fn new() -> Self {
        Self {
            text: String::with_capacity(192),
            items: SmallVec::new(),
        }
    }

    /// Adds the key `prefix` + `rest` with its rate.
    pub fn push(&mut self, scope: LimitScope, rate: Rate, prefix: &str, rest: fmt::Arguments<'_>) {
        let start = self.text.len();
        self.text.push_str(prefix);
        // Writing into a String cannot fail.
        let _ = self.text.write_fmt(rest);
        self.items.push((scope, rate, start..self.text.len()));
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there is no key to charge.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The `i`-th key.
    pub fn get(&self, i: usize) -> Check<'_> {
        let (scope, rate, range) = &self.items[i];
        Check {
            scope: *scope,
            key: &self.text[range.clone()],
            rate: *rate,
        }
    }

    /// The keys in order.
    pub fn iter(&self) -> impl Iterator<Item = Check<'_>> {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// What to do when Redis cannot answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnRedisError {
    /// Refuse the request (fail closed).
    #[default]
    Deny,
    /// Decide in this process alone (each replica then admits up to the whole limit).
    Local,
}

/// Rate limits of each plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanLimits {
    pub free: RateLimits,
    pub pro: RateLimits,
    pub enterprise: RateLimits,
}

impl PlanLimits {
    /// The defaults of `plan`.
    pub fn of(&self, plan: Plan) -> &RateLimits {
        match plan {
            Plan::Free => &self.free,
            Plan::Pro => &self.pro,
            Plan::Enterprise => &self.enterprise,
        }
    }
}

/// The limiter's settings.
#[derive(Debug, Clone)]
pub struct LimitsOptions {
    pub plans: PlanLimits,
    /// Requests per client address before authentication, over all tenants.
    pub address: Option<Rate>,
    pub redis_url: Option<String>,
    /// Prefix of every Redis key.
    pub redis_prefix: String,
    pub redis_timeout: Duration,
    pub on_redis_error: OnRedisError,
    /// Most keys the in-process store holds at once.
    pub max_local_keys: usize,
}

impl Default for LimitsOptions {
    fn default() -> Self {
        Self {
            plans: PlanLimits::default(),
            address: None,
            redis_url: None,
            redis_prefix: "sb:rl:".into(),
            redis_timeout: Duration::from_millis(500),
            on_redis_error: OnRedisError::Deny,
            max_local_keys: 1_000_000,
        }
    }
}

/// The decision on one request: the refusing limit, or — when admitted — the limit closest
/// to refusing (what `RateLimit-*` headers report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub scope: LimitScope,
    pub rate: Rate,
    pub verdict: Verdict,
}

impl Outcome {
    pub fn allowed(&self) -> bool {
        self.verdict.allowed
    }

    /// Seconds to wait before retrying, rounded up (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        self.verdict.retry_after_us.div_ceil(1_000_000).max(1)
    }

    /// Seconds until the budget is whole, rounded up.
    pub fn reset_secs(&self) -> u64 {
        self.verdict.reset_us.div_ceil(1_000_000)
    }
}

/// Counters shown in `/readyz`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitStats {
    pub refused: u64,
    /// Decisions sent to Redis (one round trip each).
    pub redis_calls: u64,
    pub redis_errors: u64,
    pub local_fallbacks: u64,
}

/// The limiter.
pub struct Limiter {
    options: LimitsOptions,
    local: LocalStore,
    redis: Option<RedisStore>,
    refused: AtomicU64,
    redis_calls: AtomicU64,
    redis_errors: AtomicU64,
    local_fallbacks: AtomicU64,
    /// Unix second of the last Redis error logged (errors are logged at most every 10 s).
    last_error_log: AtomicU64,
}

impl Limiter {
    /// A limiter; fails only on an invalid Redis URL (Redis itself is reached lazily).
    pub fn new(options: LimitsOptions) -> Result<Self, LimitError> {
        let redis = match &options.redis_url {
            Some(url) => Some(RedisStore::new(url, options.redis_timeout)?),
            None => None,
        };
        Ok(Self {
            local: LocalStore::new(options.max_local_keys),
            redis,
            options,
            refused: AtomicU64::new(0),
            redis_calls: AtomicU64::new(0),
            redis_errors: AtomicU64::new(0),
            local_fallbacks: AtomicU64::new(0),
            last_error_log: AtomicU64::new(0),
        })
    }

    /// Whether limits are shared through Redis.
    pub fn shared(&self) -> bool {
        self.redis.is_some()
    }

    /// `tenant`'s limits: its own settings over its plan's defaults.
    pub fn effective(&self, tenant: &Tenant) -> RateLimits {
        let plan = self.options.plans.of(tenant.plan);
        tenant
            .settings
            .rate_limits
            .as_ref()
            .map_or(*plan, |own| own.over(plan))
    }

    /// Adds the key `{prefix}{tenant}:{rest}`: `{tenant}` is a Redis hash tag, so a tenant's
    /// keys share one slot.
    fn push_tenant_key(
        &self,
        checks: &mut Checks,
        scope: LimitScope,
        rate: Rate,
        tenant: &TenantId,
        rest: fmt::Arguments<'_>,
    ) {
        checks.push(
            scope,
            rate,
            &self.options.redis_prefix,
            format_args!("{{{tenant}}}:{rest}"),
        );
    }

    /// Whether the platform-wide address limit is better decided together with the caller's
    /// limits, after authentication, than on its own before it: with Redis, where each
    /// decision is a round trip (and costs about as much as verifying a token), deciding them
    /// together halves a request's round trips. In process a decision costs well under a
    /// microsecond, and the address is decided first.
    pub fn defers_address(&self) -> bool {
        self.redis.is_some() && self.options.address.is_some()
    }

    /// The platform-wide limit per client address, on its own.
    pub async fn check_address(&self, address: IpAddr) -> Result<Option<Outcome>, LimitError> {
        let mut checks = Checks::new();
        self.push_platform_address(&mut checks, address);
        self.decide(&checks).await
    }

    /// Adds the platform-wide address key, when that limit is set. It names no tenant: one
    /// address's budget spans all of them.
    fn push_platform_address(&self, checks: &mut Checks, address: IpAddr) {
        if let Some(rate) = self.options.address {
            let prefix = &self.options.redis_prefix;
            checks.push(
                LimitScope::Address,
                rate,
                prefix,
                format_args!("ip:{address}"),
            );
        }
    }

    /// The limits of one authenticated request: tenant, user, credential and address; and,
    /// when `platform_address` is set, the platform-wide limit on that address too (see
    /// [`Limiter::defers_address`]). All are decided together: none is charged unless every
    /// one admits.
    pub async fn check_request(
        &self,
        limits: &RateLimits,
        principal: &Principal,
        address: Option<IpAddr>,
        platform_address: Option<IpAddr>,
    ) -> Result<Option<Outcome>, LimitError> {
        let checks = self.request_checks(limits, principal, address, platform_address);
        self.decide(&checks).await
    }

    fn request_checks(
        &self,
        limits: &RateLimits,
        principal: &Principal,
        address: Option<IpAddr>,
        platform_address: Option<IpAddr>,
    ) -> Checks {
        let tenant = &principal.tenant;
        let mut checks = Checks::new();
        if let Some(address) = platform_address {
            self.push_platform_address(&mut checks, address);
        }
        if let Some(rate) = limits.rate(LimitScope::Tenant) {
            let scope = LimitScope::Tenant;
            self.push_tenant_key(&mut checks, scope, rate, tenant, format_args!("t"));
        }
        if let Some(rate) = limits.rate(LimitScope::User)
            && !matches!(principal.identity, Identity::Anonymous)
        {
            let who = &principal.identity;
            self.push_tenant_key(
                &mut checks,
                LimitScope::User,
                rate,
                tenant,
                format_args!("u:{who}"),
            );
        }
        if let Some(rate) = limits.rate(LimitScope::Key)
            && principal.credential.kind != CredentialKind::None
        {
            let id = &principal.credential.id;
            self.push_tenant_key(
                &mut checks,
                LimitScope::Key,
                rate,
                tenant,
                format_args!("k:{id}"),
            );
        }
        if let (Some(rate), Some(address)) = (limits.rate(LimitScope::Address), address) {
            let scope = LimitScope::Address;
            self.push_tenant_key(
                &mut checks,
                scope,
                rate,
                tenant,
                format_args!("a:{address}"),
            );
        }
        checks
    }

    /// The limit on calls of `tool` (its name as clients see it) by `tenant`.
    pub async fn check_tool(
        &self,
        limits: &RateLimits,
        tenant: &TenantId,
        tool: &str,
    ) -> Result<Option<Outcome>, LimitError> {
        let Some(rate) = limits.rate(LimitScope::Tool) else {
            return Ok(None);
        };
        let mut checks = Checks::new();
        let scope = LimitScope::Tool;
        self.push_tenant_key(
            &mut checks,
            scope,
            rate,
            tenant,
            format_args!("tool:{tool}"),
        );
        self.decide(&checks).await
    }

    async fn decide(&self, checks: &Checks) -> Result<Option<Outcome>, LimitError> {
        if checks.is_empty() {
            return Ok(None);
        }
        let verdicts = match &self.redis {
            None => self.local.check(checks)?,
            Some(redis) => match self.redis_check(redis, checks).await {
                Ok(verdicts) => verdicts,
                Err(err) => {
                    self.redis_errors.fetch_add(1, Ordering::Relaxed);
                    self.log_redis_error(&err);
                    match self.options.on_redis_error {
                        OnRedisError::Deny => return Err(err),
                        OnRedisError::Local => {
                            self.local_fallbacks.fetch_add(1, Ordering::Relaxed);
                            self.local.check(checks)?
                        }
                    }
                }
            },
        };
        let outcome = summarize(checks, &verdicts);
        if !outcome.allowed() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Some(outcome))
    }

    async fn redis_check(
        &self,
        redis: &RedisStore,
        checks: &Checks,
    ) -> Result<Verdicts, LimitError> {
        self.redis_calls.fetch_add(1, Ordering::Relaxed);
        redis.check(checks).await
    }

    fn log_redis_error(&self, err: &LimitError) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last_error_log.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .last_error_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let fallback = match self.options.on_redis_error {
                OnRedisError::Deny => "refusing requests (limits.on_redis_error = \"deny\")",
                OnRedisError::Local => "deciding in-process (limits.on_redis_error = \"local\")",
            };
            tracing::warn!(error = %err, errors = self.redis_errors.load(Ordering::Relaxed), "rate-limit store unreachable; {fallback}");
        }
    }

    /// Whether the shared store answers (`Ok` without Redis).
    pub async fn health(&self) -> Result<(), LimitError> {
        match &self.redis {
            Some(redis) => redis.ping().await,
            None => Ok(()),
        }
    }

    /// What happens when Redis is down.
    pub fn on_redis_error(&self) -> OnRedisError {
        self.options.on_redis_error
    }

    /// Counters since start.
    pub fn stats(&self) -> LimitStats {
        LimitStats {
            refused: self.refused.load(Ordering::Relaxed),
            redis_calls: self.redis_calls.load(Ordering::Relaxed),
            redis_errors: self.redis_errors.load(Ordering::Relaxed),
            local_fallbacks: self.local_fallbacks.load(Ordering::Relaxed),
        }
    }
}

/// The refusal that lasts longest, or the admitting limit with the fewest requests left.
fn summarize(checks: &Checks, verdicts: &[Verdict]) -> Outcome {
    let pick = |i: usize| {
        let check = checks.get(i);
        Outcome {
            scope: check.scope,
            rate: check.rate,
            verdict: verdicts[i],
        }
    };
    let refused = (0..checks.len())
        .filter(|&i| !verdicts[i].allowed)
        .max_by_key(|&i| verdicts[i].retry_after_us);
    match refused {
        Some(i) => pick(i),
        None => pick(
            (0..checks.len())
                .min_by_key(|&i| verdicts[i].remaining)
                .unwrap_or(0),
        ),
    }
}

#[cfg(test)]
mod tests;
