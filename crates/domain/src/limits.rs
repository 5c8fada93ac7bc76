//! Rate limits: how a limit is written (`"100/min"`), which limits a tenant has (its plan's
//! defaults overlaid by its own settings), and the GCRA arithmetic that decides a request.
//!
//! GCRA (the generic cell rate algorithm) keeps one number per key, the *theoretical arrival
//! time* (TAT): the moment the key's budget would be fully spent if requests kept arriving at
//! exactly the allowed rate. A request is admitted when admitting it keeps the TAT within one
//! period of now. The in-process limiter and the Redis script both use this module's numbers
//! (microseconds), so a limit means the same thing on one replica and on many.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const MICROS_PER_SECOND: u64 = 1_000_000;

/// An allowed rate: `count` requests per `period_us` microseconds, with a burst of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    count: u32,
    period_us: u64,
}

/// A rate that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid rate {shown:?}: {problem}; write it like \"100/min\" (units: s, min, hour, day) or \"unlimited\""
)]
pub struct RateError {
    shown: String,
    problem: &'static str,
}

impl Rate {
    /// `count` per `seconds`; `None` when zero or when finer than one request per microsecond.
    pub fn per(count: u32, seconds: u64) -> Option<Self> {
        let period_us = seconds.checked_mul(MICROS_PER_SECOND)?;
        (count > 0 && seconds > 0 && u64::from(count) <= period_us)
            .then_some(Self { count, period_us })
    }

    /// Requests admitted per period (and the burst size).
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The period in microseconds.
    pub fn period_us(&self) -> u64 {
        self.period_us
    }

    /// The time one request "costs": the period divided by the count.
    pub fn emission_us(&self) -> u64 {
        self.period_us / u64::from(self.count)
    }
}

const UNITS: [(&str, u64); 8] = [
    ("s", 1),
    ("sec", 1),
    ("second", 1),
    ("min", 60),
    ("minute", 60),
    ("h", 3600),
    ("hour", 3600),
    ("day", 86_400),
];

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |problem| RateError {
            shown: text.chars().take(40).collect(),
            problem,
        };
        let (count, unit) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| err("it has no '/'"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| err("the count is not a whole number below 4294967296"))?;
        let unit = unit.trim();
        let seconds = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, s)| *s)
            .ok_or_else(|| err("the unit is not one of s, min, hour, day"))?;
        Rate::per(count, seconds).ok_or_else(|| {
            err("the count must be at least 1 and at most one request per microsecond")
        })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.period_us / MICROS_PER_SECOND;
        let unit = match seconds {
            1 => "s",
            60 => "min",
            3600 => "hour",
            86_400 => "day",
            _ => return write!(f, "{}/{}s", self.count, seconds),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// One configured limit: a rate, or explicitly none (overriding a plan's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    Unlimited,
    Rate(Rate),
}

impl Limit {
    /// The rate, when limited.
    pub fn rate(self) -> Option<Rate> {
        match self {
            Self::Unlimited => None,
            Self::Rate(rate) => Some(rate),
        }
    }
}

impl FromStr for Limit {
    type Err = RateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "unlimited" | "none" => Ok(Self::Unlimited),
            _ => text.parse().map(Self::Rate),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unlimited => f.write_str("unlimited"),
            Self::Rate(rate) => rate.fmt(f),
        }
    }
}

impl Serialize for Limit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What a limit counts: every request of the tenant, of one user (or service client), of
/// one credential, from one client address, or calls of one tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitScope {
    Tenant,
    User,
    Key,
    Address,
    Tool,
}

impl LimitScope {
    /// The name used in settings, keys, headers and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::User => "user",
            Self::Key => "key",
            Self::Address => "address",
            Self::Tool => "tool",
        }
    }
}

/// A tenant's rate limits (settings `rateLimits`, and each plan's defaults in the gateway's
/// configuration). An absent entry inherits; `"unlimited"` switches a default off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateLimits {
    /// All requests of the tenant together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Limit>,
    /// Requests of each user or service client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Limit>,
    /// Requests made with each API key or token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Limit>,
    /// Requests from each client address to this tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Limit>,
    /// Calls of each tool, by the whole tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<Limit>,
}

impl RateLimits {
    /// These limits, with every absent entry taken from `defaults`.
    pub fn over(&self, defaults: &RateLimits) -> RateLimits {
        RateLimits {
            tenant: self.tenant.or(defaults.tenant),
            user: self.user.or(defaults.user),
            key: self.key.or(defaults.key),
            address: self.address.or(defaults.address),
            tool: self.tool.or(defaults.tool),
        }
    }

    /// The rate of `scope`, when limited.
    pub fn rate(&self, scope: LimitScope) -> Option<Rate> {
        let limit = match scope {
            LimitScope::Tenant => self.tenant,
            LimitScope::User => self.user,
            LimitScope::Key => self.key,
            LimitScope::Address => self.address,
            LimitScope::Tool => self.tool,
        };
        limit.and_then(Limit::rate)
    }
}

