//! The audit trail through the admin API: search a tenant's chain (filters, cursor, newest
//! first), export it as JSON lines for a SIEM (streamed, the whole match), and verify it end
//! to end. The platform chain (events without a tenant) is for platform administrators.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_domain::audit::{AuditKind, PLATFORM_CHAIN};
use switchboard_domain::usage::parse_time;
use switchboard_store::AuditFilter;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::path_tenant;
use crate::AdminState;
use crate::access::{Admin, Need};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Params;
use crate::page::{self, PageQuery};

pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(tenant_audit))
        .routes(routes!(tenant_audit_verify))
        .routes(routes!(platform_audit))
}

/// Filters, order, paging and format of an audit search.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// From (inclusive): Unix seconds, RFC 3339 or `YYYY-MM-DD`.
    from: Option<String>,
    /// To (exclusive), same forms.
    to: Option<String>,
    /// `auth.refused`, `auth.cross_tenant`, `decision`, `call`, `admin.change`.
    kind: Option<String>,
    /// Exact actor: `user:ada@acme.com`, `client:ci`, `platform-admin`.
    actor: Option<String>,
    /// Exact outcome: `allowed`, `denied`, `ok`, `error`, `refused`.
    outcome: Option<String>,
    /// `desc` (newest first, default) or `asc`.
    order: Option<String>,
    /// Records per page, 1–1000 (default 100); not for `jsonl`.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
    /// `json` (default, one page) or `jsonl` (every matching record, oldest first, streamed).
    format: Option<String>,
}

/// One page of audit records (each as exported: `tenant`, `seq`, `at_ms`, `kind`, `actor`,
/// `credential`, `target`, `outcome`, `reason`, `detail`, `prev_hash`, `hash`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The result of checking a chain end to end.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditVerification {
    pub chain: String,
    pub intact: bool,
    /// Records checked (when intact).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<i64>,
    /// What is broken, naming the record (when not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

fn millis(field: &str, text: Option<&str>) -> ApiResult<Option<i64>> {
    text.map(|t| {
        parse_time(t).map(|secs| secs.saturating_mul(1000)).ok_or_else(|| {
            ApiError::invalid(field, format!("{field} {t:?} is not a time: write Unix seconds, 2026-12-01 or 2026-12-01T10:00:00Z"))
        })
    })
    .transpose()
}

fn filter(q: &AuditQuery) -> ApiResult<AuditFilter> {
    let kind = q
        .kind
        .as_deref()
        .map(|k| {
            AuditKind::parse(k).ok_or_else(|| {
                ApiError::invalid("kind", format!("kind {k:?}: use auth.refused, auth.cross_tenant, decision, call or admin.change"))
            })
        })
        .transpose()?;
    let ascending = match q.order.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "order",
                format!("order {other:?}: use asc or desc"),
            ));
        }
    };
    Ok(AuditFilter {
        from_ms: millis("from", q.from.as_deref())?,
        to_ms: millis("to", q.to.as_deref())?,
        kind,
        actor: q.actor.clone(),
        outcome: q.outcome.clone(),
        after_seq: None,
        before_seq: None,
        ascending,
    })
}

async fn search(state: &AdminState, chain: String, q: AuditQuery) -> ApiResult<Response> {
    let mut filter = filter(&q)?;
    match q.format.as_deref() {
        None | Some("json") => {}
        Some("jsonl") => return Ok(export(state.clone(), chain, filter)),
        Some(other) => {
            return Err(ApiError::invalid(
                "format",
                format!("format {other:?}: use json or jsonl"),
            ));
        }
    }
    let paging = PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let limit = paging.limit()?;
    if let Some(after) = paging.after()? {
        let seq: i64 = after.parse().map_err(|_| {
            ApiError::bad_request("the cursor is not one this API returned; start over without it")
        })?;
        if filter.ascending {
            filter.after_seq = Some(seq);
        } else {
            filter.before_seq = Some(seq);
        }
    }
    let mut records = state
        .store()
        .audit_search(&chain, &filter, i64::from(limit) + 1)
        .await?;
    let next = if records.len() > limit as usize {
        records.truncate(limit as usize);
        records.last().map(|r| page::encode(&r.seq.to_string()))
    } else {
        None
    };
    Ok(Json(AuditPage {
        items: records.iter().map(|r| r.to_json()).collect(),
        next_cursor: next,
    })
    .into_response())
}

