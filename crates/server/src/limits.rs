//! Rate limits at the HTTP edge and on each tool call.
//!
//! Two layers around the MCP endpoints: before authentication, the platform-wide limit per
//! client address (so floods of bad credentials are cut before any verification); after it,
//! the tenant's limits on the tenant, the user, the credential and the address. With Redis
//! the address limit moves into the second layer's round trip (see
//! [`limit_address_or_defer`]). An admitted
//! response carries `RateLimit-Limit`/`-Remaining`/`-Reset` and `RateLimit-Policy` for the
//! limit closest to refusing; a refusal is HTTP 429 with `Retry-After` and a JSON-RPC error
//! (`-32026`, `data.retryAfterMs`). Tool calls are limited inside the MCP stream by
//! [`ToolGate`], whose refusal is the call's JSON-RPC error. When the shared store is down and
//! the limiter fails closed, requests get 503 (`-32027`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use futures::future::BoxFuture;
use serde_json::json;
use switchboard_domain::limits::LimitScope;
use switchboard_governance::{LimitError, Limiter, Meter, Outcome, QuotaError};
use switchboard_mcp::error::{GatewayError, codes};
use switchboard_mcp::{CallGate, Caller};

use crate::authn::client_ip;
use crate::reply;

/// Before authentication: the platform-wide limit per client address. On the admin API and
/// the token endpoint, which have no limits of their own after authentication.
pub async fn limit_address(
    State(limiter): State<Arc<Limiter>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(address) = client_ip(&request) else {
        return next.run(request).await;
    };
    answer(limiter.check_address(address).await, request, next).await
}

/// The platform-wide address limit on the MCP endpoints: decided before authentication, or —
/// when the limiter defers it ([`Limiter::defers_address`], with Redis) — together with the
/// caller's limits in [`limit_request`], one round trip for both. A request refused before
/// its limits were decided (a bad credential) is charged here, after the refusal, and gets
/// 429 instead of 401 once its address is out of budget, as when decided first.
pub async fn limit_address_or_defer(
    State(limiter): State<Arc<Limiter>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(address) = client_ip(&request) else {
        return next.run(request).await;
    };
    if !limiter.defers_address() {
        return answer(limiter.check_address(address).await, request, next).await;
    }
    let shape = reply::Shape::of(&request);
    request.extensions_mut().insert(DeferredAddress(address));
    let response = next.run(request).await;
    if response.extensions().get::<AddressCharged>().is_some() {
        return response;
    }
    match limiter.check_address(address).await {
        Ok(Some(outcome)) if !outcome.allowed() => too_many(&outcome, shape),
        Ok(_) => response,
        Err(err) => reply::unavailable(shape, codes::LIMITS_UNAVAILABLE, &err.to_string()),
    }
}

/// On a request whose platform-wide address limit is left to [`limit_request`].
#[derive(Debug, Clone, Copy)]
struct DeferredAddress(IpAddr);

/// On a response whose request was charged its deferred address limit.
#[derive(Debug, Clone, Copy)]
struct AddressCharged;

/// After authentication: the caller's tenant, user, credential and address limits (and the
/// platform-wide address limit, when deferred to here).
pub async fn limit_request(
    State(limiter): State<Arc<Limiter>>,
    mut request: Request,
    next: Next,
) -> Response {
    let deferred = request
        .extensions_mut()
        .remove::<DeferredAddress>()
        .map(|d| d.0);
    let decided = match request.extensions().get::<Arc<Caller>>().cloned() {
        Some(caller) => {
            let address = client_ip(&request);
            limiter
                .check_request(&caller.limits, &caller.principal, address, deferred)
                .await
        }
        None => match deferred {
            Some(address) => limiter.check_address(address).await,
            None => return next.run(request).await,
        },
    };
    if let (Some(address), Ok(Some(outcome))) = (deferred, &decided)
        && !outcome.allowed()
    {
        // Refused together, nothing was charged — but every request counts against its
        // address, as when the address is decided first: a caller over its own limit must
        // not be able to send without end. A GCRA refusal charges nothing, so this costs
        // no budget when the address itself refused.
        if let Err(err) = limiter.check_address(address).await {
            tracing::debug!(error = %err, "address not charged for a refused request");
        }
    }
    let mut response = answer(decided, request, next).await;
    if deferred.is_some() {
        response.extensions_mut().insert(AddressCharged);
    }
    response
}

async fn answer(
    decided: Result<Option<Outcome>, LimitError>,
    request: Request,
    next: Next,
) -> Response {
    let shape = reply::Shape::of(&request);
    match decided {
        Ok(None) => next.run(request).await,
        Ok(Some(outcome)) if outcome.allowed() => {
            let mut response = next.run(request).await;
            // An inner layer's (more specific) figures win.
            if !response.headers().contains_key("ratelimit-limit") {
                describe(response.headers_mut(), &outcome);
            }
            response
        }
        Ok(Some(outcome)) => too_many(&outcome, shape),
        Err(err) => reply::unavailable(shape, codes::LIMITS_UNAVAILABLE, &err.to_string()),
    }
}

