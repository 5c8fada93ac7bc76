//! Errors of the data plane and how each one reaches an MCP client.
//!
//! Every failure is converted exactly once, at the edge, into a JSON-RPC error whose code says
//! what kind of failure it is and whose message names the server involved and what to do.

use std::time::Duration;

use rmcp::ErrorData;
use rmcp::model::ErrorCode;
use switchboard_domain::CursorError;

/// JSON-RPC codes Switchboard adds in the implementation-defined server-error range
/// (-32000..-32099). Documented in `docs/errors.md`.
pub mod codes {
    /// The upstream serving this item is down or unreachable.
    pub const UPSTREAM_UNAVAILABLE: i32 = -32010;
    /// The upstream did not answer in time.
    pub const UPSTREAM_TIMEOUT: i32 = -32011;
    /// A server-to-client request (sampling, elicitation, roots) could not be bridged to the
    /// calling client (e.g. shared upstream connection or a stateless client).
    pub const CANNOT_BRIDGE: i32 = -32012;
    /// An upstream needs a secret that neither the caller nor the tenant has set.
    pub const MISSING_SECRET: i32 = -32013;
    /// No valid credential (HTTP 401).
    pub const UNAUTHENTICATED: i32 = -32020;
    /// A valid credential that may not do this: another tenant's endpoint, a suspended
    /// tenant, not a member, missing scope (HTTP 403).
    pub const FORBIDDEN: i32 = -32021;
    /// The named tenant does not exist (HTTP 404).
    pub const UNKNOWN_TENANT: i32 = -32022;
    /// The request names its tenant wrongly: invalid id, conflicting names (HTTP 400).
    pub const BAD_TENANT: i32 = -32023;
    /// Credentials cannot be checked right now, e.g. an issuer's keys are unreachable (503).
    pub const AUTH_UNAVAILABLE: i32 = -32024;
    /// Too many sessions for this user or tenant (HTTP 429).
    pub const TOO_MANY_SESSIONS: i32 = -32025;
    /// A rate limit refused the request; `data.retryAfterMs` says when to retry (HTTP 429).
    pub const RATE_LIMITED: i32 = -32026;
    /// Rate limits cannot be checked (the shared store is down; fail closed, HTTP 503).
    pub const LIMITS_UNAVAILABLE: i32 = -32027;
    /// The audit log cannot keep up (its backlog stayed full); nothing unaudited runs (503).
    pub const AUDIT_BUSY: i32 = -32028;
    /// A daily or monthly call quota is used up (tenant or API key); `data` says which and
    /// when it resets.
    pub const QUOTA_EXHAUSTED: i32 = -32029;
}

/// A data-plane failure.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("unknown tool {0:?}; call tools/list for the available tools")]
    UnknownTool(String),
    #[error("unknown prompt {0:?}; call prompts/list for the available prompts")]
    UnknownPrompt(String),
    #[error("unknown resource {0:?}; call resources/list or resources/templates/list")]
    UnknownResource(String),
    #[error(transparent)]
    Cursor(#[from] CursorError),
    #[error("upstream {server:?} is unavailable: {reason}")]
    Unavailable { server: String, reason: String },
    #[error("upstream {server:?} did not answer within {timeout:?}")]
    Timeout { server: String, timeout: Duration },
    #[error("upstream {server:?} answered with an unexpected result type for {method}")]
    UnexpectedResult {
        server: String,
        method: &'static str,
    },
    #[error("request cancelled by the client")]
    Cancelled,
    #[error("the request carries no authenticated caller")]
    Unauthenticated,
    /// A rate limit refused the call.
    #[error("rate limit exceeded: this {scope} limit is {rate}; retry in {} s", retry_after.as_millis().div_ceil(1000).max(1))]
    RateLimited {
        /// Which limit: `tool`, `user`, `tenant`, `key`, `address`.
        scope: &'static str,
        /// The limit, e.g. `60/min`.
        rate: String,
        retry_after: Duration,
    },
    /// Rate limits could not be checked; the call is refused (fail closed).
    #[error("{0}")]
    LimitsUnavailable(String),
    /// A call quota is used up.
    #[error("{message}")]
    QuotaExhausted {
        message: String,
        /// `tenant` or `key`.
        scope: &'static str,
        /// `day` or `month`.
        period: &'static str,
        limit: u64,
        /// Unix seconds.
        resets_at: i64,
    },
    /// A per-tenant upstream needs a secret that neither the caller nor the tenant has set.
    #[error(
        "upstream {server:?} needs the secret {secret:?}, which neither you nor your tenant has set; set your own with `switchboard admin secrets set {secret} --mine` (PUT /admin/v1/me/secrets/{secret}) or ask a tenant admin to set the tenant's"
    )]
    MissingSecret { server: String, secret: String },
    /// An error the upstream itself returned: passed through unchanged.
    #[error("{0:?}")]
    Upstream(ErrorData),
}