/// Every matching record, oldest first, as JSON lines, read from the store a page at a time
/// while the client consumes them.
fn export(state: AdminState, chain: String, mut filter: AuditFilter) -> Response {
    filter.ascending = true;
    let filename = format!("attachment; filename=\"audit-{chain}.jsonl\"");
    let pages = futures::stream::unfold(Some(0i64), move |after| {
        let (state, chain, mut filter) = (state.clone(), chain.clone(), filter.clone());
        async move {
            let after = after?;
            filter.after_seq = Some(after);
            match state.store().audit_search(&chain, &filter, 1000).await {
                Ok(records) if records.is_empty() => None,
                Ok(records) => {
                    let next = records.last().map(|r| r.seq);
                    let mut text = String::new();
                    for record in &records {
                        text.push_str(&record.to_json().to_string());
                        text.push('\n');
                    }
                    let more = (records.len() == 1000).then_some(next).flatten();
                    Some((Ok::<_, std::io::Error>(text), more))
                }
                Err(err) => Some((Err(std::io::Error::other(err.to_string())), None)),
            }
        }
    });
    let mut response = Body::from_stream(pages.boxed()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    if let Ok(value) = HeaderValue::from_str(&filename) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// The tenant's audit trail: logins refused, cross-tenant attempts, decisions, calls and
/// admin changes (owners, admins, platform administrators).
#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/audit", tag = "audit",
    params(("tenant" = String, Path, description = "Tenant id"), AuditQuery),
    responses(
        (status = 200, description = "One page (JSON), or every match as JSON lines with `format=jsonl`", body = AuditPage),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 422, description = "A bad filter", body = ErrorBody),
    ),
    security(("bearer" = [])))]
async fn tenant_audit(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
    Params(q): Params<AuditQuery>,
) -> ApiResult<Response> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    if state.store().get_tenant(&id).await?.is_none() {
        return Err(ApiError::not_found("tenant", &id));
    }
    search(&state, id.to_string(), q).await
}

/// Checks the tenant's chain end to end: an edited, deleted or reordered record is named.
#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/audit/verify", tag = "audit",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "Intact, or what is broken", body = AuditVerification),
              (status = 404, description = "No such tenant", body = ErrorBody)),
    security(("bearer" = [])))]
async fn tenant_audit_verify(
    admin: Admin,
    State(state): State<AdminState>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<AuditVerification>> {
    let id = path_tenant(&tenant)?;
    admin.check(&id, Need::Manage)?;
    let verdict = state.store().verify_audit(id.as_str()).await?;
    Ok(Json(match verdict {
        Ok(records) => AuditVerification {
            chain: id.to_string(),
            intact: true,
            records: Some(records),
            problem: None,
        },
        Err(broken) => AuditVerification {
            chain: id.to_string(),
            intact: false,
            records: None,
            problem: Some(broken.to_string()),
        },
    }))
}

/// The platform chain: events of no tenant (refused credentials naming no tenant, refused
/// platform tokens). Platform administrators only.
#[utoipa::path(get, path = "/admin/v1/platform/audit", tag = "audit",
    params(AuditQuery),
    responses((status = 200, description = "One page, or JSON lines", body = AuditPage),
              (status = 403, description = "Not a platform administrator", body = ErrorBody)),
    security(("bearer" = [])))]
async fn platform_audit(
    admin: Admin,
    State(state): State<AdminState>,
    Params(q): Params<AuditQuery>,
) -> ApiResult<Response> {
    admin.platform_only(None, "read the platform audit chain")?;
    search(&state, PLATFORM_CHAIN.to_owned(), q).await
}
