//! `/admin/v1/tenants/{tenant}/usage`: calls, errors, latency and bytes over a time range,
//! grouped by user, key, server, tool, day or hour, as JSON or CSV; with the tenant's call
//! quotas and how much of them is used.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use switchboard_domain::tenancy::TenantId;
use switchboard_domain::usage::{Counters, Period, format_time, hour_start, parse_time};
use switchboard_store::{MAX_REPORT_ROWS, UsageGroup};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::path_tenant;
use crate::AdminState;
use crate::access::{Admin, Need};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Params;

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new().routes(routes!(usage))
}

/// The report's range, grouping and format.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Start (inclusive): Unix seconds, RFC 3339 or `YYYY-MM-DD`; default: the start of the
    /// current month (UTC). Rounded down to the hour.
    from: Option<String>,
    /// End (exclusive), same forms; default: now. Rounded up to the hour.
    to: Option<String>,
    /// Comma-separated: `user`, `key`, `server`, `tool`, `day`, `hour`; none gives one total.
    group_by: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// Latency figures in milliseconds; quantiles are upper estimates from fixed buckets
/// (1, 5, 25, 100, 500, 2500 ms).
#[derive(Debug, Serialize, ToSchema)]
pub struct LatencyView {
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// One row: the group's values (only those asked for) and what was counted.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageRowView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// `tool`, `prompt` or `resource` (with `group_by=tool`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The tool or prompt name, or the resource URI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hour: Option<String>,
    pub calls: u64,
    /// Calls answered with an error (JSON-RPC, or a tool result flagged `isError`).
    pub errors: u64,
    #[serde(rename = "latencyMs")]
    pub latency: LatencyView,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// One quota: its limit, what is used, when it resets.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaView {
    pub limit: u64,
    pub used: u64,
    /// RFC 3339.
    pub resets_at: String,
}

/// The tenant's call quotas.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotasView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls_per_day: Option<QuotaView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls_per_month: Option<QuotaView>,
}

/// A usage report.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    pub tenant: String,
    /// RFC 3339, inclusive.
    pub from: String,
    /// RFC 3339, exclusive.
    pub to: String,
    pub group_by: Vec<String>,
    pub rows: Vec<UsageRowView>,
    /// More rows matched than a report holds (10,000): narrow the range or the grouping.
    pub truncated: bool,
    pub quotas: QuotasView,
}

/// Milliseconds with microsecond precision.
fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn latency(c: &Counters) -> LatencyView {
    LatencyView {
        mean: ms(c.mean_us()),
        p50: ms(c.quantile_us(0.50)),
        p95: ms(c.quantile_us(0.95)),
        p99: ms(c.quantile_us(0.99)),
        max: ms(c.latency_max_us),
    }
}

fn groups(text: Option<&str>) -> ApiResult<(Vec<UsageGroup>, Vec<String>)> {
    let mut groups = Vec::new();
    let mut names = Vec::new();
    for name in text
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let group = UsageGroup::parse(name).ok_or_else(|| {
            ApiError::invalid(
                "group_by",
                format!("cannot group by {name:?}; use user, key, server, tool, day or hour"),
            )
        })?;
        let clash = groups.contains(&group)
            || (group == UsageGroup::Server && groups.contains(&UsageGroup::Tool))
            || (group == UsageGroup::Tool && groups.contains(&UsageGroup::Server))
            || (group == UsageGroup::Day && groups.contains(&UsageGroup::Hour))
            || (group == UsageGroup::Hour && groups.contains(&UsageGroup::Day));
        if clash {
            return Err(ApiError::invalid(
                "group_by",
                format!(
                    "{name:?} repeats or overlaps another grouping (tool includes server; hour and day exclude each other)"
                ),
            ));
        }
        groups.push(group);
        names.push(name.to_owned());
    }
    Ok((groups, names))
}

fn time(field: &str, text: Option<&str>, default: i64) -> ApiResult<i64> {
    match text {
        None => Ok(default),
        Some(text) => parse_time(text).ok_or_else(|| {
            ApiError::invalid(
                field,
                format!("{field} {text:?} is not a time: write Unix seconds, 2026-12-01 or 2026-12-01T10:00:00Z"),
            )
        }),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

async fn quotas(state: &AdminState, tenant: &TenantId) -> ApiResult<QuotasView> {
    let Some(tenant_row) = state.store().get_tenant(tenant).await? else {
        return Err(ApiError::not_found("tenant", tenant));
    };
    let Some(quotas) = tenant_row.settings.quotas else {
        return Ok(QuotasView::default());
    };
    let at = now();
    let mut view = QuotasView::default();
    for period in [Period::Day, Period::Month] {
        let Some(limit) = period.limit(&quotas) else {
            continue;
        };
        let used = match state.0.hooks.quota_used(tenant, None, period) {
            Some(used) => used,
            None => {
                state
                    .store()
                    .usage_calls_since(tenant, None, period.start(at))
                    .await?
            }
        };
        let quota = QuotaView {
            limit,
            used,
            resets_at: format_time(period.end(at)),
        };
        match period {
            Period::Day => view.calls_per_day = Some(quota),
            Period::Month => view.calls_per_month = Some(quota),
        }
    }
    Ok(view)
}

/// Usage of the tenant (owners, admins, platform administrators). Includes this replica's
/// calls up to now; other replicas' within `usage.flush_interval_ms`.
#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/usage", tag = "usage",
    params(("tenant" = String, Path, description = "Tenant id"), UsageQuery),
    responses(
        (status = 200, description = "The report (JSON), or CSV with `format=csv`", body = UsageReport),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 422, description = "Bad range or grouping", body = ErrorBody),
    ),
    security(("bearer" = [])))]
