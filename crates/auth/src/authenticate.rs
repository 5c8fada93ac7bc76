//! From the facts of one request to a principal of exactly one tenant — or a refusal.
//!
//! The tenant a request names (path `/t/{tenant}/…`, `X-Tenant-ID`, the host's subdomain or a
//! tenant domain) and the tenant of its credential must agree; a disagreement is refused and
//! reported as a cross-tenant attempt. With no tenants in the directory the gateway is
//! *open*: every request is the anonymous owner of the built-in `default` tenant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, ArcSwapOption};
use ring::digest::SHA256;
use switchboard_domain::tenancy::{Principal, TenantId};

use crate::api_key::{self, HashingKey};
use crate::error::AuthError;
use crate::events::{AuthEventSink, LogAuthEvents, Refusal};
use crate::issuer::{GatewayIssuer, now};
use crate::jwks::JwksCache;
use crate::jwt;
use crate::snapshot::{Snapshot, TenantEntry};

/// What one request presents.
#[derive(Debug, Default, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// `{tenant}` of a `/t/{tenant}/…` path.
    pub path_tenant: Option<&'a str>,
    /// The `X-Tenant-ID` header.
    pub header_tenant: Option<&'a str>,
    /// The `Host` header without port, lowercase.
    pub host: Option<&'a str>,
    /// The bearer credential (API key or JWT).
    pub bearer: Option<&'a str>,
    /// The full URI of the endpoint (`https://gw.example.com/t/acme/mcp`): an accepted token
    /// audience besides the gateway's base URL.
    pub resource: &'a str,
    /// The client's address (the TCP peer), checked against the tenant's IP allowlist.
    pub client_ip: Option<std::net::IpAddr>,
}

/// An authenticated request.
#[derive(Clone)]
pub struct Authenticated {
    pub principal: Arc<Principal>,
    pub tenant: Arc<TenantEntry>,
}

/// Settings of the authenticator.
#[derive(Debug, Clone)]
pub struct AuthOptions {
    /// The gateway's public base URL (`https://mcp.example.com`): its tokens' issuer and the
    /// default audience.
    pub base_url: String,
    /// Hosts `{tenant}.{subdomain_base}` resolve to `{tenant}`.
    pub subdomain_base: Option<String>,
}

struct CachedToken {
    revision: i64,
    expires_at: i64,
    result: Result<Authenticated, AuthError>,
}

/// Most verified tokens remembered; the cache is cleared when full (a cheap, bounded policy:
/// a refill costs one signature check per token).
const TOKEN_CACHE_MAX: usize = 10_000;

/// Authenticates requests against the current snapshot.
pub struct Authenticator {
    snapshot: ArcSwap<Snapshot>,
    hashing: HashingKey,
    jwks: JwksCache,
    issuer: ArcSwapOption<GatewayIssuer>,
    options: AuthOptions,
    tokens: Mutex<HashMap<[u8; 32], CachedToken>>,
    /// The answer of open mode, built once.
    open: Authenticated,
    events: arc_swap::ArcSwapOption<Arc<dyn AuthEventSink>>,
}

