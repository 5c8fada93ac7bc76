//! Who is calling, and what they may see: the principal of one request with its tenant's
//! policy, and the sink every authorization decision is handed to.
//!
//! The server's authentication layer puts an `Arc<Caller>` into the HTTP request's
//! extensions; rmcp hands those to the handler with every message, so each request is
//! decided with the credential it carries right now (a revoked grant stops working at once,
//! even inside an open session).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rmcp::ErrorData;
use serde_json::{Map, Value};
use switchboard_domain::UpstreamDef;
use switchboard_domain::limits::RateLimits;
use switchboard_domain::tenancy::{
    Decision, Item, ItemKind, Policy, Principal, Quotas, Reason, TenantId,
};

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Arc<Principal>,
    pub policy: Arc<Policy>,
    /// The tenant's cap on legacy sessions per user (`maxSessionsPerUser`).
    pub max_sessions_per_user: Option<u32>,
    /// The tenant's cap on legacy sessions.
    pub max_sessions: Option<u32>,
    /// The tenant's rate limits (its settings over its plan's defaults); none in open mode.
    pub limits: RateLimits,
    /// The tenant's call quotas.
    pub quotas: Option<Quotas>,
    /// The API key's own call quotas, when the credential is a key that has some.
    pub key_quotas: Option<Quotas>,
}

impl Caller {
    /// The anonymous owner of the built-in `default` tenant: a gateway with no tenants, and
    /// the local stdio bridge.
    pub fn open() -> Self {
        Self {
            principal: Arc::new(Principal::anonymous()),
            policy: Arc::new(Policy::new(
                TenantId::default_tenant(),
                Vec::new(),
                Vec::new(),
            )),
            max_sessions_per_user: None,
            max_sessions: None,
            limits: RateLimits::default(),
            quotas: None,
            key_quotas: None,
        }
    }

    /// The caller's tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.principal.tenant
    }

    /// May the caller list/use `name` (the upstream's own name) of `upstream`?
    pub fn decide(
        &self,
        upstream: &UpstreamDef,
        kind: ItemKind,
        name: &str,
        arguments: Option<&Map<String, Value>>,
    ) -> Decision {
        if !upstream.available_to(&self.principal.tenant) {
            return Decision::unavailable();
        }
        self.policy.decide(
            &self.principal,
            Item {
                kind,
                server: upstream.name.as_str(),
                name,
                arguments,
            },
        )
    }
}

/// Where a request came from, as far as the HTTP layer saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientFacts {
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header (at most 256 characters).
    pub user_agent: Option<String>,
}

impl ClientFacts {
    /// The facts of the HTTP request rmcp handed to the handler (none for stdio).
    pub fn of(extensions: &rmcp::model::Extensions) -> Self {
        let Some(parts) = extensions.get::<http::request::Parts>() else {
            return Self::default();
        };
        Self {
            ip: parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip()),
            user_agent: parts
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(256).collect()),
        }
    }
}

/// One authorization decision about a call (listing decisions are not recorded one by one).
#[derive(Debug)]
pub struct DecisionRecord<'a> {
    pub principal: &'a Principal,
    pub kind: ItemKind,
    pub server: &'a str,
    /// The item's upstream name (a resource's URI), cut to
    /// [`switchboard_domain::names::MAX_RECORDED_NAME`] characters.
    pub name: &'a str,
    pub decision: &'a Decision,
    pub client: &'a ClientFacts,
}

/// One allowed call that went upstream, once its answer (or failure) is known.
#[derive(Debug)]
pub struct CallRecord<'a> {
    pub principal: &'a Principal,
    pub kind: ItemKind,
    pub server: &'a str,
    /// The item's upstream name (a resource's URI), cut to
    /// [`switchboard_domain::names::MAX_RECORDED_NAME`] characters.
    pub name: &'a str,
    /// Why the call was allowed.
    pub reason: &'a Reason,
    /// SHA-256 (hex, first 16 bytes) of the call's arguments as sent: identifies them without
    /// storing them.
    pub arguments_digest: Option<String>,
    /// The JSON-RPC error the caller got, if any.
    pub error: Option<&'a ErrorData>,
    /// A tool result flagged `isError` (the call worked; the tool reported a failure).
    pub tool_error: bool,
    pub latency: Duration,
    pub client: &'a ClientFacts,
    /// Whether the call went upstream (a gate's refusal — rate limit, quota — did not).
    pub reached: bool,
    /// Size of the arguments sent upstream (serialized JSON).
    pub bytes_in: u64,
    /// Size of the result returned (serialized JSON); 0 for an error.
    pub bytes_out: u64,
    /// The gateway's span of the call, when span export is on and the call is sampled.
    pub span: Option<&'a crate::span::CallSpan>,
}

/// Receives every call decision and every completed call; the governance layer's audit log
/// implements it.
pub trait DecisionSink: Send + Sync {
    fn record(&self, record: &DecisionRecord<'_>);

    /// A call that was allowed has finished.
    fn completed(&self, record: &CallRecord<'_>) {
        let _ = record;
    }
}

/// The digest recorded for a call's arguments, and their size in bytes.
pub fn arguments_digest(arguments: &Map<String, Value>) -> (String, u64) {
    use sha2::{Digest, Sha256};
    let text = serde_json::to_string(arguments).unwrap_or_default();
    let digest = switchboard_domain::audit::to_hex(&Sha256::digest(text.as_bytes())[..16]);
    (digest, text.len() as u64)
}

/// The size of a value serialized as JSON, counted without building the text.
pub fn json_size<T: serde::Serialize>(value: &T) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).map_or(0, |()| count.0)
}

/// The default sink: denials at `info`, allows at `debug`, in the gateway's log.
pub struct LogDecisions;

impl DecisionSink for LogDecisions {
    fn record(&self, r: &DecisionRecord<'_>) {
        if r.decision.allowed {
            tracing::debug!(tenant = %r.principal.tenant, principal = %r.principal.identity, kind = r.kind.as_str(), server = r.server, name = r.name, reason = %r.decision.reason, "allowed");
        } else {
            tracing::info!(tenant = %r.principal.tenant, principal = %r.principal.identity, credential = %r.principal.credential.id, kind = r.kind.as_str(), server = r.server, name = r.name, reason = %r.decision.reason, "denied");
        }
    }

    fn completed(&self, r: &CallRecord<'_>) {
        tracing::debug!(tenant = %r.principal.tenant, principal = %r.principal.identity, kind = r.kind.as_str(), server = r.server, name = r.name, ok = r.error.is_none(), latency_ms = r.latency.as_secs_f64() * 1000.0, "call completed");
    }
}

/// Admits or refuses each tool call before it goes upstream; the governance layer's rate
/// limiter implements it.
pub trait CallGate: Send + Sync {
    /// `Ok` to go ahead; an error ([`GatewayError::RateLimited`],
    /// [`GatewayError::LimitsUnavailable`]) is the call's answer.
    ///
    /// [`GatewayError::RateLimited`]: crate::error::GatewayError::RateLimited
    /// [`GatewayError::LimitsUnavailable`]: crate::error::GatewayError::LimitsUnavailable
    fn admit<'a>(
        &'a self,
        caller: &'a Caller,
        tool: &'a str,
    ) -> BoxFuture<'a, Result<(), crate::error::GatewayError>>;
}
