//! The authentication scenarios: a gateway whose database holds one tenant, an API key and
//! the gateway's own signing key, measured against the same gateway configuration without
//! tenants (open mode); and the in-process cost of authentication, tenant resolution and the
//! policy decision per request, from the snapshot (no network, no database).
//!
//! The store and auth crates are linked only to provision the database and to time the
//! in-process path; the load scenarios still measure the shipped binary.

use std::time::{Duration, Instant};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretBox};
use serde::Serialize;
use switchboard_auth::api_key::{self, HashingKey};
use switchboard_auth::{
    AuthOptions, Authenticator, GatewayIssuer, JwksCache, JwksOptions, RequestFacts,
    SigningKeyMaterial, Snapshot, generate_signing_key,
};
use switchboard_domain::limits::{Limit, RateLimits};
use switchboard_domain::tenancy::{
    ApiKeyRecord, Condition, Directory, Effect, Grant, Grantee, Identity, Item, ItemKind, KeyOwner,
    Membership, Permission, Plan, Quotas, Role, RoleDef, Target, Tenant, TenantDirectory, TenantId,
    UserId,
};
use switchboard_governance::{Limiter, LimitsOptions};

/// The key-hashing secret the benchmark gateway is given.
pub const HASHING_SECRET: &str = "switchboard-bench-key-hashing-secret-0123456789";
/// The benchmark's tenant and user.
pub const TENANT: &str = "bench";
pub const USER: &str = "bench@bench.local";

fn hashing() -> HashingKey {
    HashingKey::new(&SecretBox::from(HASHING_SECRET.as_bytes().to_vec()))
        .expect("the bench secret is long enough")
}

/// Creates the tenant, a member and an API key in the database at `url`; returns the key.
/// With `quotas`, the tenant and the key get call quotas far above what a run makes, so
/// every call goes through the quota check without being refused.
pub async fn provision(url: &str, quotas: bool) -> anyhow::Result<String> {
    let store = switchboard_store::Store::connect(url).await?;
    add_tenant(&store, TENANT, USER, quotas).await
}

/// Creates `count` tenants (`t0001`, …), each with its own member (`bench@t0001.local`, …)
/// and API key, in the database at `url`; returns every tenant with its key.
pub async fn provision_many(url: &str, count: usize) -> anyhow::Result<Vec<(String, String)>> {
    let store = switchboard_store::Store::connect(url).await?;
    let mut tenants = Vec::with_capacity(count);
    for i in 1..=count {
        let tenant = format!("t{i:04}");
        let key = add_tenant(&store, &tenant, &format!("bench@{tenant}.local"), false).await?;
        tenants.push((tenant, key));
    }
    Ok(tenants)
}

/// One tenant on the enterprise plan (no rate limits) whose member may call everything.
async fn add_tenant(
    store: &switchboard_store::Store,
    tenant: &str,
    user: &str,
    quotas: bool,
) -> anyhow::Result<String> {
    let high = quotas.then_some(Quotas {
        calls_per_day: Some(1_000_000_000_000),
        calls_per_month: Some(1_000_000_000_000),
    });
    let tenant = TenantId::new(tenant)?;
    let mut bench_tenant = Tenant::new(tenant.clone(), "Benchmark");
    // One user drives every load phase (each worker holds a session): lift the per-user cap.
    bench_tenant.settings.max_sessions_per_user = Some(100_000);
    // No rate limits by default (the `gov:*` scenarios configure them for this plan).
    bench_tenant.plan = Plan::Enterprise;
    bench_tenant.settings.quotas = high.clone();
    store.create_tenant(&bench_tenant).await?;
    let scoped = store.tenant(&tenant);
    let user = UserId::new(user)?;
    scoped.add_member(&user, Role::Member).await?;
    scoped
        .add_grant(&Grant {
            grantee: Grantee::Role(Role::Member),
            target: Target::everything(),
            effect: Effect::Allow,
        })
        .await?;
    let key = api_key::generate(&hashing());
    scoped
        .create_api_key(&ApiKeyRecord {
            id: key.id.clone(),
            tenant,
            name: "bench".into(),
            owner: KeyOwner::User(user),
            hash: key.hash,
            restrictions: Vec::new(),
            expires_at: None,
            revoked_at: None,
            created_at: 0,
            quotas: high,
            ip_allowlist: Vec::new(),
        })
        .await?;
    Ok(key.text.expose_secret().to_owned())
}

