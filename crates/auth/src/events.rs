//! Where refused requests are reported: every authentication failure and every cross-tenant
//! attempt, with the endpoint and the credential's public id — never the credential. The
//! governance layer's audit log implements [`AuthEventSink`]; until then they go to the log.

use crate::error::AuthError;

/// One refused request.
#[derive(Debug)]
pub struct Refusal<'a> {
    pub error: &'a AuthError,
    /// The endpoint URI the request was for.
    pub resource: &'a str,
    /// The API key's public id, when the credential was one.
    pub key_id: Option<&'a str>,
}

/// Receives refusals.
pub trait AuthEventSink: Send + Sync {
    fn refused(&self, refusal: &Refusal<'_>);
}

/// The default sink: cross-tenant attempts at `warn`, other refusals at `debug`.
pub struct LogAuthEvents;

impl AuthEventSink for LogAuthEvents {
    fn refused(&self, r: &Refusal<'_>) {
        if r.error.is_cross_tenant() {
            tracing::warn!(reason = %r.error, resource = r.resource, key = r.key_id.unwrap_or(""), "cross-tenant attempt refused");
        } else {
            tracing::debug!(reason = %r.error, resource = r.resource, key = r.key_id.unwrap_or(""), "request not authenticated");
        }
    }
}