/// `RateLimit-*` headers (draft-ietf-httpapi-ratelimit-headers) for `outcome`.
fn describe(headers: &mut HeaderMap, outcome: &Outcome) {
    let period = outcome.rate.period_us() / 1_000_000;
    let count = outcome.rate.count();
    // Numbers straight into header values (this runs per request); only the policy is text.
    headers.insert("ratelimit-limit", HeaderValue::from(count));
    let remaining = HeaderValue::from(outcome.verdict.remaining);
    headers.insert("ratelimit-remaining", remaining);
    headers.insert("ratelimit-reset", HeaderValue::from(outcome.reset_secs()));
    if let Ok(policy) = HeaderValue::from_str(&format!("{count};w={period}")) {
        headers.insert("ratelimit-policy", policy);
    }
}

/// What a client reads in a refusal: which limit, and when to retry.
fn refusal_message(outcome: &Outcome) -> String {
    let whose = match outcome.scope {
        LimitScope::Tenant => "this tenant's",
        LimitScope::User => "your",
        LimitScope::Key => "this credential's",
        LimitScope::Address => "this client address's",
        LimitScope::Tool => "this tool's",
    };
    format!(
        "rate limit exceeded: {whose} {} limit is {}; retry in {} s",
        outcome.scope.as_str(),
        outcome.rate,
        outcome.retry_after_secs()
    )
}

fn too_many(outcome: &Outcome, shape: reply::Shape) -> Response {
    let retry_ms = outcome.verdict.retry_after_us.div_ceil(1000);
    let data = json!({"limit": outcome.scope.as_str(), "retryAfterMs": retry_ms});
    let mut response = reply::refusal(
        shape,
        StatusCode::TOO_MANY_REQUESTS,
        codes::RATE_LIMITED,
        &refusal_message(outcome),
        Some(data),
    );
    let headers = response.headers_mut();
    describe(headers, outcome);
    headers.insert(header::RETRY_AFTER, outcome.retry_after_secs().into());
    response
}

/// Asked by the MCP handler before a call goes upstream: the per-tool rate limit, then the
/// tenant's and the key's call quotas (a call refused by the limit is not counted against
/// a quota).
pub struct ToolGate {
    pub limiter: Arc<Limiter>,
    pub meter: Option<Arc<Meter>>,
}

impl CallGate for ToolGate {
    fn admit<'a>(
        &'a self,
        caller: &'a Caller,
        tool: &'a str,
    ) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(async move {
            match self
                .limiter
                .check_tool(&caller.limits, caller.tenant(), tool)
                .await
            {
                Ok(Some(outcome)) if !outcome.allowed() => {
                    return Err(GatewayError::RateLimited {
                        scope: outcome.scope.as_str(),
                        rate: outcome.rate.to_string(),
                        retry_after: Duration::from_micros(outcome.verdict.retry_after_us),
                    });
                }
                Ok(_) => {}
                Err(err) => return Err(GatewayError::LimitsUnavailable(err.to_string())),
            }
            let Some(meter) = &self.meter else {
                return Ok(());
            };
            if caller.quotas.is_none() && caller.key_quotas.is_none() {
                return Ok(());
            }
            meter
                .admit(
                    caller.tenant(),
                    &caller.principal.credential.id,
                    caller.quotas.as_ref(),
                    caller.key_quotas.as_ref(),
                )
                .await
                .map_err(|err| match err {
                    QuotaError::Exceeded {
                        scope,
                        period,
                        limit,
                        resets_at,
                    } => GatewayError::QuotaExhausted {
                        message: err.to_string(),
                        scope: scope.as_str(),
                        period: period.as_str(),
                        limit,
                        resets_at,
                    },
                    QuotaError::Unavailable(_) => GatewayError::LimitsUnavailable(err.to_string()),
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use switchboard_domain::limits::{Rate, Verdict};

    use super::*;

    fn refused(scope: LimitScope) -> Outcome {
        Outcome {
            scope,
            rate: "100/min".parse::<Rate>().unwrap(),
            verdict: Verdict {
                allowed: false,
                remaining: 0,
                reset_us: 60_000_000,
                retry_after_us: 1_200_001,
            },
        }
    }

    #[test]
    fn a_refusal_says_which_limit_and_when() {
        let message = refusal_message(&refused(LimitScope::User));
        assert_eq!(
            message,
            "rate limit exceeded: your user limit is 100/min; retry in 2 s"
        );
        for shape in [reply::Shape::JsonRpc, reply::Shape::Admin] {
            let response = too_many(&refused(LimitScope::Tenant), shape);
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            let headers = response.headers();
            assert_eq!(headers[header::RETRY_AFTER], "2");
            assert_eq!(headers["ratelimit-limit"], "100");
            assert_eq!(headers["ratelimit-remaining"], "0");
            assert_eq!(headers["ratelimit-reset"], "60");
            assert_eq!(headers["ratelimit-policy"], "100;w=60");
        }
    }

    #[tokio::test]
    async fn admin_refusals_use_the_admin_error_shape() {
        use http_body_util_free::body_json;
        let admin = too_many(&refused(LimitScope::Address), reply::Shape::Admin);
        let body = body_json(admin).await;
        assert_eq!(body["error"]["code"], "rate_limited");
        assert!(body.get("jsonrpc").is_none());
        let mcp = too_many(&refused(LimitScope::Address), reply::Shape::JsonRpc);
        let body = body_json(mcp).await;
        assert_eq!(body["error"]["code"], codes::RATE_LIMITED);
        assert_eq!(body["jsonrpc"], "2.0");
    }

    mod http_body_util_free {
        pub async fn body_json(response: axum::response::Response) -> serde_json::Value {
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            serde_json::from_slice(&bytes).unwrap()
        }
    }
}
