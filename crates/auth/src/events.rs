//! Where refused requests are reported: every authentication failure and every cross-tenant
//! attempt, with the endpoint and the credential's public id — never the credential. The
//! governance layer's audit log implements [`AuthEventSink`]; until then they go to the log.

use std::net::IpAddr;

use switchboard_domain::tenancy::TenantId;

use crate::error::AuthError;

/// One refused request.
#[derive(Debug)]
pub struct Refusal<'a> {
    pub error: &'a AuthError,
    /// The existing tenant the request named (path, `X-Tenant-ID`), if any: a cross-tenant
    /// attempt is reported to the tenant that was targeted.
    pub tenant: Option<TenantId>,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
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