impl From<GatewayError> for ErrorData {
    fn from(err: GatewayError) -> Self {
        let message = err.to_string();
        match err {
            GatewayError::UnknownTool(_) | GatewayError::UnknownPrompt(_) => {
                ErrorData::invalid_params(message, None)
            }
            GatewayError::UnknownResource(_) => ErrorData::resource_not_found(message, None),
            GatewayError::Cursor(_) => ErrorData::invalid_params(message, None),
            GatewayError::Unavailable { .. } | GatewayError::UnexpectedResult { .. } => {
                ErrorData::new(ErrorCode(codes::UPSTREAM_UNAVAILABLE), message, None)
            }
            GatewayError::Timeout { .. } => {
                ErrorData::new(ErrorCode(codes::UPSTREAM_TIMEOUT), message, None)
            }
            GatewayError::Cancelled => ErrorData::new(ErrorCode::INTERNAL_ERROR, message, None),
            GatewayError::Unauthenticated => {
                ErrorData::new(ErrorCode(codes::UNAUTHENTICATED), message, None)
            }
            GatewayError::RateLimited {
                scope, retry_after, ..
            } => {
                let data = serde_json::json!({
                    "limit": scope,
                    "retryAfterMs": u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX),
                });
                ErrorData::new(ErrorCode(codes::RATE_LIMITED), message, Some(data))
            }
            GatewayError::LimitsUnavailable(_) => {
                ErrorData::new(ErrorCode(codes::LIMITS_UNAVAILABLE), message, None)
            }
            GatewayError::QuotaExhausted {
                scope,
                period,
                limit,
                resets_at,
                ..
            } => {
                let data = serde_json::json!({
                    "quota": scope,
                    "period": period,
                    "limit": limit,
                    "resetsAt": resets_at,
                });
                ErrorData::new(ErrorCode(codes::QUOTA_EXHAUSTED), message, Some(data))
            }
            GatewayError::MissingSecret { server, secret } => {
                let data = serde_json::json!({ "server": server, "secret": secret });
                ErrorData::new(ErrorCode(codes::MISSING_SECRET), message, Some(data))
            }
            GatewayError::Upstream(data) => data,
        }
    }
}

/// Converts an rmcp client error from upstream `server` into a gateway error.
pub(crate) fn from_service_error(
    server: &str,
    timeout: Duration,
    err: rmcp::ServiceError,
) -> GatewayError {
    match err {
        rmcp::ServiceError::McpError(data) => GatewayError::Upstream(data),
        rmcp::ServiceError::Timeout { .. } => GatewayError::Timeout {
            server: server.to_owned(),
            timeout,
        },
        rmcp::ServiceError::Cancelled { .. } => GatewayError::Cancelled,
        other => GatewayError::Unavailable {
            server: server.to_owned(),
            reason: other.to_string(),
        },
    }
}