/// Latency distribution of one in-process step, in microseconds.
#[derive(Debug, Serialize)]
pub struct Cost {
    pub step: &'static str,
    pub p50_us: f64,
    pub p99_us: f64,
    pub iterations: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

async fn time<F, Fut>(step: &'static str, iterations: usize, mut f: F) -> Cost
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        f().await;
        samples.push(start.elapsed());
    }
    samples.sort();
    Cost {
        step,
        p50_us: percentile(&samples, 50.0),
        p99_us: percentile(&samples, 99.0),
        iterations,
    }
}

/// Times authentication (API key; JWT from the verified-token cache; JWT verified every
/// time, for reference) plus tenant resolution and one policy decision against a tenant
/// with 50 grants.
pub async fn in_process_costs(iterations: usize) -> anyhow::Result<Vec<Cost>> {
    let tenant = TenantId::new(TENANT)?;
    let user = UserId::new(USER)?;
    let key = api_key::generate(&hashing());
    let mut grants: Vec<Grant> = (0..49)
        .map(|i| Grant {
            grantee: Grantee::User(UserId::new(format!("u{i}@bench.local")).expect("valid")),
            target: Target::parse(&format!("server-{i}/tool_*")).expect("valid"),
            effect: Effect::Allow,
        })
        .collect();
    grants.push(Grant {
        grantee: Grantee::Role(Role::Member),
        target: Target::parse("demo/echo").expect("valid"),
        effect: Effect::Allow,
    });
    let directory =
        Directory {
            revision: 1,
            tenants: vec![TenantDirectory {
                tenant: Tenant::new(tenant.clone(), "Benchmark"),
                members: vec![Membership {
                    user: user.clone(),
                    role: Role::Member,
                }],
                groups: Vec::new(),
                roles: vec![RoleDef {
                    name: "graph-reader".into(),
                    description: String::new(),
                    permissions: vec![Permission {
                        kinds: vec![ItemKind::Tool],
                        target: Target::parse("falkor/query").expect("valid"),
                        conditions: vec![serde_json::from_value::<Condition>(serde_json::json!({
                        "cel": "args.graph.startsWith(tenant + '_') && size(args.query) < 2000"
                    }))
                    .expect("valid CEL")],
                    }],
                }],
                grants,
                api_keys: vec![ApiKeyRecord {
                    id: key.id.clone(),
                    tenant: tenant.clone(),
                    name: "bench".into(),
                    owner: KeyOwner::User(user.clone()),
                    hash: key.hash.clone(),
                    restrictions: Vec::new(),
                    expires_at: None,
                    revoked_at: None,
                    created_at: 0,
                    quotas: None,
                    ip_allowlist: Vec::new(),
                }],
                clients: Vec::new(),
                issuers: Vec::new(),
                revoked_tokens: Vec::new(),
                servers: Vec::new(),
            }],
        };
    let (kid, pkcs8, _) = generate_signing_key().map_err(anyhow::Error::msg)?;
    let material = [SigningKeyMaterial {
        kid,
        pkcs8,
        retired: false,
    }];
    let base = "http://127.0.0.1:8931";
    let issuer = GatewayIssuer::new(base.into(), &material).map_err(anyhow::Error::msg)?;
    let token = issuer
        .issue(&tenant, &Identity::User(user), base, 3600, "")
        .map_err(anyhow::Error::msg)?
        .token;
    let auth = Authenticator::new(
        Snapshot::build(directory),
        hashing(),
        JwksCache::new(reqwest::Client::new(), JwksOptions::default()),
        Some(issuer),
        AuthOptions {
            base_url: base.into(),
            subdomain_base: None,
        },
    );
    let key_text = key.text.expose_secret().to_owned();
    let resource = format!("{base}/t/bench/mcp");
    fn facts<'a>(bearer: &'a str, resource: &'a str) -> RequestFacts<'a> {
        RequestFacts {
            path_tenant: Some(TENANT),
            bearer: Some(bearer),
            resource,
            ..Default::default()
        }
    }
    let decide = |found: &switchboard_auth::Authenticated| {
        let decision = found.tenant.policy.decide(
            &found.principal,
            Item {
                kind: ItemKind::Tool,
                server: "demo",
                name: "echo",
                arguments: None,
            },
        );
        assert!(decision.allowed);
    };
    let mut costs = Vec::new();
    costs.push(
        time("api key + tenant + policy", iterations, || async {
            let found = auth
                .authenticate(&facts(&key_text, &resource))
                .await
                .expect("key accepted");
            decide(&found);
        })
        .await,
    );
    costs.push(
        time("jwt (cached) + tenant + policy", iterations, || async {
            let found = auth
                .authenticate(&facts(&token, &resource))
                .await
                .expect("token accepted");
            decide(&found);
        })
        .await,
    );
    // A call decided by a custom role's CEL condition (evaluated per call).
    let found = auth
        .authenticate(&facts(&key_text, &resource))
        .await
        .expect("key accepted");
    let mut reader = found.principal.as_ref().clone();
    reader.roles = vec![Role::Custom("graph-reader".into())];
    let arguments = serde_json::json!({"graph": "bench_users", "query": "MATCH (n) RETURN n"});
    let arguments = arguments.as_object().expect("an object");
    costs.push(
        time("policy with a CEL condition (call)", iterations, || async {
            let decision = found.tenant.policy.decide(
                &reader,
                Item {
                    kind: ItemKind::Tool,
                    server: "falkor",
                    name: "query",
                    arguments: Some(arguments),
                },
            );
            assert!(decision.allowed);
        })
        .await,
    );
    // The in-process rate limiter on the same principal: tenant, user, key and address
    // decided together, never refusing.
    let high = || Some(Limit::Rate("1000000/s".parse().expect("valid rate")));
    let limits = RateLimits {
        tenant: high(),
        user: high(),
        key: high(),
        address: high(),
        tool: None,
    };
    let limiter = Limiter::new(LimitsOptions::default()).map_err(anyhow::Error::msg)?;
    let principal = auth
        .authenticate(&facts(&key_text, &resource))
        .await
        .expect("key accepted")
        .principal;
    let address = Some(std::net::IpAddr::from([127, 0, 0, 1]));
    costs.push(
        time("rate limits (4 keys, in-process)", iterations, || async {
            let outcome = limiter
                .check_request(&limits, &principal, address, None)
                .await
                .expect("in-process limits answer");
            assert!(outcome.is_some_and(|o| o.allowed()));
        })
        .await,
    );
    // Reference: the full ES256 verification a cache miss costs (a new snapshot each time
    // empties the verified-token cache).
    let uncached = iterations.min(2_000);
    let mut n = 0u64;
    costs.push(
        time("jwt (verified, cache miss)", uncached, || {
            // A resource seen for the first time is a cache miss (the cache key includes it).
            n += 1;
            let resource = format!("{base}/t/bench/mcp?{n}");
            let auth = &auth;
            let token = &token;
            async move {
                let facts = RequestFacts {
                    path_tenant: Some(TENANT),
                    bearer: Some(token),
                    resource: &resource,
                    ..Default::default()
                };
                let found = auth.authenticate(&facts).await.expect("token accepted");
                decide(&found);
            }
        })
        .await,
    );
    Ok(costs)
}

/// Issues a user token with the `switchboard token` CLI against the gateway's database and
/// data folder (where its secrets master key, which seals the signing key, lives).
pub fn issue_token(
    switchboard: &str,
    database_url: &str,
    data_dir: &std::path::Path,
    public_url: &str,
) -> anyhow::Result<String> {
    let out = std::process::Command::new(switchboard)
        .args([
            "token", "issue", "--tenant", TENANT, "--user", USER, "--ttl", "1h",
        ])
        .env("SWITCHBOARD_DATABASE_URL", database_url)
        .env("SWITCHBOARD_SERVER__DATA_DIR", data_dir)
        .env("SWITCHBOARD_AUTH__PUBLIC_URL", public_url)
        .env("SWITCHBOARD_AUTH__KEY_HASHING_SECRET", HASHING_SECRET)
        .env("SWITCHBOARD_LOG", "warn")
        .output()
        .context("run switchboard token issue")?;
    anyhow::ensure!(
        out.status.success(),
        "switchboard token issue failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}