impl Authenticator {
    /// An authenticator with an initial snapshot.
    pub fn new(
        snapshot: Snapshot,
        hashing: HashingKey,
        jwks: JwksCache,
        issuer: Option<GatewayIssuer>,
        options: AuthOptions,
    ) -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            hashing,
            jwks,
            issuer: ArcSwapOption::from(issuer.map(Arc::new)),
            options,
            tokens: Mutex::new(HashMap::new()),
            open: open_principal(),
            events: arc_swap::ArcSwapOption::empty(),
        }
    }

    /// Replaces the snapshot (after a store change); cached tokens are re-checked against it.
    pub fn publish(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }

    /// Replaces the gateway's own issuer (after a key rotation).
    pub fn publish_issuer(&self, issuer: GatewayIssuer) {
        self.issuer.store(Some(Arc::new(issuer)));
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The gateway's own issuer, when configured.
    pub fn issuer(&self) -> Option<Arc<GatewayIssuer>> {
        self.issuer.load_full()
    }

    /// The key-hashing key (for issuing API keys and client secrets).
    pub fn hashing(&self) -> &HashingKey {
        &self.hashing
    }

    /// The settings.
    pub fn options(&self) -> &AuthOptions {
        &self.options
    }

    /// The tenant a request names, if any; conflicting names are refused.
    pub fn requested_tenant(
        &self,
        snapshot: &Snapshot,
        facts: &RequestFacts<'_>,
    ) -> Result<Option<TenantId>, AuthError> {
        let mut named: Option<&str> = None;
        let subdomain = facts.host.and_then(|host| {
            let base = self.options.subdomain_base.as_deref()?;
            host.strip_suffix(base)?.strip_suffix('.')
        });
        let domain = facts
            .host
            .and_then(|h| snapshot.tenant_by_domain(h))
            .map(TenantId::as_str);
        for candidate in [facts.path_tenant, facts.header_tenant, subdomain, domain]
            .into_iter()
            .flatten()
        {
            match named {
                Some(first) if first != candidate => {
                    return Err(AuthError::ConflictingTenants {
                        first: first.chars().take(64).collect(),
                        second: candidate.chars().take(64).collect(),
                    });
                }
                _ => named = Some(candidate),
            }
        }
        named
            .map(|n| TenantId::new(n).map_err(AuthError::InvalidTenant))
            .transpose()
    }

    /// Authenticates one request.
    pub async fn authenticate(&self, facts: &RequestFacts<'_>) -> Result<Authenticated, AuthError> {
        let result = self.decide(facts).await;
        if let Err(error) = &result {
            self.report(error, facts);
        }
        result
    }

    /// Hands a refusal to the event sink (also for refusals decided before authentication,
    /// such as a malformed header).
    pub fn report(&self, error: &AuthError, facts: &RequestFacts<'_>) {
        let key_id = facts
            .bearer
            .and_then(api_key::parse)
            .map(|presented| presented.id);
        let snapshot = self.snapshot();
        let tenant = [facts.path_tenant, facts.header_tenant]
            .into_iter()
            .flatten()
            .find_map(|name| TenantId::new(name).ok())
            .filter(|id| snapshot.tenant(id).is_some());
        let refusal = Refusal {
            error,
            tenant,
            client_ip: facts.client_ip,
            resource: facts.resource,
            key_id,
        };
        match self.events.load().as_deref() {
            Some(sink) => sink.refused(&refusal),
            None => LogAuthEvents.refused(&refusal),
        }
    }

    /// Sets where refusals are reported (replacing the previous sink; the gateway sets its
    /// audit log here at start).
    pub fn set_event_sink(&self, sink: Arc<dyn AuthEventSink>) {
        self.events.store(Some(Arc::new(sink)));
    }

    async fn decide(&self, facts: &RequestFacts<'_>) -> Result<Authenticated, AuthError> {
        let snapshot = self.snapshot.load_full();
        let requested = self.requested_tenant(&snapshot, facts)?;
        if snapshot.is_open() {
            return match requested {
                Some(tenant) if tenant.as_str() != TenantId::DEFAULT => {
                    Err(AuthError::UnknownTenant(tenant.to_string()))
                }
                _ => Ok(self.open.clone()),
            };
        }
        if let Some(tenant) = &requested
            && snapshot.tenant(tenant).is_none()
        {
            return Err(AuthError::UnknownTenant(tenant.to_string()));
        }
        let bearer = facts.bearer.ok_or(AuthError::MissingCredential)?;
        let found = if api_key::looks_like_key(bearer) {
            self.api_key(&snapshot, bearer, facts.client_ip)?
        } else {
            self.token(&snapshot, bearer, requested.as_ref(), facts.resource)
                .await?
        };
        if let Some(requested) = requested
            && requested != found.principal.tenant
        {
            return Err(AuthError::TenantMismatch {
                credential: found.principal.tenant.clone(),
                requested,
            });
        }
        if !found.tenant.tenant.is_usable() {
            return Err(AuthError::Suspended(found.tenant.tenant.id.clone()));
        }
        found.tenant.admits(facts.client_ip)?;
        Ok(found)
    }

    fn api_key(
        &self,
        snapshot: &Snapshot,
        bearer: &str,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<Authenticated, AuthError> {
        let presented = api_key::parse(bearer).ok_or(AuthError::MalformedHeader(
            "the API key is not shaped sb_<id>_<secret>",
        ))?;
        let entry = snapshot.key(presented.id).ok_or(AuthError::UnknownKey)?;
        if !self
            .hashing
            .verify(presented.secret.as_bytes(), &entry.record.hash)
        {
            return Err(AuthError::UnknownKey);
        }
        if entry.record.revoked_at.is_some() {
            return Err(AuthError::RevokedKey(entry.record.id.clone()));
        }
        if entry.record.expires_at.is_some_and(|at| at <= now()) {
            return Err(AuthError::ExpiredKey(entry.record.id.clone()));
        }
        entry.admits(client_ip)?;
        let tenant = snapshot
            .tenant(&entry.record.tenant)
            .ok_or(AuthError::UnknownKey)?
            .clone();
        let principal = entry.principal.clone()?;
        Ok(Authenticated { principal, tenant })
    }

    async fn token(
        &self,
        snapshot: &Snapshot,
        token: &str,
        requested: Option<&TenantId>,
        resource: &str,
    ) -> Result<Authenticated, AuthError> {
        let mut hasher = ring::digest::Context::new(&SHA256);
        hasher.update(token.as_bytes());
        hasher.update(b"\0");
        hasher.update(resource.as_bytes());
        hasher.update(b"\0");
        hasher.update(requested.map(TenantId::as_str).unwrap_or("").as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(hasher.finish().as_ref());
        {
            let cache = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(hit) = cache.get(&key)
                && hit.revision == snapshot.revision
                && hit.expires_at > now()
            {
                return hit.result.clone();
            }
        }
        let (result, expires_at) = self
            .verify_token(snapshot, token, requested, resource)
            .await;
        // Only definite answers are remembered; an unreachable issuer is retried.
        if !matches!(result, Err(AuthError::Unavailable(_))) {
            let mut cache = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= TOKEN_CACHE_MAX {
                cache.clear();
            }
            cache.insert(
                key,
                CachedToken {
                    revision: snapshot.revision,
                    expires_at,
                    result: result.clone(),
                },
            );
        }
        result
    }

    /// Verifies a token; also returns until when the answer may be cached.
    async fn verify_token(
        &self,
        snapshot: &Snapshot,
        token: &str,
        requested: Option<&TenantId>,
        resource: &str,
    ) -> (Result<Authenticated, AuthError>, i64) {
        let peeked = match jwt::peek(token) {
            Ok(p) => p,
            Err(e) => return (Err(e), now() + 60),
        };
        let base = self.options.base_url.as_str();
        let mcp = format!("{base}/mcp");
        let default_audiences = [base, mcp.as_str(), resource];
        let own = self.issuer.load_full();
        let result = match own.as_deref() {
            Some(issuer) if issuer.issuer() == peeked.iss => {
                self.own_token(snapshot, token, &peeked, issuer, &default_audiences)
            }
            _ => {
                self.foreign_token(snapshot, token, &peeked, requested, &default_audiences)
                    .await
            }
        };
        match result {
            Ok((found, exp)) => (Ok(found), exp),
            // A refusal is cached briefly, so a retried bad token costs no signature check.
            Err(e) => (Err(e), now() + 60),
        }
    }

    fn own_token(
        &self,
        snapshot: &Snapshot,
        token: &str,
        peeked: &jwt::Peeked,
        issuer: &GatewayIssuer,
        audiences: &[&str],
    ) -> Result<(Authenticated, i64), AuthError> {
        let key = issuer
            .keys()
            .get(peeked.kid.as_deref())
            .ok_or_else(|| AuthError::InvalidToken("signed with an unknown gateway key".into()))?;
        let claims = jwt::verify(token, peeked, key, audiences)?;
        let entry = tenant_entry(snapshot, &jwt::own_tenant(&claims)?)?;
        let principal = jwt::principal_from_own(&entry, &claims, &peeked.iss)?;
        Ok(verified(principal, entry, &claims))
    }

    async fn foreign_token(
        &self,
        snapshot: &Snapshot,
        token: &str,
        peeked: &jwt::Peeked,
        requested: Option<&TenantId>,
        default_audiences: &[&str],
    ) -> Result<(Authenticated, i64), AuthError> {
        let trusting = snapshot.issuers(&peeked.iss);
        let chosen = match requested {
            Some(tenant) => match trusting.iter().find(|i| &i.config.tenant == tenant) {
                Some(issuer) => issuer,
                None if trusting.len() == 1 => {
                    return Err(AuthError::TenantMismatch {
                        credential: trusting[0].config.tenant.clone(),
                        requested: tenant.clone(),
                    });
                }
                None => return Err(AuthError::UntrustedIssuer(peeked.iss.clone())),
            },
            None => match trusting {
                [] => return Err(AuthError::UntrustedIssuer(peeked.iss.clone())),
                [only] => only,
                _ => return Err(AuthError::AmbiguousTenant(peeked.iss.clone())),
            },
        };
        let key = match (&chosen.static_keys, &chosen.config.jwks_url) {
            (Some(Ok(keys)), _) => keys.get(peeked.kid.as_deref()).cloned().ok_or_else(|| {
                AuthError::InvalidToken("no matching key for the token's kid".into())
            })?,
            (Some(Err(e)), _) => {
                return Err(AuthError::InvalidToken(format!(
                    "the issuer's configured keys are unusable: {e}"
                )));
            }
            (None, Some(url)) => self.jwks.key(url, peeked.kid.as_deref()).await?,
            (None, None) => {
                return Err(AuthError::InvalidToken(
                    "the issuer has neither keys nor a JWKS URL configured".into(),
                ));
            }
        };
        let configured: Vec<&str> = chosen.config.audiences.iter().map(String::as_str).collect();
        let audiences = if configured.is_empty() {
            default_audiences
        } else {
            configured.as_slice()
        };
        let claims = jwt::verify(token, peeked, &key, audiences)?;
        let entry = tenant_entry(snapshot, &chosen.config.tenant)?;
        let principal = jwt::principal_from_issuer(chosen, &entry, &claims)?;
        Ok(verified(principal, entry, &claims))
    }
}

fn tenant_entry(snapshot: &Snapshot, id: &TenantId) -> Result<Arc<TenantEntry>, AuthError> {
    snapshot
        .tenant(id)
        .cloned()
        .ok_or_else(|| AuthError::UnknownTenant(id.to_string()))
}

/// A verified token's outcome and until when it may be cached (its `exp`).
fn verified(
    principal: Principal,
    tenant: Arc<TenantEntry>,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> (Authenticated, i64) {
    let exp = claims.get("exp").and_then(|v| v.as_i64()).unwrap_or(0);
    (
        Authenticated {
            principal: Arc::new(principal),
            tenant,
        },
        exp,
    )
}

/// The anonymous owner of the built-in `default` tenant (open mode, local stdio bridge).
pub fn open_principal() -> Authenticated {
    use switchboard_domain::tenancy::{Directory, Tenant, TenantDirectory};
    let tenant = Tenant::new(TenantId::default_tenant(), "Default");
    let snapshot = Snapshot::build(Directory {
        revision: 0,
        tenants: vec![TenantDirectory {
            tenant,
            members: Vec::new(),
            groups: Vec::new(),
            roles: Vec::new(),
            grants: Vec::new(),
            api_keys: Vec::new(),
            clients: Vec::new(),
            issuers: Vec::new(),
            revoked_tokens: Vec::new(),
            servers: Vec::new(),
        }],
    });
    let tenant = snapshot
        .tenants()
        .next()
        .cloned()
        .expect("the snapshot was built with one tenant");
    Authenticated {
        principal: Arc::new(Principal::anonymous()),
        tenant,
    }
}
