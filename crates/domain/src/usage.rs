//! Usage metering as data: the counters of one cell (tenant, hour, principal, credential,
//! server, kind, item), a fixed latency histogram, and the calendar periods quotas count in
//! (UTC days and months).

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

use crate::tenancy::{Identity, ItemKind, Quotas, TenantId};

/// Upper bounds (µs) of the latency buckets; a last bucket holds everything slower.
pub const LATENCY_BOUNDS_US: [u64; 6] = [1_000, 5_000, 25_000, 100_000, 500_000, 2_500_000];
/// Number of latency buckets.
pub const BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// What is counted for one cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub calls: u64,
    /// Calls answered with a JSON-RPC error (or a tool result flagged as an error).
    pub errors: u64,
    /// Sum of latencies, for the mean.
    pub latency_us: u64,
    pub latency_max_us: u64,
    /// Calls per latency bucket ([`LATENCY_BOUNDS_US`]).
    pub buckets: [u64; BUCKETS],
    /// Bytes of the arguments sent upstream (serialized JSON).
    pub bytes_in: u64,
    /// Bytes of the results returned (serialized JSON).
    pub bytes_out: u64,
}

impl Counters {
    /// Counts one call.
    pub fn add_call(&mut self, error: bool, latency_us: u64, bytes_in: u64, bytes_out: u64) {
        self.calls += 1;
        self.errors += u64::from(error);
        self.latency_us = self.latency_us.saturating_add(latency_us);
        self.latency_max_us = self.latency_max_us.max(latency_us);
        let bucket = LATENCY_BOUNDS_US
            .iter()
            .position(|bound| latency_us <= *bound)
            .unwrap_or(BUCKETS - 1);
        self.buckets[bucket] += 1;
        self.bytes_in = self.bytes_in.saturating_add(bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(bytes_out);
    }

    /// Adds another cell's counts.
    pub fn merge(&mut self, other: &Counters) {
        self.calls += other.calls;
        self.errors += other.errors;
        self.latency_us = self.latency_us.saturating_add(other.latency_us);
        self.latency_max_us = self.latency_max_us.max(other.latency_max_us);
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.bytes_in = self.bytes_in.saturating_add(other.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(other.bytes_out);
    }

    /// Mean latency (µs); 0 without calls.
    pub fn mean_us(&self) -> u64 {
        self.latency_us.checked_div(self.calls).unwrap_or(0)
    }

    /// The `q` quantile (0–1) as the upper bound of its bucket, capped by the maximum seen:
    /// an upper estimate, exact to the bucket.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.calls == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.calls as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let bound = LATENCY_BOUNDS_US.get(i).copied().unwrap_or(u64::MAX);
                return bound.min(self.latency_max_us);
            }
        }
        self.latency_max_us
    }
}

/// The cell a call is counted in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UsageKey {
    pub tenant: TenantId,
    /// Unix seconds at the start of the UTC hour.
    pub hour: i64,
    /// Who called: stored as `user:…`, `client:…` or `anonymous`.
    pub principal: Identity,
    /// The credential's public id (an API key's id; empty for tokens).
    pub credential: String,
    pub server: String,
    pub kind: ItemKind,
    pub item: String,
}

/// A calendar period of a quota, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Day,
    Month,
}

impl Period {
    /// `day` or `month`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// Unix seconds at the start of the period holding `at`.
    pub fn start(self, at: i64) -> i64 {
        match self {
            Self::Day => at - at.rem_euclid(86_400),
            Self::Month => {
                let date = utc(at).date_naive();
                month_start(date.year(), date.month())
            }
        }
    }

    /// Unix seconds at the start of the next period.
    pub fn end(self, at: i64) -> i64 {
        match self {
            Self::Day => self.start(at) + 86_400,
            Self::Month => {
                let date = utc(at).date_naive();
                let (year, month) = if date.month() == 12 {
                    (date.year() + 1, 1)
                } else {
                    (date.year(), date.month() + 1)
                };
                month_start(year, month)
            }
        }
    }

    /// The quota's limit for this period.
    pub fn limit(self, quotas: &Quotas) -> Option<u64> {
        match self {
            Self::Day => quotas.calls_per_day,
            Self::Month => quotas.calls_per_month,
        }
    }
}

fn utc(at: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(at, 0).single().unwrap_or_default()
}

fn month_start(year: i32, month: u32) -> i64 {
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(0, |t| t.and_utc().timestamp())
}

/// Unix seconds at the start of the UTC hour holding `at`.
pub fn hour_start(at: i64) -> i64 {
    at - at.rem_euclid(3_600)
}

/// Parses a time given as Unix seconds, an RFC 3339 timestamp or a date (`2026-12-01`,
/// midnight UTC).
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        return Some(secs);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
}

/// RFC 3339 (UTC, seconds) of Unix seconds.
pub fn format_time(at: i64) -> String {
    utc(at).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_bucket_and_estimate_quantiles() {
        let mut c = Counters::default();
        for latency in [500, 800, 900, 3_000, 40_000] {
            c.add_call(false, latency, 10, 100);
        }
        c.add_call(true, 3_000_000, 1, 1);
        assert_eq!(
            (c.calls, c.errors, c.bytes_in, c.bytes_out),
            (6, 1, 51, 501)
        );
        assert_eq!(c.buckets, [3, 1, 0, 1, 0, 0, 1]);
        assert_eq!(c.quantile_us(0.5), 1_000);
        assert_eq!(
            c.quantile_us(0.99),
            3_000_000,
            "the slowest bucket is capped by the max"
        );
        assert_eq!(
            c.mean_us(),
            (500 + 800 + 900 + 3_000 + 40_000 + 3_000_000) / 6
        );
        let mut total = Counters::default();
        total.merge(&c);
        total.merge(&c);
        assert_eq!(
            (total.calls, total.latency_max_us, total.buckets[0]),
            (12, 3_000_000, 6)
        );
        assert_eq!(Counters::default().quantile_us(0.5), 0);
    }

    #[test]
    fn periods_follow_the_utc_calendar() {
        let t = parse_time("2026-12-31T23:59:59Z").unwrap();
        assert_eq!(format_time(Period::Day.start(t)), "2026-12-31T00:00:00Z");
        assert_eq!(format_time(Period::Day.end(t)), "2027-01-01T00:00:00Z");
        assert_eq!(format_time(Period::Month.start(t)), "2026-12-01T00:00:00Z");
        assert_eq!(format_time(Period::Month.end(t)), "2027-01-01T00:00:00Z");
        let feb = parse_time("2028-02-29").unwrap();
        assert_eq!(format_time(Period::Month.end(feb)), "2028-03-01T00:00:00Z");
        assert_eq!(format_time(hour_start(t)), "2026-12-31T23:00:00Z");
        assert_eq!(parse_time("1796083200"), Some(1_796_083_200));
        assert_eq!(
            parse_time("2026-12-01T10:00:00+01:00"),
            parse_time("2026-12-01T09:00:00Z")
        );
        assert_eq!(parse_time("yesterday"), None);
    }
}