/// The outcome of one key's check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Requests still admitted right now after this one (0 when refused).
    pub remaining: u32,
    /// Microseconds until the budget is whole again.
    pub reset_us: u64,
    /// Microseconds until a refused request would be admitted (0 when admitted).
    pub retry_after_us: u64,
}

/// GCRA for one key: `tat` is the stored theoretical arrival time (0 when the key is new),
/// `now` the current time, both in microseconds. Returns the verdict and the TAT to store
/// when the request is admitted.
pub fn gcra(tat: u64, now: u64, rate: Rate) -> (Verdict, u64) {
    let emission = rate.emission_us();
    let start = tat.max(now);
    let new_tat = start + emission;
    // Admitting keeps the TAT within one period of now.
    let allow_at = new_tat.saturating_sub(rate.period_us);
    if now < allow_at {
        let verdict = Verdict {
            allowed: false,
            remaining: 0,
            reset_us: start - now,
            retry_after_us: allow_at - now,
        };
        return (verdict, tat);
    }
    let spare = rate.period_us - (new_tat - now);
    let verdict = Verdict {
        allowed: true,
        remaining: u32::try_from(spare / emission).unwrap_or(u32::MAX),
        reset_us: new_tat - now,
        retry_after_us: 0,
    };
    (verdict, new_tat)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> Rate {
        text.parse().unwrap()
    }

    #[test]
    fn rates_parse_and_print() {
        assert_eq!(rate("100/min"), Rate::per(100, 60).unwrap());
        assert_eq!(rate(" 5 / s "), Rate::per(5, 1).unwrap());
        assert_eq!(rate("1000/hour").to_string(), "1000/hour");
        assert_eq!(rate("7/day").to_string(), "7/day");
        assert_eq!("unlimited".parse::<Limit>().unwrap(), Limit::Unlimited);
        for bad in [
            "100",
            "0/min",
            "x/min",
            "10/fortnight",
            "-1/s",
            "2000000/s",
            "",
        ] {
            let err = bad.parse::<Limit>().unwrap_err().to_string();
            assert!(err.contains("write it like \"100/min\""), "{bad}: {err}");
        }
    }

    #[test]
    fn limits_serialize_as_text_and_refuse_unknown_fields() {
        let limits: RateLimits =
            serde_json::from_str(r#"{"user": "100/min", "tool": "unlimited"}"#).unwrap();
        assert_eq!(limits.user, Some(Limit::Rate(rate("100/min"))));
        assert_eq!(
            serde_json::to_string(&limits).unwrap(),
            r#"{"user":"100/min","tool":"unlimited"}"#
        );
        let err = serde_json::from_str::<RateLimits>(r#"{"users": "1/s"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let err = serde_json::from_str::<RateLimits>(r#"{"user": "1/week"}"#).unwrap_err();
        assert!(err.to_string().contains("unit"), "{err}");
    }

    #[test]
    fn a_tenant_overrides_its_plan() {
        let plan = RateLimits {
            tenant: Some(Limit::Rate(rate("1000/min"))),
            user: Some(Limit::Rate(rate("100/min"))),
            ..Default::default()
        };
        let own = RateLimits {
            user: Some(Limit::Unlimited),
            tool: Some(Limit::Rate(rate("5/s"))),
            ..Default::default()
        };
        let effective = own.over(&plan);
        assert_eq!(effective.rate(LimitScope::Tenant), Some(rate("1000/min")));
        assert_eq!(effective.rate(LimitScope::User), None);
        assert_eq!(effective.rate(LimitScope::Tool), Some(rate("5/s")));
        assert_eq!(effective.rate(LimitScope::Key), None);
    }

    #[test]
    fn a_burst_of_count_is_admitted_then_one_per_emission_interval() {
        let r = rate("10/s"); // one per 100 ms
        let mut tat = 0;
        let now = 5_000_000;
        for i in 0..10 {
            let (v, next) = gcra(tat, now, r);
            assert!(v.allowed, "request {i}");
            assert_eq!(v.remaining, 9 - i);
            tat = next;
        }
        let (v, same) = gcra(tat, now, r);
        assert!(!v.allowed);
        assert_eq!(same, tat, "a refusal stores nothing");
        assert_eq!(v.retry_after_us, 100_000);
        assert_eq!(v.reset_us, 1_000_000);
        // 100 ms later exactly one more fits.
        let (v, next) = gcra(tat, now + 100_000, r);
        assert!(v.allowed);
        assert_eq!(v.remaining, 0);
        assert!(!gcra(next, now + 100_000, r).0.allowed);
        // After a full idle period the whole burst is back.
        let (v, _) = gcra(next, now + 2_000_000, r);
        assert_eq!(v.remaining, 9);
    }
}
