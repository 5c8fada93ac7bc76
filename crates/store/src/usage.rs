//! Usage rollups: the meter adds batches of counted cells; reports group them by user, key,
//! server, tool, day or hour; quota checks sum a tenant's (or a key's) calls since a period's
//! start. None of this is part of the directory: writes do not move the revision.

use sqlx::Row;
use switchboard_domain::tenancy::TenantId;
use switchboard_domain::usage::{BUCKETS, Counters, UsageKey};

use crate::tx::{Access, Scope};
use crate::{Result, Store, TenantStore};

/// Rows per INSERT: 20 parameters each stays far below both engines' parameter limits.
const CHUNK: usize = 200;
/// Most rows a report returns.
pub const MAX_REPORT_ROWS: usize = 10_000;

/// What a usage report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGroup {
    /// The principal (`user:…`, `client:…`).
    User,
    /// The credential's public id.
    Key,
    Server,
    /// Server, kind and item.
    Tool,
    /// The UTC day (Unix seconds at midnight).
    Day,
    /// The UTC hour.
    Hour,
}

impl UsageGroup {
    /// Parses `user`, `key`, `server`, `tool`, `day`, `hour`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "user" => Self::User,
            "key" => Self::Key,
            "server" => Self::Server,
            "tool" => Self::Tool,
            "day" => Self::Day,
            "hour" => Self::Hour,
            _ => return None,
        })
    }

    /// The SQL of the grouped columns (fixed strings: nothing from the caller).
    fn columns(self) -> &'static [&'static str] {
        match self {
            Self::User => &["principal"],
            Self::Key => &["credential"],
            Self::Server => &["server"],
            Self::Tool => &["server", "kind", "item"],
            Self::Day => &["(hour - (hour % 86400))"],
            Self::Hour => &["hour"],
        }
    }
}

/// One row of a report: the group's values (in the order asked, `tool` giving server, kind
/// and item) and the summed counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub group: Vec<String>,
    pub counters: Counters,
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn counters_from(row: &sqlx::any::AnyRow) -> Result<Counters> {
    let get = |name: &str| -> Result<u64> {
        let value: Option<i64> = row.try_get(name)?;
        Ok(u64::try_from(value.unwrap_or(0)).unwrap_or(0))
    };
    let mut buckets = [0u64; BUCKETS];
    for (i, bucket) in buckets.iter_mut().enumerate() {
        *bucket = get(&format!("b{i}"))?;
    }
    Ok(Counters {
        calls: get("calls")?,
        errors: get("errors")?,
        latency_us: get("latency_us")?,
        latency_max_us: get("latency_max_us")?,
        buckets,
        bytes_in: get("bytes_in")?,
        bytes_out: get("bytes_out")?,
    })
}

const SUMS: &str = "CAST(COALESCE(SUM(calls), 0) AS BIGINT) AS calls, \
    CAST(COALESCE(SUM(errors), 0) AS BIGINT) AS errors, \
    CAST(COALESCE(SUM(latency_us), 0) AS BIGINT) AS latency_us, \
    CAST(COALESCE(MAX(latency_max_us), 0) AS BIGINT) AS latency_max_us, \
    CAST(COALESCE(SUM(b0), 0) AS BIGINT) AS b0, CAST(COALESCE(SUM(b1), 0) AS BIGINT) AS b1, \
    CAST(COALESCE(SUM(b2), 0) AS BIGINT) AS b2, CAST(COALESCE(SUM(b3), 0) AS BIGINT) AS b3, \
    CAST(COALESCE(SUM(b4), 0) AS BIGINT) AS b4, CAST(COALESCE(SUM(b5), 0) AS BIGINT) AS b5, \
    CAST(COALESCE(SUM(b6), 0) AS BIGINT) AS b6, \
    CAST(COALESCE(SUM(bytes_in), 0) AS BIGINT) AS bytes_in, \
    CAST(COALESCE(SUM(bytes_out), 0) AS BIGINT) AS bytes_out";