async fn usage(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
    Params(q): Params<UsageQuery>,
) -> ApiResult<Response> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    let at = now();
    let from = hour_start(time("from", q.from.as_deref(), Period::Month.start(at))?);
    let to_raw = time("to", q.to.as_deref(), at)?;
    let to = if to_raw == hour_start(to_raw) {
        to_raw
    } else {
        hour_start(to_raw) + 3_600
    };
    if to <= from {
        return Err(ApiError::invalid("to", "to must be later than from"));
    }
    if to - from > 800 * 86_400 {
        return Err(ApiError::invalid("from", "a report spans at most 800 days"));
    }
    let (groups, names) = groups(q.group_by.as_deref())?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "format",
                format!("format {other:?}: use json or csv"),
            ));
        }
    };
    state.0.hooks.flush_usage().await;
    let rows = state
        .store()
        .tenant(&id)
        .usage_report(from, to, &groups)
        .await?;
    let truncated = rows.len() >= MAX_REPORT_ROWS;
    let views: Vec<UsageRowView> = rows
        .iter()
        .map(|row| view(&groups, &row.group, &row.counters))
        .collect();
    if csv {
        return Ok(csv_response(&id, &groups, &views));
    }
    let report = UsageReport {
        tenant: id.to_string(),
        from: format_time(from),
        to: format_time(to),
        group_by: names,
        rows: views,
        truncated,
        quotas: quotas(&state, &id).await?,
    };
    Ok(Json(report).into_response())
}

fn view(groups: &[UsageGroup], values: &[String], c: &Counters) -> UsageRowView {
    let mut row = UsageRowView {
        user: None,
        key: None,
        server: None,
        kind: None,
        tool: None,
        day: None,
        hour: None,
        calls: c.calls,
        errors: c.errors,
        latency: latency(c),
        bytes_in: c.bytes_in,
        bytes_out: c.bytes_out,
    };
    let mut values = values.iter().cloned();
    let as_time = |v: Option<String>| v.and_then(|v| v.parse::<i64>().ok()).map(format_time);
    for group in groups {
        match group {
            UsageGroup::User => row.user = values.next(),
            UsageGroup::Key => row.key = values.next(),
            UsageGroup::Server => row.server = values.next(),
            UsageGroup::Tool => {
                row.server = values.next();
                row.kind = values.next();
                row.tool = values.next();
            }
            UsageGroup::Day => row.day = as_time(values.next()),
            UsageGroup::Hour => row.hour = as_time(values.next()),
        }
    }
    row
}

/// A CSV field: quoted when needed, and never read as a formula by a spreadsheet.
fn field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn csv_response(tenant: &TenantId, groups: &[UsageGroup], rows: &[UsageRowView]) -> Response {
    let mut header: Vec<&str> = Vec::new();
    for group in groups {
        match group {
            UsageGroup::User => header.push("user"),
            UsageGroup::Key => header.push("key"),
            UsageGroup::Server => header.push("server"),
            UsageGroup::Tool => header.extend(["server", "kind", "tool"]),
            UsageGroup::Day => header.push("day"),
            UsageGroup::Hour => header.push("hour"),
        }
    }
    header.extend([
        "calls",
        "errors",
        "latency_mean_ms",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "latency_max_ms",
        "bytes_in",
        "bytes_out",
    ]);
    let mut out = header.join(",");
    out.push('\n');
    for row in rows {
        let mut cells: Vec<String> = Vec::new();
        for group in groups {
            let pick = |v: &Option<String>| field(v.as_deref().unwrap_or(""));
            match group {
                UsageGroup::User => cells.push(pick(&row.user)),
                UsageGroup::Key => cells.push(pick(&row.key)),
                UsageGroup::Server => cells.push(pick(&row.server)),
                UsageGroup::Tool => {
                    cells.extend([pick(&row.server), pick(&row.kind), pick(&row.tool)])
                }
                UsageGroup::Day => cells.push(pick(&row.day)),
                UsageGroup::Hour => cells.push(pick(&row.hour)),
            }
        }
        let l = &row.latency;
        cells.extend([
            row.calls.to_string(),
            row.errors.to_string(),
            l.mean.to_string(),
            l.p50.to_string(),
            l.p95.to_string(),
            l.p99.to_string(),
            l.max.to_string(),
            row.bytes_in.to_string(),
            row.bytes_out.to_string(),
        ]);
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    let mut response = out.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) =
        HeaderValue::from_str(&format!("attachment; filename=\"usage-{tenant}.csv\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("-1"), "'-1");
    }

    #[test]
    fn groupings_are_checked() {
        assert_eq!(groups(Some("user, tool")).unwrap().1, vec!["user", "tool"]);
        assert!(groups(Some("")).unwrap().0.is_empty());
        for bad in ["colour", "user,user", "server,tool", "day,hour"] {
            assert_eq!(groups(Some(bad)).unwrap_err().status(), 422, "{bad}");
        }
    }
}