impl Store {
    /// Adds counted cells to the rollups (a cell is created when new), in one transaction.
    /// The cells of one batch must be distinct.
    pub async fn add_usage(&self, cells: &[(UsageKey, Counters)]) -> Result<()> {
        if cells.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin(Scope::Platform, Access::Write).await?;
        for chunk in cells.chunks(CHUNK) {
            let mut sql = String::from(
                "INSERT INTO usage_rollups (tenant_id, hour, principal, credential, server, kind, item, \
                 calls, errors, latency_us, latency_max_us, b0, b1, b2, b3, b4, b5, b6, bytes_in, bytes_out) VALUES ",
            );
            crate::tx::push_values(&mut sql, self.backend, chunk.len(), 20);
            sql.push_str(
                " ON CONFLICT (tenant_id, hour, principal, credential, server, kind, item) DO UPDATE SET \
                 calls = usage_rollups.calls + excluded.calls, errors = usage_rollups.errors + excluded.errors, \
                 latency_us = usage_rollups.latency_us + excluded.latency_us, \
                 latency_max_us = CASE WHEN excluded.latency_max_us > usage_rollups.latency_max_us \
                 THEN excluded.latency_max_us ELSE usage_rollups.latency_max_us END, \
                 b0 = usage_rollups.b0 + excluded.b0, b1 = usage_rollups.b1 + excluded.b1, \
                 b2 = usage_rollups.b2 + excluded.b2, b3 = usage_rollups.b3 + excluded.b3, \
                 b4 = usage_rollups.b4 + excluded.b4, b5 = usage_rollups.b5 + excluded.b5, \
                 b6 = usage_rollups.b6 + excluded.b6, \
                 bytes_in = usage_rollups.bytes_in + excluded.bytes_in, \
                 bytes_out = usage_rollups.bytes_out + excluded.bytes_out",
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (key, c) in chunk {
                query = query
                    .bind(key.tenant.as_str().to_owned())
                    .bind(key.hour)
                    .bind(key.principal.to_string())
                    .bind(key.credential.clone())
                    .bind(key.server.clone())
                    .bind(key.kind.as_str())
                    .bind(key.item.clone())
                    .bind(as_i64(c.calls))
                    .bind(as_i64(c.errors))
                    .bind(as_i64(c.latency_us))
                    .bind(as_i64(c.latency_max_us));
                for bucket in c.buckets {
                    query = query.bind(as_i64(bucket));
                }
                query = query.bind(as_i64(c.bytes_in)).bind(as_i64(c.bytes_out));
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Calls counted for `tenant` — and only `credential`'s, when given — in the hours
    /// starting at or after `from` (Unix seconds).
    pub async fn usage_calls_since(
        &self,
        tenant: &TenantId,
        credential: Option<&str>,
        from: i64,
    ) -> Result<u64> {
        let mut tx = self.begin(Scope::Platform, Access::Read).await?;
        let calls: i64 = match credential {
            Some(credential) => {
                sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT) FROM usage_rollups \
                 WHERE tenant_id = $1 AND credential = $2 AND hour >= $3",
                )
                .bind(tenant.as_str())
                .bind(credential)
                .bind(from)
                .fetch_one(&mut *tx)
                .await?
            }
            None => {
                sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(calls), 0) AS BIGINT) FROM usage_rollups \
                 WHERE tenant_id = $1 AND hour >= $2",
                )
                .bind(tenant.as_str())
                .bind(from)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        Ok(u64::try_from(calls).unwrap_or(0))
    }

    /// Deletes the cells of hours before `before`; returns how many.
    pub async fn prune_usage(&self, before: i64) -> Result<u64> {
        let mut tx = self.begin(Scope::Platform, Access::Write).await?;
        let n = sqlx::query("DELETE FROM usage_rollups WHERE hour < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}

impl TenantStore<'_> {
    /// The tenant's usage in the hours from `from` (inclusive) to `to` (exclusive), summed by
    /// `groups` (all of it in one row when empty), ordered by the groups; at most
    /// [`MAX_REPORT_ROWS`] rows.
    pub async fn usage_report(
        &self,
        from: i64,
        to: i64,
        groups: &[UsageGroup],
    ) -> Result<Vec<UsageRow>> {
        let columns: Vec<&str> = groups
            .iter()
            .flat_map(|g| g.columns().iter().copied())
            .collect();
        let aliases: Vec<String> = (0..columns.len()).map(|i| format!("g{i}")).collect();
        let select: Vec<String> = columns
            .iter()
            .zip(&aliases)
            .map(|(c, a)| format!("{c} AS {a}"))
            .collect();
        let mut sql = String::from("SELECT ");
        for s in &select {
            sql.push_str(s);
            sql.push_str(", ");
        }
        sql.push_str(SUMS);
        sql.push_str(" FROM usage_rollups WHERE tenant_id = $1 AND hour >= $2 AND hour < $3");
        if !columns.is_empty() {
            let list = columns.join(", ");
            sql.push_str(&format!(" GROUP BY {list} ORDER BY {list}"));
        }
        sql.push_str(&format!(" LIMIT {MAX_REPORT_ROWS}"));
        let mut tx = self.read().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.id().to_owned())
            .bind(from)
            .bind(to)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let numeric: Vec<bool> = groups
            .iter()
            .flat_map(|g| {
                let n = matches!(g, UsageGroup::Day | UsageGroup::Hour);
                std::iter::repeat_n(n, g.columns().len())
            })
            .collect();
        rows.iter()
            .filter(|row| {
                groups.is_empty()
                    || row
                        .try_get::<Option<i64>, _>("calls")
                        .ok()
                        .flatten()
                        .unwrap_or(0)
                        > 0
            })
            .map(|row| {
                let group = aliases
                    .iter()
                    .zip(&numeric)
                    .map(|(alias, numeric)| {
                        if *numeric {
                            Ok(row.try_get::<i64, _>(alias.as_str())?.to_string())
                        } else {
                            Ok(row.try_get::<String, _>(alias.as_str())?)
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(UsageRow {
                    group,
                    counters: counters_from(row)?,
                })
            })
            .collect()
    }
}
